"""/_sandbox/stats, /_sandbox/export and /_sandbox/reset: no auth, exact counters."""

from __future__ import annotations

from sandbox_helpers import QUABLE, call, ocapi_token, propeller_token

from bulksync.sandbox import Sandbox


async def test_stats_count_routes_statuses_writes_and_duplicates(sandbox: Sandbox, http):
    asset = {"id": "a", "remotePath": "https://x/y.png"}
    await call(http, "POST", "/api/assets", json=asset, headers=QUABLE)
    await call(http, "POST", "/api/assets", json=asset, headers=QUABLE)
    await call(http, "GET", "/api/assets/a")
    token = await propeller_token(http)
    links = {
        "links": [
            {
                "type": "parts",
                "subtype": "s",
                "from": {"class": "product", "id": 1},
                "to": {"class": "product", "id": 2},
            }
        ]
    }
    await call(http, "POST", "/v2/links/bulk/id", json=links, headers=token)
    await call(http, "POST", "/v2/links/bulk/id", json=links, headers=token)
    status, stats, _ = await call(http, "GET", "/_sandbox/stats")
    assert status == 200
    assert stats["requests"]["POST /api/assets"] == {"201": 1, "409": 1}
    assert stats["requests"]["GET /api/assets/{id}"] == {"401": 1}
    assert stats["requests"]["POST /v2/links/bulk/{lookupKey}"] == {"200": 2}
    assert stats["writes_applied"] == {"total": 3, "quable": 1, "propeller": 2}
    assert stats["duplicate_create_attempts"] == {"total": 2, "asset": 1, "propeller_link": 1}
    assert stats["auth_failures"]["quable"] == 1
    assert stats["rate_limited"] == {"total": 0}
    assert stats["store"]["quable"] == {"documents": 5, "assets": 1, "files": 0, "links": 0}
    assert stats["store"]["propeller"] == {
        "products": 5,
        "categories": 3,
        "companies": 2,
        "contacts": 2,
        "users": 2,
        "links": 1,
    }
    assert stats["store"]["ocapi"] == {"catalogs": 2, "categories": 8, "category_links": 0}
    assert stats["rate_windows"]["quable"][0]["limit"] == 6000
    assert stats["requests_total"] == 6  # this stats call is counted once it is answered


async def test_export_is_the_store_as_json(http):
    await call(
        http,
        "POST",
        "/api/links",
        headers=QUABLE,
        json={
            "origin": {"id": "doc-00001"},
            "target": {"id": "doc-00002"},
            "linkType": {"id": "t"},
        },
    )
    token = await ocapi_token(http)
    await call(
        http,
        "PUT",
        "/s/-/dw/data/v23_2/catalogs/catalog-1/categories/root/category_links/catalog-2/root/other",
        json={"position": 2},
        headers=token,
    )
    status, export, _ = await call(http, "GET", "/_sandbox/export")
    assert status == 200
    assert export["quable"]["links"][0]["origin"] == "doc-00001"
    assert len(export["quable"]["documents"]) == 5
    assert len(export["propeller"]["resources"]["product"]) == 5
    (link,) = export["ocapi"]["category_links"]
    assert link["target_catalog_id"] == "catalog-2" and link["position"] == 2.0


async def test_reset_restores_the_seeded_store_and_clears_counters(sandbox: Sandbox, http):
    await call(http, "DELETE", "/api/documents/doc-00001", headers=QUABLE)
    _, login, _ = await call(
        http,
        "POST",
        "/api_1.php/sessions",
        json={"signin": {"username": "sandbox", "password": "sandbox"}},
    )
    status, body, _ = await call(http, "POST", "/_sandbox/reset")
    assert status == 200 and body["reset"] is True
    assert "doc-00001" in sandbox.state.store.quable.documents
    _, stats, _ = await call(http, "GET", "/_sandbox/stats")
    # only the reset call itself, counted once answered, survives the reset
    assert stats["requests"] == {"POST /_sandbox/reset": {"200": 1}}
    assert stats["writes_applied"] == {"total": 0}
    assert stats["fault_counter"] == 0
    token = {"Authorization": f"Bearer {login['oauth']['access_token']}"}
    assert (await call(http, "GET", "/api/assets", headers=token))[0] == 401
