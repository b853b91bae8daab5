"""Quable's error answers, read into one clear message and a class the engine acts on."""

from __future__ import annotations

from typing import Any

from bulksync.spi import (
    ErrorClass,
    ErrorInfo,
    HttpResponse,
    RequestFailed,
    body_excerpt,
    classify_status,
    maybe_applied,
    parse_retry_after,
)

# docs.quable.com/reference/erro-codes, word for word.
PERMISSION_405 = "Method Not Allowed - The user does not have permission to access the resource"


def quable_error(response: HttpResponse, action: str, *, write: bool = False) -> RequestFailed:
    """A non-2xx answer as a classified :class:`RequestFailed`; ``write`` for a write's answer,
    which a 500, 502 or 504 leaves maybe applied.

    403 stops the run like a refused token: Quable answers it to a token without the right
    (a Read token on writes), and every further write would fail the same way. So does 405:
    every route bulksync calls is a documented one, and Quable's error page reads 405 as
    "The user does not have permission to access the resource", not as a wrong method.
    """
    status = response.status
    message = f"{action}: {_message(response)}"
    if status == 405:
        message = f"{action}: {PERMISSION_405} (HTTP 405: {_message(response)})"
    error_class = (
        ErrorClass.AUTH if status in (403, 405) else classify_status(status) or ErrorClass.ITEM
    )
    return RequestFailed(
        ErrorInfo(f"HTTP{status}", message, status),
        error_class,
        retry_after=parse_retry_after(response.header("retry-after")),
        maybe_applied=maybe_applied(status, write),
    )


def _message(response: HttpResponse) -> str:
    """API Platform bodies: hydra:Error or a ConstraintViolationList; else the raw text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        violations = body.get("violations")
        if isinstance(violations, list) and violations:
            parts = [
                f"{v.get('propertyPath') or 'body'}: {v.get('message')}"
                for v in violations
                if isinstance(v, dict)
            ]
            return "; ".join(parts)
        for key in ("hydra:description", "detail", "message", "hydra:title", "title", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return body_excerpt(response.body) or f"HTTP {response.status}"
