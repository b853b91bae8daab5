"""Typed input records: what one line of an assets or links file says.

Every record carries the file and line it came from, so that any result, good or bad, can
point the user back at the exact input line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import orjson

Kind = Literal["asset", "link"]

# An endpoint of a link: a plain id, or an object of a form the target's InputShape declares.
Endpoint = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read: the file and its 1-based line number."""

    path: str
    line: int

    def __str__(self) -> str:
        if self.path.startswith("<") and self.path.endswith(">"):
            # Rows given in code (the Python API's stream): the index the caller counts by.
            return f"{self.path} row {self.line - 1}"
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
    # The target's own link fields (its InputShape's link_fields) the line gave, by their
    # input name ("subtype"); an absent or null field has no entry.
    extra: Mapping[str, Any] = field(default_factory=dict)
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


# The extra fields that had a place of their own in the first layout of the content hash,
# in that order. Frozen: the hashes in existing state files depend on it (a resync after an
# upgrade must not push everything again); fields of any other target hash by name instead.
_HASH_V1_SLOTS = ("subtype", "priority", "isDefault", "isActive")
_UNHASHED = frozenset({"origin", "kind"})  # where a record was read is not what it pushes
_HASHED_FIELDS: dict[type, tuple[str, ...]] = {}


def canonical_form(
    record: AssetRecord | LinkRecord, path_form: Callable[[Path], object] = str
) -> list[object]:
    """What a record would push, as plain JSON values in its fields' order: the content hash
    hashes this. ``path_form`` stands for a local file (the state uses its size and mtime)."""
    doc: list[object] = []
    names = _HASHED_FIELDS.get(type(record))
    if names is None:
        # dataclasses.fields() on every record was most of the hash's cost on a resync.
        names = _HASHED_FIELDS[type(record)] = tuple(
            spec.name for spec in fields(record) if spec.name not in _UNHASHED
        )
    for name in names:
        value = getattr(record, name)
        if isinstance(value, Path):
            doc.append(path_form(value))
        elif name == "extra":
            doc.extend(_extra_form(value))
        else:
            doc.append(value)
    return doc


def _extra_form(extra: Mapping[str, Any]) -> list[object]:
    slots: list[object] = [extra.get(name) for name in _HASH_V1_SLOTS]
    others = {name: value for name, value in extra.items() if name not in _HASH_V1_SLOTS}
    if others:
        slots.append(others)  # absent for every record the v1 layout could hash
    return slots


def endpoint_text(endpoint: Endpoint) -> str:
    """A stable text form of an endpoint, used in keys and messages."""
    if isinstance(endpoint, str):
        return endpoint
    return orjson.dumps(dict(endpoint), option=orjson.OPT_SORT_KEYS).decode()


def link_key(from_: Endpoint, to: Endpoint, type_: str) -> str:
    return f"{endpoint_text(from_)}->{endpoint_text(to)}:{type_}"
