"""Propeller's error envelope: `{"error": {"code", "status", "type", "messages", "moreInfo"}}`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bulksync.spi import (
    ErrorClass,
    ErrorInfo,
    HttpResponse,
    RequestFailed,
    body_excerpt,
    classify_status,
    parse_retry_after,
)


@dataclass(frozen=True, slots=True)
class Envelope:
    code: int | None = None
    type: str | None = None
    messages: list[str] = field(default_factory=list)


def envelope(response: HttpResponse) -> Envelope:
    try:
        body: Any = response.json()
    except ValueError:
        return Envelope()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return Envelope()
    messages = error.get("messages")
    return Envelope(
        _code(error.get("code")),
        str(error["type"]) if error.get("type") else None,
        [str(m) for m in messages] if isinstance(messages, list) else [],
    )


def _code(value: Any) -> int | None:
    """The errors page types `code` as a string while its examples show numbers: read both,
    so that a `"10007"` still splits a chunk by the items it names."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def propeller_error(response: HttpResponse) -> RequestFailed:
    failure = envelope(response)
    text = "; ".join(failure.messages) or body_excerpt(response.body)
    error_type = failure.type or f"HTTP{response.status}"
    return RequestFailed(
        ErrorInfo(error_type, text or f"HTTP {response.status}", response.status),
        classify_status(response.status) or ErrorClass.ITEM,
        retry_after=parse_retry_after(response.header("retry-after")),
    )
