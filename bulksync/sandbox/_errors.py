"""JSON responses and the early answer every handler may raise; each API's error bodies are
in its vendor's ``_errors.py`` (where the vendors document a body it is copied field for
field; where they do not, it follows the framework the vendor runs on, as REFERENCE.md
suggests)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

JSONLD = "application/ld+json"
JSON = "application/json"


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
