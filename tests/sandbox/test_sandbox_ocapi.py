"""OCAPI Data API category links over real HTTP: token, faults, upsert, concurrency, paging."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest
from sandbox_helpers import call, ocapi_token, small_settings

from bulksync.sandbox import OcapiSettings, Sandbox, running_sandbox

BASE = "/s/-/dw/data/v23_2/catalogs"
LINKS = f"{BASE}/catalog-1/categories/category-0001/category_links"


# The properties of the seed's CategoryLink samples (GET, PUT, PATCH).
SEED_CATEGORY_LINK_KEYS = {
    "_v",
    "_type",
    "last_modified",
    "link",
    "position",
    "source_catalog_id",
    "source_catalog_name",
    "source_category_id",
    "source_category_name",
    "target_catalog_id",
    "target_catalog_name",
    "target_category_id",
    "target_category_name",
    "type",
}


def one(target: str = "category-0002", catalog: str = "catalog-2", type_: str = "other") -> str:
    return f"{LINKS}/{catalog}/{target}/{type_}"


# The documented Account Manager path, and the older one the Data API spec still names.
@pytest.mark.parametrize("path", ["/dwsso/oauth2/access_token", "/dw/oauth2/access_token"])
async def test_token_with_basic_credentials(http, path: str):
    basic = base64.b64encode(b"sandbox:sandbox").decode()
    status, body, _ = await call(
        http,
        "POST",
        path,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200 and body["expires_in"] == 1799 and body["token_type"] == "Bearer"
    wrong = base64.b64encode(b"sandbox:nope").decode()
    status, body, _ = await call(
        http,
        "POST",
        path,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {wrong}"},
    )
    assert status == 401 and body["error"] == "invalid_client"
    status, body, _ = await call(
        http,
        "POST",
        path,
        data={"grant_type": "password"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 400 and body["error"] == "unsupported_grant_type"


async def test_401_fault_documents(http):
    status, body, _ = await call(http, "GET", LINKS)
    assert status == 401
    assert body["_v"] == "23.2" and body["fault"]["type"] == "AuthorizationHeaderMissingException"
    status, body, _ = await call(http, "GET", LINKS, headers={"Authorization": "Bearer nope"})
    assert status == 401 and body["fault"]["type"] == "InvalidAccessTokenException"
    assert body["fault"]["arguments"] == {"accessToken": "nope"}
    status, body, _ = await call(http, "GET", LINKS, headers={"Authorization": "Basic eA=="})
    assert status == 401 and body["fault"]["type"] == "InvalidAuthorizationHeaderException"


async def test_expired_token_is_invalid_access_token():
    async with (
        running_sandbox(small_settings(time_scale=1799.0)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        assert (await call(http, "GET", LINKS, headers=token))[0] == 200
        await asyncio.sleep(1.2)
        status, body, _ = await call(http, "GET", LINKS, headers=token)
        assert status == 401 and body["fault"]["type"] == "InvalidAccessTokenException"


async def test_put_upserts_200_as_the_spec_lists_then_200_and_get(sandbox: Sandbox, http):
    token = await ocapi_token(http)
    status, body, headers = await call(http, "PUT", one(), json={"position": 1.0}, headers=token)
    assert status == 200
    assert body["_type"] == "category_link" and body["position"] == 1.0
    assert body["source_catalog_id"] == "catalog-1" and body["target_catalog_id"] == "catalog-2"
    assert body["source_category_name"] == {"default": "Category 0001"}
    assert body["link"] == f"{sandbox.url}{one()}"
    assert len(headers["x-dw-resource-state"]) == 64
    # exactly the CategoryLink of the seed's PUT 201 sample: no _resource_state in the body
    assert set(body) == SEED_CATEGORY_LINK_KEYS
    status, body, _ = await call(http, "PUT", one(), json={"position": 3}, headers=token)
    assert status == 200 and body["position"] == 3.0
    assert sandbox.state.stats.duplicates["category_link"] == 1
    status, body, _ = await call(http, "GET", one(), headers=token)
    assert status == 200 and body["position"] == 3.0


async def test_not_found_faults_are_the_seeds(http):
    token = await ocapi_token(http)
    status, body, headers = await call(
        http, "GET", f"{BASE}/WapiCatalog/categories/x/category_links", headers=token
    )
    assert status == 404
    assert body == {
        "_v": "23.2",
        "fault": {
            "type": "CatalogNotFoundException",
            "message": "No catalog with ID 'WapiCatalog' was found.",
            "arguments": {"catalogId": "WapiCatalog"},
        },
    }
    assert headers["Cache-Control"] == "max-age=0,no-cache,no-store,must-revalidate"
    status, body, _ = await call(
        http, "GET", f"{BASE}/catalog-1/categories/category1/category_links", headers=token
    )
    assert status == 404 and body["fault"]["type"] == "CategoryNotFoundException"
    assert body["fault"]["message"] == (
        "No category with ID 'category1' for catalog 'catalog-1' was found."
    )
    status, body, _ = await call(http, "PUT", one(target="nope"), json={}, headers=token)
    assert status == 404 and body["fault"]["type"] == "CategoryNotFoundException"
    status, body, _ = await call(http, "GET", one(), headers=token)
    assert status == 404
    assert body["_type"] == "fault" and body["fault"]["type"] == "CategoryLinkNotFoundException"
    assert body["fault"]["message"] == (
        "No category link found from 'catalog-1 'category-0001' to 'catalog-2' 'category-0002' "
        "with type 'other' was found."
    )
    for method in ("PATCH", "DELETE"):
        assert (await call(http, method, one(), json={}, headers=token))[0] == 404


async def test_patch_and_resource_state_conflicts(http):
    token = await ocapi_token(http)
    _, _, created = await call(http, "PUT", one(), json={"position": 1}, headers=token)
    state = created["x-dw-resource-state"]
    status, body, _ = await call(
        http, "PATCH", one(), headers=token, json={"position": 5, "_resource_state": state}
    )
    assert status == 200 and body["position"] == 5.0
    # the token we held is now stale: by body and by header
    status, body, _ = await call(
        http, "PATCH", one(), headers=token, json={"position": 6, "_resource_state": state}
    )
    assert status == 409 and body["fault"]["type"] == "ResourceStateConflictException"
    assert body["fault"]["arguments"]["client"] == state
    status, body, _ = await call(
        http, "PATCH", one(), json={"position": 6}, headers={**token, "x-dw-resource-state": state}
    )
    assert status == 409
    status, body, _ = await call(
        http, "DELETE", one(), headers={**token, "x-dw-resource-state": state}
    )
    assert status == 409
    _, current, current_headers = await call(http, "GET", one(), headers=token)
    assert current["position"] == 5.0
    fresh = current_headers["x-dw-resource-state"]
    status, body, _ = await call(
        http, "DELETE", one(), headers={**token, "x-dw-resource-state": fresh}
    )
    assert status == 204 and body is None
    assert (await call(http, "GET", one(), headers=token))[0] == 404


async def test_request_document_validation(http):
    token = await ocapi_token(http)
    cases = [
        ({"position": "1"}, "TypeDecodingException"),
        ({"colour": "red"}, "UnknownPropertyException"),
        ({"_v": "21.3"}, "UnexpectedVersionException"),
        ({"source_catalog_id": "elsewhere"}, "PropertyConstraintViolationException"),
    ]
    for body, fault in cases:
        status, answer, _ = await call(http, "PUT", one(), json=body, headers=token)
        assert status == 400 and answer["fault"]["type"] == fault, body
    status, answer, _ = await call(
        http, "PUT", one(), data=b"{", headers={**token, "Content-Type": "application/json"}
    )
    assert status == 400 and answer["fault"]["type"] == "BodyDecodingException"
    status, answer, _ = await call(
        http, "PUT", one(), data=b"<xml/>", headers={**token, "Content-Type": "text/plain"}
    )
    assert status == 415 and answer["fault"]["type"] == "UnsupportedContentTypeException"
    status, answer, _ = await call(http, "PUT", one(type_="bogus"), json={}, headers=token)
    assert status == 400 and answer["fault"]["type"] == "IllegalEnumerationValueException"
    # the read-only fields of the vendor's own PUT sample are accepted as they are
    sample = {
        "_v": "23.2",
        "_type": "category_link",
        "position": 1.0,
        "type": "other",
        "source_catalog_id": "catalog-1",
        "source_catalog_name": {"default": "x"},
        "last_modified": "2015-11-18T15:15:24.827Z",
    }
    assert (await call(http, "PUT", one(), json=sample, headers=token))[0] == 200
    # position: a double with a minimum of 0 (the CategoryLink document)
    status, answer, _ = await call(http, "PUT", one(), json={"position": -1.0}, headers=token)
    assert status == 400 and answer["fault"]["type"] == "ValueConstraintViolationException"
    assert "position" in answer["fault"]["message"]
    assert (await call(http, "PUT", one(), json={"position": 0}, headers=token))[0] == 200


async def test_list_is_sorted_by_position_and_paged(http):
    token = await ocapi_token(http)
    for target, position in (("category-0002", 3), ("category-0003", 1), ("root", 2)):
        await call(
            http,
            "PUT",
            one(target=target, catalog="catalog-1"),
            json={"position": position},
            headers=token,
        )
    status, body, _ = await call(http, "GET", LINKS, headers=token)
    assert status == 200
    assert [d["target_category_id"] for d in body["data"]] == [
        "category-0003",
        "root",
        "category-0002",
    ]
    assert (body["count"], body["start"], body["total"]) == (3, 0, 3)
    _, body, _ = await call(http, "GET", f"{LINKS}?start=1&count=1", headers=token)
    assert [d["target_category_id"] for d in body["data"]] == ["root"]
    assert (body["count"], body["start"], body["total"]) == (1, 1, 3) and "next" in body
    _, body, _ = await call(http, "GET", f"{LINKS}?select=(total,data.(position))", headers=token)
    assert body["select"] == "(total,data.(position))"
    assert set(body) == {"_v", "total", "data", "select"}
    assert body["data"][0] == {"_v": "23.2", "_type": "category_link", "position": 1.0}
    _, body, _ = await call(http, "GET", f"{LINKS}?select=(**)&count=0", headers=token)
    assert body["data"] == [] and body["total"] == 3


async def test_count_and_start_ranges(http):
    token = await ocapi_token(http)
    assert (await call(http, "GET", f"{LINKS}?count=200&start=999", headers=token))[0] == 200
    for query, fault in (
        ("count=201", "ValueConstraintViolationException"),
        ("count=-1", "ValueConstraintViolationException"),
        ("start=1000", "ValueConstraintViolationException"),
        ("start=x", "MalformedParameterException"),
        ("select=(data.", "MalformedSelectorException"),
    ):
        status, body, _ = await call(http, "GET", f"{LINKS}?{query}", headers=token)
        assert status == 400 and body["fault"]["type"] == fault, query


async def test_unknown_paths_and_methods_are_fault_documents(http):
    token = await ocapi_token(http)
    status, body, _ = await call(http, "GET", "/s/-/dw/data/v23_2/products/x", headers=token)
    assert status == 404 and body["fault"]["type"] == "ResourcePathNotFoundException"
    status, body, _ = await call(http, "POST", LINKS, json={}, headers=token)
    assert status == 405 and body["fault"]["type"] == "MethodNotAllowedException"


async def test_list_and_get_bodies_have_exactly_the_seed_properties(http):
    token = await ocapi_token(http)
    await call(http, "PUT", one(), json={"position": 1}, headers=token)
    _, listed, _ = await call(http, "GET", LINKS, headers=token)
    assert set(listed) == {"_v", "count", "data", "start", "total"}
    assert set(listed["data"][0]) == SEED_CATEGORY_LINK_KEYS
    status, body, headers = await call(http, "PATCH", one(), json={"position": 5}, headers=token)
    assert status == 200 and set(body) == SEED_CATEGORY_LINK_KEYS
    assert "x-dw-resource-state" in headers


async def test_resource_state_in_body_is_a_knob():
    knobs = OcapiSettings(seed_catalogs=2, seed_categories=3, resource_state_in_body=True)
    async with (
        running_sandbox(small_settings(ocapi=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        _, body, headers = await call(http, "PUT", one(), json={"position": 1}, headers=token)
        assert body["_resource_state"] == headers["x-dw-resource-state"]
        status, _, _ = await call(
            http, "PATCH", one(), headers=token, json={"_resource_state": "stale"}
        )
        assert status == 409


async def test_put_created_status_201_is_a_knob_and_an_update_stays_200():
    knobs = OcapiSettings(seed_catalogs=2, seed_categories=3, put_created_status=201)
    async with (
        running_sandbox(small_settings(ocapi=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        assert (await call(http, "PUT", one(), json={"position": 1}, headers=token))[0] == 201
        assert (await call(http, "PUT", one(), json={"position": 2}, headers=token))[0] == 200
    with pytest.raises(ValueError, match="put_created_status"):
        OcapiSettings(put_created_status=204)


async def test_listings_may_leave_out_the_optional_link_property():
    knobs = OcapiSettings(seed_catalogs=2, seed_categories=3, list_link_property=False)
    async with (
        running_sandbox(small_settings(ocapi=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        await call(http, "PUT", one(), json={"position": 1}, headers=token)
        _, listed, _ = await call(http, "GET", LINKS, headers=token)
        assert listed["total"] == 1
        assert set(listed["data"][0]) == SEED_CATEGORY_LINK_KEYS - {"link"}
        # a single link's own document still names itself
        _, single, _ = await call(http, "GET", one(), headers=token)
        assert single["link"].endswith(one())
