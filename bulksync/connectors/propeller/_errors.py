"""Propeller's error envelope: `{"error": {"code", "status", "type", "messages", "moreInfo"}}`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...connector import RequestFailed, classify_status
from ...errors import ErrorClass
from ...http import HttpResponse, parse_retry_after
from ...redact import body_excerpt
from ...results import ErrorInfo


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
    code = error.get("code")
    return Envelope(
        code if isinstance(code, int) else None,
        str(error["type"]) if error.get("type") else None,
        [str(m) for m in messages] if isinstance(messages, list) else [],
    )


def propeller_error(response: HttpResponse) -> RequestFailed:
    failure = envelope(response)
    text = "; ".join(failure.messages) or body_excerpt(response.body)
    error_type = failure.type or f"HTTP{response.status}"
    return RequestFailed(
        ErrorInfo(error_type, text or f"HTTP {response.status}", response.status),
        classify_status(response.status) or ErrorClass.ITEM,
        retry_after=parse_retry_after(response.header("retry-after")),
    )
