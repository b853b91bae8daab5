"""Quable v5 links: ``POST|GET /api/links``, ``GET|DELETE /api/links/{id}``.

A link's origin and target are documents or assets already in the store; its link type must
be one of ``quable.link_types`` unless that list is empty.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import Reply
from bulksync.sandbox._state import STATE
from bulksync.sandbox.quable._errors import quable_error
from bulksync.sandbox.quable._hydra import Violations, json_object, knobs, ld, page
from bulksync.sandbox.quable._store import QuableStore

_IRI = {"document": ("/api/documents", "Document"), "asset": ("/api/assets", "Asset")}


def _ref(kind: str, resource_id: str) -> dict[str, str]:
    base, type_ = _IRI[kind]
    return {"@id": f"{base}/{resource_id}", "@type": type_, "id": resource_id}


def render_link(link: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": "/api/contexts/Link",
        "@id": f"/api/links/{link['id']}",
        "@type": "Link",
        "id": link["id"],
        "origin": _ref(link["originKind"], link["origin"]),
        "target": _ref(link["targetKind"], link["target"]),
        "linkType": {
            "@id": f"/api/link_types/{link['linkType']}",
            "@type": "LinkType",
            "id": link["linkType"],
        },
        "attributes": link["attributes"] or [],
        "sequence": link["sequence"],
        "dateCreated": link["dateCreated"],
        "dateModified": link["dateModified"],
    }


def unknown_link_type(request: web.Request, link_type: str) -> bool:
    allowed = knobs(request).link_types
    return bool(allowed) and link_type not in allowed


async def create_link(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    data = await json_object(request)
    v = Violations()
    origin = v.ref(data, "origin", required=True)
    target = v.ref(data, "target", required=True)
    link_type = v.ref(data, "linkType", required=True)
    sequence = v.integer(data, "sequence", required=False)
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict | list):
        v.add("attributes", "This value should be of type array or object.")
    v.check(request)
    assert origin is not None and target is not None and link_type is not None
    store = state.store.of(QuableStore)
    status = settings.unknown_reference_status
    if unknown_link_type(request, link_type):
        return quable_error(status, f'linkType: Item not found for "/api/link_types/{link_type}".')
    origin_kind, target_kind = store.kind_of(origin), store.kind_of(target)
    if origin_kind is None:
        return quable_error(
            status, f'origin: no document or asset with the identifier "{origin}" exists.'
        )
    if target_kind is None:
        return quable_error(
            status, f'target: no document or asset with the identifier "{target}" exists.'
        )
    existing = store.find_link(origin, link_type, target)
    if existing is not None:
        state.stats.duplicate("link")
        if settings.duplicate_links == "reject":
            return quable_error(
                settings.duplicate_status,
                f'A link "{link_type}" from "{origin}" to "{target}" already exists '
                f"(/api/links/{existing['id']}).",
                "Conflict",
            )
    link = store.add_link(
        origin, origin_kind, target, target_kind, link_type, sequence or 0, attributes or {}
    )
    state.stats.write("quable")
    return ld(201, render_link(link))


async def list_links(request: web.Request) -> web.Response:
    store = request.app[STATE].store.of(QuableStore)
    query = request.query
    origin, link_type, target = (
        query.get("origin.id"),
        query.get("linkType.id"),
        query.get("target.id"),
    )
    if origin is not None and link_type is not None:
        candidates = store.links_of(origin, link_type)
    else:
        candidates = list(store.links.values())
    selected = [
        link
        for link in candidates
        if (origin is None or link["origin"] == origin)
        and (link_type is None or link["linkType"] == link_type)
        and (target is None or link["target"] == target)
    ]
    return page(
        request,
        selected,
        render_link,
        context="Link",
        orderable=("sequence", "dateCreated", "dateModified"),
    )


def _link_or_404(request: web.Request) -> dict[str, Any]:
    link_id = request.match_info["id"]
    link = request.app[STATE].store.of(QuableStore).links.get(link_id)
    if link is None:
        raise Reply(quable_error(404, f'Link "{link_id}" not found.', "Not Found"))
    return link


async def get_link(request: web.Request) -> web.Response:
    return ld(200, render_link(_link_or_404(request)))


async def delete_link(request: web.Request) -> web.Response:
    state = request.app[STATE]
    link = _link_or_404(request)
    state.store.of(QuableStore).remove_link(link["id"])
    state.stats.write("quable")
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/links", create_link)
    app.router.add_get("/api/links", list_links)
    app.router.add_get("/api/links/{id}", get_link)
    app.router.add_delete("/api/links/{id}", delete_link)
