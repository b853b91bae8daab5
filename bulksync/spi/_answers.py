"""Reading what a 2xx answer says: the evidence a stage needs, or a classified failure.

A 2xx status only says that something answered; what the request did is in the body. A
proxy's HTML page, a truncated or empty answer, or JSON of the wrong shape is no evidence that
the item is where it should be, so it is never taken as success. It fails the request as
retryable and, for a write, as maybe applied: the server may well have carried it out, so the
next attempt verifies before creating again. Every connector reads its bodies through here so
that such an answer costs one clear line, not a traceback.
"""

from __future__ import annotations

from typing import Any

import orjson

from bulksync.spi._connector import RequestFailed
from bulksync.spi._errors import ErrorClass, ErrorInfo
from bulksync.spi._http import HttpResponse

_EXCERPT = 80


def json_object(response: HttpResponse, what: str, *, write: bool) -> dict[str, Any]:
    """The JSON object a 2xx answer must carry; raises :class:`RequestFailed` otherwise."""
    return read_object(
        response.body,
        what,
        status=response.status,
        content_type=response.header("content-type"),
        write=write,
    )


def read_object(
    body: bytes,
    what: str,
    *,
    status: int | None = None,
    content_type: str | None = None,
    write: bool,
) -> dict[str, Any]:
    """:func:`json_object` for a body held apart from its response (a batch answer's part)."""
    document = _decode(body, what, status, content_type, write)
    if not isinstance(document, dict):
        problem = f"a JSON {type_name(document)} where a JSON object was expected"
        raise bad_response(what, problem, status, write)
    return document


def json_or_empty(response: HttpResponse, what: str, *, write: bool) -> None:
    """Checks an answer whose body the docs leave undocumented and the stage does not need.

    Nothing can be required of such a body, but a JSON API that answers a page that is not
    JSON at all (a captive portal, a proxy's error page) has not answered: that is refused.
    """
    if response.body.strip():
        _decode(response.body, what, response.status, response.header("content-type"), write)


def bad_response(
    what: str, problem: str, status: int | None, write: bool, error_type: str = "BadResponse"
) -> RequestFailed:
    """A 2xx that proves nothing: retryable, and maybe applied when it answered a write."""
    answer = f"HTTP {status}" if status is not None else "a 2xx answer"
    return RequestFailed(
        ErrorInfo(error_type, f"{what}: {answer} with {problem}", status),
        ErrorClass.RETRYABLE,
        maybe_applied=write,
    )


def _decode(
    body: bytes, what: str, status: int | None, content_type: str | None, write: bool
) -> Any:
    if not body.strip():
        raise bad_response(what, "an empty body", status, write)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        media = (content_type or "untyped").split(";", 1)[0].strip() or "untyped"
        problem = f"an unreadable body ({media}): {excerpt(body)}"
        raise bad_response(what, problem, status, write) from None


def excerpt(body: bytes, limit: int = _EXCERPT) -> str:
    """The start of a body on one line, so an HTML page stays one line of a result."""
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[:limit] + "..."


def type_name(value: object) -> str:
    """The JSON name of a value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string" if value else "empty string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
