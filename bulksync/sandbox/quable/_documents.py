"""Quable v5 documents: ``GET|POST /api/documents`` and ``GET|PUT|DELETE /api/documents/{id}``.

Enough of the resource for links to have origins; the store may also be seeded with documents.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import Reply
from bulksync.sandbox._state import STATE
from bulksync.sandbox._store import now_iso
from bulksync.sandbox.quable._errors import quable_error
from bulksync.sandbox.quable._hydra import Violations, json_object, knobs, ld, page
from bulksync.sandbox.quable._store import QuableStore


def render_document(doc: dict[str, Any]) -> dict[str, Any]:
    doc_type = doc["documentType"]
    return {
        "@context": "/api/contexts/Document",
        "@id": f"/api/documents/{doc['id']}",
        "@type": "Document",
        "id": doc["id"],
        "documentType": {
            "@id": f"/api/document_types/{doc_type}",
            "@type": "DocumentType",
            "id": doc_type,
        },
        "attributes": doc["attributes"] or [],
        "classifications": [
            {"@id": f"/api/classifications/{c}", "@type": "Classification", "id": c}
            for c in doc["classifications"]
        ],
        "active": doc["active"],
        "dateCreated": doc["dateCreated"],
        "dateModified": doc["dateModified"],
        "legacyId": doc["legacyId"],
    }


def _classifications(v: Violations, data: dict[str, Any]) -> list[str] | None:
    value = data.get("classifications")
    if value is None:
        return None
    if not isinstance(value, list):
        v.add("classifications", "This value should be of type array.")
        return None
    codes: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            codes.append(item["id"])
        else:
            v.add(f"classifications[{index}].id", 'Expected an object like {"id": "<identifier>"}.')
    return codes


async def create_document(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    data = await json_object(request)
    v = Violations()
    doc_id = v.string(data, "id", required=True)
    doc_type = v.ref(data, "documentType", required=True)
    attributes = v.attributes(data)
    classifications = _classifications(v, data)
    active = v.boolean(data, "active")
    v.check(request)
    assert doc_id is not None and doc_type is not None
    store = state.store.of(QuableStore)
    if doc_id in store.documents:
        state.stats.duplicate("document")
        return quable_error(
            settings.duplicate_status,
            f'id: A document with the identifier "{doc_id}" already exists.',
            "Conflict",
        )
    stamp = now_iso()
    doc = {
        "id": doc_id,
        "documentType": doc_type,
        "attributes": attributes or {},
        "classifications": classifications or [],
        "active": True if active is None else active,
        "dateCreated": stamp,
        "dateModified": stamp,
        "legacyId": store.next_legacy_id(),
    }
    store.documents[doc_id] = doc
    state.stats.write("quable")
    return ld(201, render_document(doc))


def _document_or_404(request: web.Request) -> dict[str, Any]:
    doc_id = request.match_info["id"]
    doc = request.app[STATE].store.of(QuableStore).documents.get(doc_id)
    if doc is None:
        raise Reply(quable_error(404, f'Document "{doc_id}" not found.', "Not Found"))
    return doc


async def get_document(request: web.Request) -> web.Response:
    return ld(200, render_document(_document_or_404(request)))


async def update_document(request: web.Request) -> web.Response:
    state = request.app[STATE]
    doc = _document_or_404(request)
    data = await json_object(request)
    v = Violations()
    if "id" in data and data["id"] != doc["id"]:
        v.add("id", "The identifier cannot be changed.")
    doc_type = v.ref(data, "documentType", required=False)
    attributes = v.attributes(data)
    classifications = _classifications(v, data)
    active = v.boolean(data, "active")
    v.check(request)
    if doc_type is not None:
        doc["documentType"] = doc_type
    if attributes:
        doc["attributes"] = {**doc["attributes"], **attributes}
    if classifications is not None:
        doc["classifications"] = classifications
    if active is not None:
        doc["active"] = active
    doc["dateModified"] = now_iso()
    state.stats.write("quable")
    return ld(200, render_document(doc))


async def delete_document(request: web.Request) -> web.Response:
    state = request.app[STATE]
    doc = _document_or_404(request)
    store = state.store.of(QuableStore)
    del store.documents[doc["id"]]
    store.remove_links_touching(doc["id"])
    state.stats.write("quable")
    return web.Response(status=204)


async def list_documents(request: web.Request) -> web.Response:
    docs = list(request.app[STATE].store.of(QuableStore).documents.values())
    return page(
        request,
        docs,
        render_document,
        context="Document",
        orderable=("id", "dateCreated", "dateModified"),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/documents", create_document)
    app.router.add_get("/api/documents", list_documents)
    app.router.add_get("/api/documents/{id}", get_document)
    app.router.add_put("/api/documents/{id}", update_document)
    app.router.add_delete("/api/documents/{id}", delete_document)
