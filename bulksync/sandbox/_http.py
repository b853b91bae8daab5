"""Request-side helpers shared by every route module: route labels, body reading under the
per-API size limit, form/JSON decoding and the bearer token."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from bulksync.sandbox._errors import Reply
from bulksync.sandbox._state import STATE
from bulksync.sandbox._vendors import by_name

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_of(request: web.Request) -> str:
    """A stable label for stats: the route pattern, or the raw path when nothing matched."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} (unmatched)"
    return f"{request.method} {resource.canonical}"


async def read_body(request: web.Request, api: str) -> bytes:
    """The body, or the API's own 413 past its ``max_body_bytes``."""
    limit = request.app[STATE].settings.api(api).max_body_bytes
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise Reply(by_name()[api].errors.too_large(limit)) from exc
    if len(body) > limit:
        raise Reply(by_name()[api].errors.too_large(limit))
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
