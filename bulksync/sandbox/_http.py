"""Request-side helpers shared by every route module: which API a path belongs to, body
reading under the per-API size limit, and form/JSON decoding."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ._errors import Api, Reply, too_large
from ._state import STATE

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OCAPI_DATA = "/s/-/dw/data/v23_2"
OCAPI_BATCH = "/s/-/dw/batch"
# Routes that hand out tokens cannot demand one.
PUBLIC_PATHS = frozenset(
    {
        "/api_1.php/sessions",
        "/oauth2/token",
        "/dwsso/oauth2/access_token",
        "/dw/oauth2/access_token",
    }
)


def api_of(path: str) -> Api | None:
    if path.startswith(("/api/", "/api_1.php/")) or path == "/api":
        return "quable"
    if path.startswith(("/s/-/dw/", "/dw/", "/dwsso/")):
        return "ocapi"
    if path.startswith("/links") or path == "/oauth2/token":
        return "propeller"
    return None


def route_of(request: web.Request) -> str:
    """A stable label for stats: the route pattern, or the raw path when nothing matched."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} (unmatched)"
    return f"{request.method} {resource.canonical}"


async def read_body(request: web.Request, api: Api) -> bytes:
    limit = request.app[STATE].settings.api(api).max_body_bytes
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise Reply(too_large(api, limit)) from exc
    if len(body) > limit:
        raise Reply(too_large(api, limit))
    return body


def media_type(request: web.Request) -> str:
    return request.content_type.lower()


def is_json_type(mime: str) -> bool:
    return mime in ("application/json", "application/ld+json") or mime.endswith("+json")


def parse_json(body: bytes) -> Any:
    """Decode JSON or raise ValueError with the decoder's reason."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from exc


def parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("form body is not UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer X``; "" when the header exists but is malformed."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else ""
