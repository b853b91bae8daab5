"""Quable v5 (API Platform) plumbing: JSON bodies, constraint violations and hydra paging."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from bulksync.sandbox._errors import JSONLD, Reply, json_response
from bulksync.sandbox._http import is_json_type, parse_json, read_body
from bulksync.sandbox._state import STATE
from bulksync.sandbox.quable._errors import quable_error, quable_violations
from bulksync.sandbox.quable._settings import QuableSettings

T = TypeVar("T")


def knobs(request: web.Request) -> QuableSettings:
    return request.app[STATE].settings.of(QuableSettings)


def ld(status: int, payload: Any) -> web.Response:
    return json_response(status, payload, content_type=JSONLD)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or the 415/400 API Platform would answer."""
    body = await read_body(request, "quable")
    mime = request.content_type.lower()
    if not is_json_type(mime):
        raise Reply(
            quable_error(
                415,
                f'The content-type "{mime}" is not supported. Supported MIME types are '
                '"application/ld+json", "application/json".',
                "Unsupported Media Type",
            )
        )
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise Reply(quable_error(400, f"Syntax error: {exc}")) from exc
    if not isinstance(data, dict):
        raise Reply(quable_error(400, "The input data is expected to be a JSON object."))
    return data


class Violations:
    """Collects every problem of a body, then answers them together like Symfony's validator."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def check(self, request: web.Request) -> None:
        if self.items:
            raise Reply(quable_violations(knobs(request).validation_status, self.items))

    def string(self, data: dict[str, Any], key: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(key, "This value should not be blank.")
            return None
        if not isinstance(value, str) or (required and not value):
            self.add(
                key,
                "This value should be of type string."
                if not isinstance(value, str)
                else "This value should not be blank.",
            )
            return None
        return value

    def ref(self, data: dict[str, Any], key: str, *, required: bool) -> str | None:
        """A relation written ``{"id": "..."}``, as in every Quable example."""
        value = data.get(key)
        if value is None:
            if required:
                self.add(key, "This value should not be blank.")
            return None
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            self.add(f"{key}.id", 'Expected an object like {"id": "<identifier>"}.')
            return None
        return str(value["id"])

    def integer(self, data: dict[str, Any], key: str, *, required: bool) -> int | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(key, "This value should not be blank.")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, "This value should be of type int.")
            return None
        return value

    def attributes(self, data: dict[str, Any]) -> dict[str, Any] | None:
        value = data.get("attributes")
        if value is None or value == []:  # PHP clients send [] for an empty map
            return None
        if not isinstance(value, dict):
            self.add("attributes", "This value should be of type object.")
            return None
        return value

    def boolean(self, data: dict[str, Any], key: str) -> bool | None:
        value = data.get(key)
        if value is not None and not isinstance(value, bool):
            self.add(key, "This value should be of type bool.")
            return None
        return value


def page(
    request: web.Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    *,
    context: str,
    orderable: Sequence[str] = (),
) -> web.Response:
    """A hydra:Collection page of ``items`` per ``limit``/``page``/``order[field]``."""
    settings = knobs(request)
    query = request.query
    limit = _int_param(query.get("limit"), "limit", settings.default_page_size)
    number = _int_param(query.get("page"), "page", 1)
    if limit < 0:
        raise Reply(quable_error(400, "Limit should not be less than 0"))
    if number < 1:
        raise Reply(quable_error(400, "Page should not be less than 1"))
    limit = min(limit, settings.max_page_size)
    ordered = list(items)
    for key, direction in query.items():
        field = key[6:-1] if key.startswith("order[") and key.endswith("]") else None
        if field in orderable and direction.lower() in ("asc", "desc"):
            ordered.sort(key=lambda item: _sort_key(item, field), reverse=direction == "desc")
    total = len(ordered)
    last = max(1, math.ceil(total / limit)) if limit else 1
    start = (number - 1) * limit
    members = [render(item) for item in ordered[start : start + limit]]
    view: dict[str, Any] = {
        "@id": _page_url(request, number),
        "@type": "hydra:PartialCollectionView",
        "hydra:first": _page_url(request, 1),
        "hydra:last": _page_url(request, last),
    }
    if number > 1:
        view["hydra:previous"] = _page_url(request, number - 1)
    if number < last:
        view["hydra:next"] = _page_url(request, number + 1)
    return ld(
        200,
        {
            "@context": f"/api/contexts/{context}",
            "@id": request.path,
            "@type": "hydra:Collection",
            "hydra:member": members,
            "hydra:totalItems": total,
            "hydra:view": view,
        },
    )


def _sort_key(item: Any, field: str | None) -> tuple[int, float, str]:
    value = item.get(field) if isinstance(item, dict) and field else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, "" if value is None else str(value))


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise Reply(
            quable_error(400, f'Invalid value "{raw}" for "{name}": integer expected.')
        ) from exc


def _page_url(request: web.Request, number: int) -> str:
    """The relative path of another page, keeping every other query parameter in place."""
    pairs: list[tuple[str, str]] = []
    seen = False
    for key, value in request.query.items():
        if key == "page":
            if not seen:
                pairs.append(("page", str(number)))
                seen = True
            continue
        pairs.append((key, value))
    if not seen:
        pairs.append(("page", str(number)))
    return f"{request.path}?{urlencode(pairs)}"
