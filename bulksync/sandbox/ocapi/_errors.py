"""OCAPI's fault documents, as the Data API documents them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import json_response, reason
from bulksync.sandbox._vendor import ErrorShapes

OCAPI_VERSION = "23.2"
_OCAPI_HEADERS = {"Cache-Control": "max-age=0,no-cache,no-store,must-revalidate"}


def ocapi_fault_body(
    type_: str,
    message: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    typed: bool = False,
) -> dict[str, Any]:
    fault: dict[str, Any] = {"type": type_, "message": message}
    if arguments is not None:
        fault["arguments"] = dict(arguments)
    body: dict[str, Any] = {"_v": OCAPI_VERSION}
    if typed:
        body["_type"] = "fault"
    body["fault"] = fault
    return body


def ocapi_fault(
    status: int,
    type_: str,
    message: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    typed: bool = False,
) -> web.Response:
    body = ocapi_fault_body(type_, message, arguments, typed=typed)
    return json_response(status, body, headers=_OCAPI_HEADERS)


def _too_large(limit: int) -> web.Response:
    message = f"Request body size limit of {limit} bytes has been exceeded."
    return ocapi_fault(413, "RequestEntityTooLargeException", message)


def _error(status: int) -> web.Response:
    phrase = reason(status)
    return ocapi_fault(status, phrase.replace(" ", "") + "Exception", phrase)


def _no_route(method: str, path: str, status: int) -> web.Response:
    if status == 405:
        return ocapi_fault(
            405,
            "MethodNotAllowedException",
            f"The HTTP method '{method}' isn't allowed.",
            {"method": method},
        )
    return ocapi_fault(
        404,
        "ResourcePathNotFoundException",
        f"The resource '{path}' couldn't be found in the specified API and version.",
        {"path": path},
    )


ERRORS = ErrorShapes(
    error=_error,
    too_many_requests=lambda: ocapi_fault(429, "TooManyRequestsException", "Rate limit exceeded."),
    too_large=_too_large,
    injected=_error,
    no_route=_no_route,
)
