"""Typed input records: what one line of an assets or links file says.

Every record carries the file and line it came from, so that any result, good or bad, can
point the user back at the exact input line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Kind = Literal["asset", "link"]

# An endpoint of a link: a plain code (Quable) or an object (Propeller, OCAPI).
Endpoint = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read: the file and its 1-based line number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class AssetRecord:
    origin: Origin
    id: str
    file: Path | None = None
    remote_path: str | None = None
    classification: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    kind: Kind = field(default="asset", init=False)

    @property
    def key(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class LinkRecord:
    origin: Origin
    from_: Endpoint
    to: Endpoint
    type: str
    sequence: int | None = None
    subtype: str | None = None
    priority: int | None = None
    is_default: bool | None = None
    is_active: bool | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    kind: Kind = field(default="link", init=False)

    @property
    def key(self) -> str:
        return link_key(self.from_, self.to, self.type)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A line that could not be turned into a record; it still gets its own result."""

    origin: Origin
    kind: Kind
    reason: str
    key: str | None = None
    # "InternalError" when reading the line hit a bug rather than a mistake in the line.
    error_type: str = "InvalidInput"


@dataclass(frozen=True, slots=True)
class Removal:
    """An item pushed by an earlier run that the input no longer holds (prune deletes it)."""

    origin: Origin
    kind: Kind
    key: str
    remote_id: str | None = None


Record = AssetRecord | LinkRecord | Removal


def endpoint_text(endpoint: Endpoint) -> str:
    """A stable text form of an endpoint, used in keys and messages."""
    if isinstance(endpoint, str):
        return endpoint
    return orjson.dumps(dict(endpoint), option=orjson.OPT_SORT_KEYS).decode()


def link_key(from_: Endpoint, to: Endpoint, type_: str) -> str:
    return f"{endpoint_text(from_)}->{endpoint_text(to)}:{type_}"
