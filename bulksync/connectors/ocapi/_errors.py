"""OCAPI fault documents, read into an item error and a class the engine acts on.

Every OCAPI answer of status 400 or more carries ``{"_v", "fault": {"type", "message",
"arguments"}}`` (REFERENCE.md, OCAPI). The fault type is what a user can search the vendor docs
for, so it becomes the error's type; the status still decides retrying, except for the faults
that name a missing catalog or category, which no retry can fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bulksync.spi import (
    ErrorClass,
    ErrorInfo,
    Failed,
    HttpResponse,
    RequestFailed,
    body_excerpt,
    classify_status,
    parse_retry_after,
)

RESOURCE_STATE_CONFLICT = "ResourceStateConflictException"
CATEGORY_LINK_NOT_FOUND = "CategoryLinkNotFoundException"
# Seed 003 lists these as the PUT's only faults (404): the source or target does not exist.
# Nothing the engine can do makes them appear, so they fail the item whatever the status.
NOT_RETRIED = frozenset({"CatalogNotFoundException", "CategoryNotFoundException"})


@dataclass(frozen=True, slots=True)
class Fault:
    type: str
    message: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def read_fault(body: bytes) -> Fault | None:
    """The fault of an OCAPI fault document, or None when the body is not one.

    A gateway or load balancer in front of the instance may answer with HTML or nothing.
    """
    try:
        document: Any = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        return None
    fault = document.get("fault") if isinstance(document, dict) else None
    if not isinstance(fault, dict) or not isinstance(fault.get("type"), str):
        return None
    message = fault.get("message")
    arguments = fault.get("arguments")
    return Fault(
        fault["type"],
        message if isinstance(message, str) else "",
        arguments if isinstance(arguments, dict) else {},
    )


def classify(status: int, fault: Fault | None) -> ErrorClass:
    if fault is not None and fault.type in NOT_RETRIED:
        return ErrorClass.ITEM
    return classify_status(status) or ErrorClass.ITEM


def error_info(status: int, body: bytes, action: str) -> tuple[ErrorInfo, Fault | None]:
    fault = read_fault(body)
    if fault is not None:
        text = fault.message or fault.type
        return ErrorInfo(fault.type, f"{action}: {text}", status), fault
    text = body_excerpt(body) or f"HTTP {status}"
    return ErrorInfo(f"HTTP{status}", f"{action}: {text}", status), None


def ocapi_error(response: HttpResponse, action: str) -> RequestFailed:
    """A non-2xx answer to a whole request as a classified :class:`RequestFailed`."""
    info, fault = error_info(response.status, response.body, action)
    return RequestFailed(
        info,
        classify(response.status, fault),
        retry_after=parse_retry_after(response.header("retry-after")),
    )


def as_failed(exc: RequestFailed) -> Failed:
    """One item's share of a failed request, when that request served that item alone."""
    retryable = exc.error_class is ErrorClass.RETRYABLE
    return Failed(exc.error, retryable=retryable, retry_after=exc.retry_after)
