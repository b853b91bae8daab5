"""Quable v4 links: ``POST /api_1.php/documents/{document_code}/links/{link_type_code}``.

Per the vendor's cookbook (seed 000): ``mode`` ``update`` (the default) adds the items, and
re-adding an existing link is a no-op ("If one or both of these links already exists, nothing
is changed"); ``replace`` makes the links of that type exactly the items, and an empty
``items`` removes them all. The seed also says "To edit existing links, use the mode: update"
without saying what an update does to an existing link's sequence: the knob
``quable.v4_update_existing`` chooses ``keep`` (default: the stricter reading, a client must
use ``replace`` to move a link) or ``edit``. The success body is not
documented: the sandbox answers what changed (``added``/``updated``/``removed``/``unchanged``)
and the resulting ``links``. Links made here are the same links ``/api/links`` lists.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import Reply, json_response
from bulksync.sandbox._http import parse_json, read_body
from bulksync.sandbox._state import STATE
from bulksync.sandbox._store import now_iso
from bulksync.sandbox.quable._errors import quable_v4_error
from bulksync.sandbox.quable._hydra import knobs
from bulksync.sandbox.quable._links import unknown_link_type
from bulksync.sandbox.quable._store import QuableStore

MODES = ("update", "replace")


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_body(request, "quable")
    if request.content_type.lower() != "application/json":  # the seed's only Content-Type
        raise Reply(quable_v4_error(415, "Content-Type must be application/json."))
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise Reply(quable_v4_error(400, f"Malformed JSON body: {exc}")) from exc
    if not isinstance(data, dict):
        raise Reply(quable_v4_error(400, "The body must be a JSON object."))
    return data


def _items(data: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """Validate ``mode`` and ``items``; returns the mode and {target_code: sequence}."""
    problems: list[str] = []
    mode = data.get("mode", "update")
    if mode not in MODES:
        problems.append(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    items = data.get("items")
    wanted: dict[str, int] = {}
    if items is None:
        problems.append("items is required.")
    elif not isinstance(items, list):
        problems.append("items must be an array.")
    else:
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"items[{index}] must be an object.")
                continue
            code, sequence = item.get("target_code"), item.get("sequence")
            if not isinstance(code, str) or not code:
                problems.append(f"items[{index}].target_code is required (string).")
            if isinstance(sequence, bool) or not isinstance(sequence, int):
                problems.append(f"items[{index}].sequence is required (integer).")
            if isinstance(code, str) and code and isinstance(sequence, int):
                wanted[code] = sequence
    if problems:
        raise Reply(quable_v4_error(400, " ".join(problems)))
    return str(mode), wanted


async def document_links(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    doc_code = request.match_info["document_code"]
    link_type = request.match_info["link_type_code"]
    mode, wanted = _items(await _body(request))
    store = state.store.of(QuableStore)
    if doc_code not in store.documents:
        return quable_v4_error(404, f"Document '{doc_code}' not found.")
    if unknown_link_type(request, link_type):
        return quable_v4_error(404, f"Link type '{link_type}' not found.")
    unknown = [code for code in wanted if store.kind_of(code) is None]
    if unknown:
        return quable_v4_error(
            settings.unknown_reference_status, "Unknown target_code: " + ", ".join(unknown)
        )
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    unchanged: list[str] = []
    if mode == "replace":
        for link in store.links_of(doc_code, link_type):
            target = link["target"]
            if target not in wanted:
                store.remove_link(link["id"])
                removed.append(target)
            elif link["sequence"] != wanted[target]:
                link["sequence"] = wanted[target]
                link["dateModified"] = now_iso()
                updated.append(target)
    edit = mode == "update" and settings.v4_update_existing == "edit"
    for code, sequence in wanted.items():
        existing = store.find_link(doc_code, link_type, code)
        if existing is not None:
            if mode == "update":
                state.stats.duplicate("v4_link")
            if edit and existing["sequence"] != sequence:
                existing["sequence"] = sequence
                existing["dateModified"] = now_iso()
                updated.append(code)
            elif code not in updated:
                unchanged.append(code)
            continue
        kind = store.kind_of(code)
        assert kind is not None
        store.add_link(doc_code, "document", code, kind, link_type, sequence, {})
        added.append(code)
    changes = len(added) + len(updated) + len(removed)
    if changes:
        state.stats.write("quable", changes)
    links = sorted(store.links_of(doc_code, link_type), key=lambda link: link["sequence"])
    return json_response(
        settings.v4_success_status,
        {
            "document_code": doc_code,
            "link_type_code": link_type,
            "mode": mode,
            "added": added,
            "updated": updated,
            "removed": removed,
            "unchanged": unchanged,
            "links": [
                {"id": link["id"], "target_code": link["target"], "sequence": link["sequence"]}
                for link in links
            ],
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(
        "/api_1.php/documents/{document_code}/links/{link_type_code}", document_links
    )
