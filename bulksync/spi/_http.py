"""Plain request and response values: what connectors build and parse, and transports carry.

Connectors never touch a socket; they describe a request with :class:`HttpRequest` and read an
:class:`HttpResponse`. That keeps them pure and lets tests swap the transport.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

_DELAY_SECONDS = re.compile(r"\d{1,9}(\.\d{1,6})?")


# WHATWG HTML "multipart/form-data encoding algorithm", which curl follows since 7.81: in a
# part's name or filename only these three are escaped; every other character goes as UTF-8.
_FORM_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def form_escape(text: str) -> str:
    """A name or filename as it goes into a multipart Content-Disposition (and as a target
    that stores the filename it received then holds it)."""
    return text.translate(_FORM_ESCAPES)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A multipart file field, streamed from disk by the transport (never read whole)."""

    name: str
    path: Path
    filename: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str  # a path relative to the target's base URL, or an absolute URL
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    form: Mapping[str, str] | None = None  # application/x-www-form-urlencoded
    fields: Mapping[str, str] | None = None  # multipart text fields, sent with `files`
    files: Sequence[FilePart] = ()
    body: bytes | None = None
    params: Mapping[str, str] | None = None
    timeout_s: float | None = None
    authenticated: bool = True  # whether the engine adds the target's auth header

    def with_headers(self, extra: Mapping[str, str]) -> HttpRequest:
        if not extra:
            return self
        return replace(self, headers={**self.headers, **extra})

    @property
    def is_write(self) -> bool:
        return self.method.upper() not in ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # keys lower-cased by the transport
    body: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        # Only plain digits: float() would also take "inf" and "nan", and an infinite
        # Retry-After would pause the shared budget forever.
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
