"""Quable v4 document links: mode update (re-adding is a no-op) versus replace."""

from __future__ import annotations

import aiohttp
from sandbox_helpers import QUABLE, call, small_settings

from bulksync.sandbox import QuableSettings, Sandbox, running_sandbox

URL = "/api_1.php/documents/doc-00001/links/ref_refCol"


def items(*pairs: tuple[str, int]) -> list[dict]:
    return [{"target_code": code, "sequence": seq} for code, seq in pairs]


async def targets(http, origin: str = "doc-00001", link_type: str = "ref_refCol") -> dict:
    _, body, _ = await call(
        http, "GET", f"/api/links?origin.id={origin}&linkType.id={link_type}", headers=QUABLE
    )
    return {m["target"]["id"]: m["sequence"] for m in body["hydra:member"]}


async def test_update_adds_and_readding_is_a_no_op(sandbox: Sandbox, http):
    body = {"mode": "update", "items": items(("doc-00002", 1), ("doc-00003", 2))}
    status, answer, headers = await call(http, "POST", URL, json=body, headers=QUABLE)
    assert status == 200 and "Quable-Digest" in headers
    assert answer["added"] == ["doc-00002", "doc-00003"] and answer["unchanged"] == []
    assert await targets(http) == {"doc-00002": 1, "doc-00003": 2}
    before = dict(sandbox.state.store.quable.links)
    body = {"mode": "update", "items": items(("doc-00002", 9), ("doc-00004", 3))}
    status, answer, _ = await call(http, "POST", URL, json=body, headers=QUABLE)
    assert answer["added"] == ["doc-00004"] and answer["unchanged"] == ["doc-00002"]
    # existing links are untouched, even their sequence
    assert await targets(http) == {"doc-00002": 1, "doc-00003": 2, "doc-00004": 3}
    assert all(link_id in sandbox.state.store.quable.links for link_id in before)
    assert sandbox.state.stats.duplicates["v4_link"] == 1


async def test_mode_defaults_to_update(http):
    await call(http, "POST", URL, json={"items": items(("doc-00002", 1))}, headers=QUABLE)
    await call(http, "POST", URL, json={"items": items(("doc-00003", 1))}, headers=QUABLE)
    assert set(await targets(http)) == {"doc-00002", "doc-00003"}


async def test_replace_keeps_exactly_the_items_and_empty_removes_all(http):
    await call(
        http,
        "POST",
        URL,
        headers=QUABLE,
        json={"mode": "update", "items": items(("doc-00002", 1), ("doc-00003", 2))},
    )
    await call(
        http,
        "POST",
        "/api_1.php/documents/doc-00001/links/other",
        headers=QUABLE,
        json={"mode": "update", "items": items(("doc-00005", 1))},
    )
    status, answer, _ = await call(
        http,
        "POST",
        URL,
        headers=QUABLE,
        json={"mode": "replace", "items": items(("doc-00003", 5), ("doc-00004", 1))},
    )
    assert status == 200
    assert answer["removed"] == ["doc-00002"] and answer["added"] == ["doc-00004"]
    assert answer["updated"] == ["doc-00003"]
    assert await targets(http) == {"doc-00003": 5, "doc-00004": 1}
    status, answer, _ = await call(
        http, "POST", URL, json={"mode": "replace", "items": []}, headers=QUABLE
    )
    assert status == 200 and answer["links"] == []
    assert await targets(http) == {}
    # other link types of the same document are not touched by a replace
    assert await targets(http, link_type="other") == {"doc-00005": 1}


async def test_v4_targets_may_be_assets(http):
    await call(
        http,
        "POST",
        "/api/assets",
        headers=QUABLE,
        json={"id": "img", "remotePath": "https://x/img.png"},
    )
    await call(http, "POST", URL, json={"items": items(("img", 1))}, headers=QUABLE)
    _, body, _ = await call(http, "GET", "/api/links?target.id=img", headers=QUABLE)
    assert body["hydra:member"][0]["target"]["@id"] == "/api/assets/img"


async def test_v4_errors_change_nothing(sandbox: Sandbox, http):
    cases = [
        ("/api_1.php/documents/nope/links/ref", {"items": items(("doc-00002", 1))}, 404),
        (URL, {"items": items(("doc-00002", 1), ("ghost", 2))}, 400),
        (URL, {"mode": "update"}, 400),
        (URL, {"mode": "merge", "items": []}, 400),
        (URL, {"items": [{"target_code": "doc-00002"}]}, 400),
        (URL, {"items": "doc-00002"}, 400),
    ]
    for path, body, expected in cases:
        status, answer, _ = await call(http, "POST", path, json=body, headers=QUABLE)
        assert status == expected, body
        assert answer["error"]["code"] == expected and answer["error"]["message"]
    status, _, _ = await call(
        http, "POST", URL, data=b"{", headers={**QUABLE, "Content-Type": "application/json"}
    )
    assert status == 400
    # the seed's request is 'Content-Type': 'application/json', nothing else
    payload = b'{"items": [{"target_code": "doc-00002", "sequence": 1}]}'
    for mime in ("application/ld+json", "text/plain"):
        status, _, _ = await call(
            http, "POST", URL, data=payload, headers={**QUABLE, "Content-Type": mime}
        )
        assert status == 415, mime
    assert sandbox.state.store.quable.links == {}


async def test_update_may_edit_existing_sequences_by_knob():
    # Seed 000: "To edit existing links, use the mode: update" -- what that does to an
    # existing link's sequence is not said: keep (default, above) or edit.
    knobs = QuableSettings(seed_documents=5, v4_update_existing="edit")
    async with (
        running_sandbox(small_settings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        body = {"items": items(("doc-00002", 1), ("doc-00003", 2))}
        await call(http, "POST", URL, json=body, headers=QUABLE)
        body = {"items": items(("doc-00002", 7), ("doc-00003", 2))}
        status, answer, _ = await call(http, "POST", URL, json=body, headers=QUABLE)
        assert status == 200
        assert answer["updated"] == ["doc-00002"] and answer["unchanged"] == ["doc-00003"]
        assert await targets(http) == {"doc-00002": 7, "doc-00003": 2}
        assert len(sandbox.state.store.quable.links) == 2
