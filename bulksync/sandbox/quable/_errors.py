"""Quable's error bodies: API Platform's hydra errors and violation lists, v4's error object."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from bulksync.sandbox._errors import JSONLD, json_response, reason
from bulksync.sandbox._vendor import ErrorShapes


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


def _too_many_requests() -> web.Response:
    return quable_error(429, "Rate limit exceeded.", title="Too Many Requests")


def _too_large(limit: int) -> web.Response:
    message = f"Request body size limit of {limit} bytes has been exceeded."
    return quable_error(413, message, title="Payload Too Large")


def _injected(status: int) -> web.Response:
    phrase = reason(status)
    return quable_error(status, phrase, title=phrase)


def _no_route(method: str, path: str, status: int) -> web.Response:
    if status == 405:
        return quable_error(405, f'No route found for "{method} {path}": Method Not Allowed')
    return quable_error(404, f'No route found for "{method} {path}"', title="Not Found")


ERRORS = ErrorShapes(
    error=lambda status: quable_error(status, reason(status)),
    too_many_requests=_too_many_requests,
    too_large=_too_large,
    injected=_injected,
    no_route=_no_route,
)
