"""OCAPI Data API v23_2 category links (seed 003), callable over HTTP and from batch parts.

Routes, under ``/s/-/dw/data/v23_2/catalogs/{catalog_id}/categories/{category_id}``:
``GET .../category_links`` (``start``, ``count``, ``select``; sorted by position) and
``GET|PUT|PATCH|DELETE .../category_links/{target_catalog_id}/{target_category_id}/{type}``.
PUT is an upsert: 200 for an update, and for a create 200 as the Data API spec lists or 201 as
the HTML sample shows (``ocapi.put_created_status``); ``_resource_state`` in the body or the
``x-dw-resource-state`` header must match or the answer is 409 ResourceStateConflictException.
The state travels in the ``x-dw-resource-state`` response header, as in the seed's samples;
the seed's CategoryLink bodies carry no ``_resource_state`` (the knob
``ocapi.resource_state_in_body`` adds it). Fault documents and their messages are the seed's,
word for word.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from bulksync.sandbox._errors import json_response
from bulksync.sandbox._http import read_body
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox.ocapi._errors import OCAPI_VERSION
from bulksync.sandbox.ocapi._request import (
    Call,
    Fault,
    Result,
    check_state,
    document,
    int_param,
    resource_state,
    selector,
)
from bulksync.sandbox.ocapi._select import apply
from bulksync.sandbox.ocapi._settings import OcapiSettings
from bulksync.sandbox.ocapi._store import OcapiStore, now_ocapi

OCAPI_DATA = "/s/-/dw/data/v23_2"

LINK_TYPES = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
_LIST = re.compile(r"^/catalogs/([^/]+)/categories/([^/]+)/category_links/?$")
_ONE = re.compile(r"^/catalogs/([^/]+)/categories/([^/]+)/category_links/([^/]+)/([^/]+)/([^/]+)$")


def route_label(call: Call) -> str:
    tail = call.path[len(OCAPI_DATA) :] if call.path.startswith(OCAPI_DATA) else call.path
    base = f"{OCAPI_DATA}/catalogs/{{catalog_id}}/categories/{{category_id}}/category_links"
    if _ONE.match(tail):
        return f"{call.method} {base}/{{target_catalog_id}}/{{target_category_id}}/{{type}}"
    if _LIST.match(tail):
        return f"{call.method} {base}"
    return f"{call.method} (unmatched)"


def dispatch(state: SandboxState, call: Call) -> Result:
    try:
        return _dispatch(state, call)
    except Fault as fault:
        return fault.result


def _dispatch(state: SandboxState, call: Call) -> Result:
    tail = call.path[len(OCAPI_DATA) :] if call.path.startswith(OCAPI_DATA + "/") else None
    one = _ONE.match(tail) if tail is not None else None
    many = _LIST.match(tail) if tail is not None else None
    if one is None and many is None:
        raise Fault(
            404,
            "ResourcePathNotFoundException",
            f"The resource '{call.path}' couldn't be found in the specified API and version.",
            {"path": call.path},
        )
    allowed = ("GET", "PUT", "PATCH", "DELETE") if one else ("GET",)
    if call.method not in allowed:
        raise Fault(
            405,
            "MethodNotAllowedException",
            f"The HTTP method '{call.method}' isn't allowed.",
            {"method": call.method},
        )
    if many is not None:
        catalog, category = (unquote(g) for g in many.groups())
        _category(state, catalog, category)
        return _list(state, call, catalog, category)
    assert one is not None
    key = tuple(unquote(g) for g in one.groups())
    if key[4] not in LINK_TYPES:
        raise Fault(
            400,
            "IllegalEnumerationValueException",
            f"Illegal enum value '{key[4]}' for field 'type'.",
            {"value": key[4], "type": "type"},
        )
    _category(state, key[0], key[1])
    _category(state, key[2], key[3])
    handler = {"GET": _get, "PUT": _put, "PATCH": _patch, "DELETE": _delete}[call.method]
    return handler(state, call, key)


def _category(state: SandboxState, catalog_id: str, category_id: str) -> dict[str, Any]:
    catalog = state.store.of(OcapiStore).catalogs.get(catalog_id)
    if catalog is None:
        raise Fault(
            404,
            "CatalogNotFoundException",
            f"No catalog with ID '{catalog_id}' was found.",
            {"catalogId": catalog_id},
        )
    category: dict[str, Any] | None = catalog["categories"].get(category_id)
    if category is None:
        raise Fault(
            404,
            "CategoryNotFoundException",
            f"No category with ID '{category_id}' for catalog '{catalog_id}' was found.",
            {"catalogId": catalog_id, "categoryId": category_id},
        )
    return category


def _render(
    state: SandboxState,
    call: Call,
    key: tuple[str, ...],
    record: dict[str, Any],
    with_link: bool = True,
) -> dict[str, Any]:
    catalogs = state.store.of(OcapiStore).catalogs
    src_cat, src, tgt_cat, tgt, type_ = key
    link = f"{call.base_url}{OCAPI_DATA}/catalogs/" + "/".join(
        quote(part, safe="")
        for part in (src_cat, "categories", src, "category_links", tgt_cat, tgt, type_)
    )
    body: dict[str, Any] = {"_v": OCAPI_VERSION, "_type": "category_link"}
    if state.settings.of(OcapiSettings).resource_state_in_body:
        body["_resource_state"] = resource_state(key, record)
    body["last_modified"] = record["last_modified"]
    if with_link:  # optional in the spec's category_link document
        body["link"] = link
    return body | {
        "position": record["position"],
        "source_catalog_id": src_cat,
        "source_catalog_name": catalogs[src_cat]["name"],
        "source_category_id": src,
        "source_category_name": catalogs[src_cat]["categories"][src]["name"],
        "target_catalog_id": tgt_cat,
        "target_catalog_name": catalogs[tgt_cat]["name"],
        "target_category_id": tgt,
        "target_category_name": catalogs[tgt_cat]["categories"][tgt]["name"],
        "type": type_,
    }


def _one(
    state: SandboxState, call: Call, key: tuple[str, ...], record: dict[str, Any], status: int
) -> Result:
    body = _render(state, call, key, record)
    headers = {"x-dw-resource-state": resource_state(key, record)}
    return Result(status, apply(body, selector(call)), headers)


def _list(state: SandboxState, call: Call, catalog: str, category: str) -> Result:
    knobs = state.settings.of(OcapiSettings)
    start = int_param(call, "start", 0, knobs.max_start)
    count = int_param(call, "count", knobs.default_count, knobs.max_count)
    chosen = selector(call)
    targets = state.store.of(OcapiStore).links.get((catalog, category), {})
    ordered = sorted(targets.items(), key=lambda kv: (kv[1]["position"], kv[0]))
    chunk = ordered[start : start + count]
    body: dict[str, Any] = {
        "_v": OCAPI_VERSION,
        "count": len(chunk),
        "data": [
            _render(state, call, (catalog, category, *tgt), rec, knobs.list_link_property)
            for tgt, rec in chunk
        ],
    }
    if start + count < len(ordered) and count > 0:
        params = {**call.query, "start": str(start + count), "count": str(count)}
        body["next"] = f"{call.base_url}{call.path}?{urlencode(params)}"
    if start > 0:
        params = {**call.query, "start": str(max(0, start - count)), "count": str(count)}
        body["previous"] = f"{call.base_url}{call.path}?{urlencode(params)}"
    if "select" in call.query:
        body["select"] = call.query["select"]
    body["start"] = start
    body["total"] = len(ordered)
    return Result(200, apply(body, chosen))


def _link(state: SandboxState, key: tuple[str, ...]) -> dict[str, Any]:
    record = (
        state.store.of(OcapiStore).links.get((key[0], key[1]), {}).get((key[2], key[3], key[4]))
    )
    if record is None:
        raise Fault(
            404,
            "CategoryLinkNotFoundException",
            f"No category link found from '{key[0]} '{key[1]}' to '{key[2]}' "
            f"'{key[3]}' with type '{key[4]}' was found.",
            {
                "sourceCatalogId": key[0],
                "sourceCategoryId": key[1],
                "targetCatalogId": key[2],
                "targetCategoryId": key[3],
                "linkType": key[4],
            },
            typed=True,
        )
    return record


def _get(state: SandboxState, call: Call, key: tuple[str, ...]) -> Result:
    return _one(state, call, key, _link(state, key), 200)


def _put(state: SandboxState, call: Call, key: tuple[str, ...]) -> Result:
    doc = document(call, key)
    targets = state.store.of(OcapiStore).links.setdefault((key[0], key[1]), {})
    existing = targets.get((key[2], key[3], key[4]))
    if existing is not None:
        check_state(call, doc, key, existing)
        state.stats.duplicate("category_link")
        if doc.get("position") is not None:
            existing["position"] = float(doc["position"])
        existing["last_modified"] = now_ocapi()
        state.stats.write("ocapi")
        return _one(state, call, key, existing, 200)
    position = doc.get("position")
    if position is None:
        position = max((r["position"] for r in targets.values()), default=0.0) + 1.0
    record = {"position": float(position), "last_modified": now_ocapi()}
    targets[(key[2], key[3], key[4])] = record
    state.stats.write("ocapi")
    return _one(state, call, key, record, state.settings.of(OcapiSettings).put_created_status)


def _patch(state: SandboxState, call: Call, key: tuple[str, ...]) -> Result:
    record = _link(state, key)
    doc = document(call, key)
    check_state(call, doc, key, record)
    if doc.get("position") is not None:
        record["position"] = float(doc["position"])
    record["last_modified"] = now_ocapi()
    state.stats.write("ocapi")
    return _one(state, call, key, record, 200)


def _delete(state: SandboxState, call: Call, key: tuple[str, ...]) -> Result:
    record = _link(state, key)
    check_state(call, {}, key, record)
    targets = state.store.of(OcapiStore).links[(key[0], key[1])]
    del targets[(key[2], key[3], key[4])]
    if not targets:
        del state.store.of(OcapiStore).links[(key[0], key[1])]
    state.stats.write("ocapi")
    return Result(204, None)


def to_response(result: Result) -> web.Response:
    headers = dict(result.headers)
    if result.status >= 400:
        headers["Cache-Control"] = "max-age=0,no-cache,no-store,must-revalidate"
    return json_response(result.status, result.body, headers=headers)


async def handle(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request, "ocapi")
    call = Call(
        method=request.method,
        path=request.rel_url.raw_path,
        query=dict(request.query),
        headers=request.headers,
        body=body,
        base_url=f"{request.scheme}://{request.host}",
        content_type=request.content_type.lower() if body else None,
    )
    return to_response(dispatch(state, call))


def add_routes(app: web.Application) -> None:
    base = f"{OCAPI_DATA}/catalogs/{{catalog_id}}/categories/{{category_id}}/category_links"
    app.router.add_route("*", base, handle)
    app.router.add_route("*", base + "/{target_catalog_id}/{target_category_id}/{type}", handle)
