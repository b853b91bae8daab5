"""Propeller's error bodies: the REST v2 envelope, and the Apigee gateway's faults in front
of it (401s, 429s, 413s, a struggling upstream)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from bulksync.sandbox._errors import json_response, reason
from bulksync.sandbox._vendor import ErrorShapes


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


def _too_many_requests() -> web.Response:
    return apigee_fault(429, "Rate limit quota violation.", "policies.ratelimit.QuotaViolation")


def _too_large(limit: int) -> web.Response:
    message = f"Request body size limit of {limit} bytes has been exceeded."
    return apigee_fault(413, message, "protocol.http.TooBigBody")


def _injected(status: int) -> web.Response:
    phrase = reason(status)
    return apigee_fault(status, phrase, "messaging.adaptors.http.flow." + phrase.replace(" ", ""))


def _no_route(method: str, path: str, status: int) -> web.Response:
    if status == 405:
        return propeller_error(405, 405, "MethodNotAllowed", [f"Method {method} not allowed"])
    return propeller_error(404, 10008, "NotFound", ["Resource not found"])


def _error(status: int) -> web.Response:
    return propeller_error(status, status, reason(status).replace(" ", ""), [reason(status)])


ERRORS = ErrorShapes(
    error=_error,
    too_many_requests=_too_many_requests,
    too_large=_too_large,
    injected=_injected,
    no_route=_no_route,
)
