"""JSON responses and the error bodies of each API, in that API's own shape.

Where the vendors document a body (Propeller's envelope, OCAPI fault documents) it is copied
field for field; where they do not (Quable errors, gateway-level 401/429 for Propeller) the body
follows the framework the vendor runs on (API Platform, Apigee), as REFERENCE.md suggests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal

import orjson
from aiohttp import web

Api = Literal["quable", "propeller", "ocapi"]

JSONLD = "application/ld+json"
JSON = "application/json"
OCAPI_VERSION = "23.2"
_OCAPI_HEADERS = {"Cache-Control": "max-age=0,no-cache,no-store,must-revalidate"}


class Reply(Exception):
    """Raised anywhere below a handler to answer with ``response`` right away."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def json_response(
    status: int,
    payload: Any,
    *,
    content_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    if payload is None:
        return web.Response(status=status, headers=headers)
    # A ready header dict is cheaper than aiohttp's content_type/charset handling.
    all_headers = {"Content-Type": f"{content_type}; charset=utf-8"}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=orjson.dumps(payload), headers=all_headers)


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- Quable (API Platform) ------------------------------------------------------------------


def quable_error(status: int, description: str, title: str = "An error occurred") -> web.Response:
    body = {
        "@context": "/api/contexts/Error",
        "@type": "hydra:Error",
        "hydra:title": title,
        "hydra:description": description,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response(status, body, content_type=JSONLD, headers=headers)


def quable_violations(status: int, violations: Sequence[tuple[str, str]]) -> web.Response:
    body = {
        "@context": "/api/contexts/ConstraintViolationList",
        "@type": "ConstraintViolationList",
        "hydra:title": "An error occurred",
        "hydra:description": "\n".join(f"{path}: {msg}" for path, msg in violations),
        "violations": [{"propertyPath": path, "message": msg} for path, msg in violations],
    }
    return json_response(status, body, content_type=JSONLD)


def quable_v4_error(status: int, message: str) -> web.Response:
    return json_response(status, {"error": {"code": status, "message": message}})


# -- Propeller (REST v2 envelope, Apigee gateway faults) -------------------------------------


def propeller_error(status: int, code: int, type_: str, messages: Sequence[str]) -> web.Response:
    body = {
        "error": {
            "code": code,
            "messages": list(messages),
            "moreInfo": f"https://www.propel.us/docs/errors/{code}",
            "status": status,
            "type": type_,
        }
    }
    return json_response(status, body)


def apigee_fault(status: int, faultstring: str, errorcode: str) -> web.Response:
    body = {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}
    return json_response(status, body)


# -- OCAPI fault documents --------------------------------------------------------------------


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


# -- the same situation, in each API's words --------------------------------------------------


def propeller_unauthorized(expired: bool, shape: str) -> web.Response:
    """Propeller's 401. The docs give no 401 body: ``apigee`` is what the Apigee gateway in
    front of it answers (its token response is Apigee's); ``envelope`` is the documented REST
    error envelope, for a client that must not depend on either."""
    if shape == "envelope":
        message = "Access token expired" if expired else "Invalid access token"
        return propeller_error(401, 401, "Unauthorized", [message])
    if expired:
        return apigee_fault(
            401, "Access Token expired", "keymanagement.service.access_token_expired"
        )
    return apigee_fault(401, "Invalid access token", "oauth.v2.InvalidAccessToken")


def too_many_requests(api: Api, retry_after: int | None) -> web.Response:
    if api == "quable":
        response = quable_error(429, "Rate limit exceeded.", title="Too Many Requests")
    elif api == "propeller":
        response = apigee_fault(
            429, "Rate limit quota violation.", "policies.ratelimit.QuotaViolation"
        )
    else:
        response = ocapi_fault(429, "TooManyRequestsException", "Rate limit exceeded.")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def too_large(api: Api, limit: int) -> web.Response:
    message = f"Request body size limit of {limit} bytes has been exceeded."
    if api == "quable":
        return quable_error(413, message, title="Payload Too Large")
    if api == "propeller":
        return apigee_fault(413, message, "protocol.http.TooBigBody")
    return ocapi_fault(413, "RequestEntityTooLargeException", message)


def injected(api: Api, status: int) -> web.Response:
    """The body of a fault-injected error: what a struggling server or gateway would send."""
    phrase = reason(status)
    if api == "quable":
        return quable_error(status, phrase, title=phrase)
    if api == "propeller":
        code = "messaging.adaptors.http.flow." + phrase.replace(" ", "")
        return apigee_fault(status, phrase, code)
    return ocapi_fault(status, phrase.replace(" ", "") + "Exception", phrase)


def no_route(api: Api, method: str, path: str, status: int) -> web.Response:
    if api == "quable":
        if status == 405:
            return quable_error(405, f'No route found for "{method} {path}": Method Not Allowed')
        return quable_error(404, f'No route found for "{method} {path}"', title="Not Found")
    if api == "propeller":
        if status == 405:
            return propeller_error(405, 405, "MethodNotAllowed", [f"Method {method} not allowed"])
        return propeller_error(404, 10008, "NotFound", ["Resource not found"])
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
