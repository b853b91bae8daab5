"""Propeller REST v2 links: ``POST /v2/links/bulk/{lookupKey}``, ``GET /v2/links/{id}``,
``POST /v2/links/search`` (the docs' ``https://api.helice.cloud/v2/{resource}``).

The bulk answer is the vendor's (seed 002): HTTP 200 even when items fail, one ``data`` entry
per item with ``from``, ``to``, ``lookupKey``, ``success`` and ``id`` or ``error``, then
``messages: ["Completed"]`` and ``total``. Whole-request 400s only for an invalid lookup key
(10006, case-sensitive), a schema error (10007, naming the item), a missing lookup key (10016)
or invalid JSON (10005). The seed says "If a link for resources with such id doesn't already
exist, it will be created. If it does exist, it will be updated": by default a link is
identified by its two resources (from, to), so a second bulk item for the same pair updates
that link (type included) and keeps its id; the knob ``propeller.link_identity`` can add the
type, or the type and subtype, to the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import Reply, json_response
from bulksync.sandbox._http import parse_json, read_body
from bulksync.sandbox._state import STATE
from bulksync.sandbox._store import now_iso
from bulksync.sandbox.propeller._errors import propeller_error
from bulksync.sandbox.propeller._schema import LOOKUP_KEYS, check_bulk, check_search
from bulksync.sandbox.propeller._settings import PropellerSettings
from bulksync.sandbox.propeller._store import PropellerStore

# Propeller's REST resources live under /v2; its token endpoint is at the host root.
PROPELLER_V2 = "/v2"


async def _json(request: web.Request) -> Any:
    body = await read_body(request, "propeller")
    if request.content_type.lower() != "application/json":  # the seed's only request type
        raise Reply(
            propeller_error(
                400,
                10005,
                "InvalidJSONPayload",
                ["Invalid JSON Payload: Content-Type must be application/json"],
            )
        )
    try:
        return parse_json(body)
    except ValueError as exc:
        raise Reply(
            propeller_error(400, 10005, "InvalidJSONPayload", [f"Invalid JSON Payload: {exc}"])
        ) from exc


def _resolve(store: PropellerStore, end: dict[str, Any], lookup_key: str) -> int | str:
    """The Propeller id of a link end, or the per-item error message."""
    cls = end["class"]
    label = cls.capitalize()
    if lookup_key == "id":
        if end["id"] in store.resources.get(cls, {}):
            return int(end["id"])
        return f"{label} with id [{end['id']}] not found"
    found = store.by_source.get((cls, end["source"], end["sourceId"]))
    if found is None:
        return f"{label} with sourceId [{end['sourceId']}] and source [{end['source']}] not found"
    return found


async def bulk_links(request: web.Request) -> web.Response:
    state = request.app[STATE]
    knobs = state.settings.of(PropellerSettings)
    lookup_key = request.match_info["lookupKey"]
    if lookup_key not in LOOKUP_KEYS:
        return propeller_error(
            400,
            10006,
            "InvalidLookupKey",
            [
                f"Invalid lookup key [{lookup_key}], key must contain one of the following values: "
                f"[{','.join(LOOKUP_KEYS)}]"
            ],
        )
    data = await _json(request)
    schema, lookups = check_bulk(
        data, lookup_key, knobs.max_items_per_call, knobs.reject_unknown_fields
    )
    if schema:
        return propeller_error(400, 10007, "SchemaValidationException", schema)
    if lookups:
        return propeller_error(400, 10016, "LookupKeyNotFound", lookups)
    store = state.store.of(PropellerStore)
    results: list[dict[str, Any]] = []
    writes = 0
    for item in data["links"]:
        origin = _resolve(store, item["from"], lookup_key)
        target = _resolve(store, item["to"], lookup_key)
        error = origin if isinstance(origin, str) else target if isinstance(target, str) else None
        if error is not None:
            results.append(
                {
                    "error": error,
                    "from": item["from"],
                    "lookupKey": lookup_key,
                    "success": False,
                    "to": item["to"],
                }
            )
            continue
        assert isinstance(origin, int) and isinstance(target, int)
        link_id = _upsert(
            state.store.of(PropellerStore),
            item,
            origin,
            target,
            knobs.link_identity,
            state.stats.duplicate,
        )
        writes += 1
        results.append(
            {
                "from": item["from"],
                "id": link_id,
                "lookupKey": lookup_key,
                "success": True,
                "to": item["to"],
            }
        )
    if writes:
        state.stats.write("propeller", writes)
    return json_response(200, {"data": results, "messages": ["Completed"], "total": len(results)})


def _upsert(
    store: PropellerStore,
    item: dict[str, Any],
    origin: int,
    target: int,
    identity: str,
    duplicate: Callable[[str], None],
) -> int:
    from_cls, to_cls = item["from"]["class"], item["to"]["class"]
    key = (
        from_cls,
        origin,
        to_cls,
        target,
        item["type"] if identity != "from_to" else "",
        item["subtype"] if identity == "from_to_type_subtype" else "",
    )
    fields = {
        "type": item["type"],
        "subtype": item["subtype"],
        "isDefault": item.get("isDefault", False),
        "isActive": item.get("isActive", True),
        "priority": item.get("priority", 0),
    }
    stamp = now_iso()
    link_id = store.link_keys.get(key)
    if link_id is not None:
        duplicate("propeller_link")
        store.links[link_id].update(fields, lastModifiedAt=stamp)
        return link_id
    link_id = store.next_link_id
    store.next_link_id += 1
    store.links[link_id] = {
        "id": link_id,
        **fields,
        "from": {"class": from_cls, "id": origin},
        "to": {"class": to_cls, "id": target},
        "createdAt": stamp,
        "lastModifiedAt": stamp,
    }
    store.link_keys[key] = link_id
    return link_id


async def get_link(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    link = None
    if raw.isdigit():
        link = request.app[STATE].store.of(PropellerStore).links.get(int(raw))
    if link is None:
        return propeller_error(404, 18003, "LinkNotFound", [f"Link with id [{raw}] not found"])
    return json_response(200, {"data": link, "messages": []})


def _paging(data: dict[str, Any]) -> tuple[int, int]:
    page, offset = data.get("page", 1), data.get("offset", 12)
    if (
        isinstance(page, bool)
        or not isinstance(page, int)
        or page < 1
        or isinstance(offset, bool)
        or not isinstance(offset, int)
        or not 1 <= offset <= 100
    ):
        raise Reply(
            propeller_error(
                400,
                10015,
                "PaginatedResponseException",
                [
                    "Pagination not properly initialized: page must be a positive integer"
                    " and offset an integer from 1 to 100"
                ],
            )
        )
    return page, offset


def _matches(link: dict[str, Any], data: dict[str, Any]) -> bool:
    types = data.get("type")
    if types is not None and link["type"] not in (types if isinstance(types, list) else [types]):
        return False
    for end in ("from", "to"):
        wanted = data.get(end)
        if wanted and any(link[end].get(k) != v for k, v in wanted.items()):
            return False
    if "isActive" in data and link["isActive"] != data["isActive"]:
        return False
    ids = data.get("ids")
    return ids is None or link["id"] in ids


async def search_links(request: web.Request) -> web.Response:
    store = request.app[STATE].store.of(PropellerStore)
    data = await _json(request)
    errors = check_search(data)
    if errors:
        return propeller_error(400, 10007, "SchemaValidationException", errors)
    page, offset = _paging(data)
    found = [link for link in store.links.values() if _matches(link, data)]
    total = len(found)
    chunk = found[(page - 1) * offset : page * offset]
    start = (page - 1) * offset + 1 if chunk else 0
    return json_response(
        200,
        {
            "data": chunk,
            "messages": [],
            "itemsFound": total,
            "offset": offset,
            "page": page,
            "pages": max(1, math.ceil(total / offset)),
            "start": start,
            "end": start + len(chunk) - 1 if chunk else 0,
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(PROPELLER_V2 + "/links/bulk/{lookupKey}", bulk_links)
    app.router.add_post(PROPELLER_V2 + "/links/search", search_links)
    app.router.add_get(PROPELLER_V2 + "/links/{id}", get_link)
