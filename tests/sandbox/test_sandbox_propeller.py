"""Propeller over real HTTP: token, bulk links by id and sourceId, errors, get and search.

As the docs place them: the REST API under ``/v2``, the token at the host root."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
from sandbox_helpers import call, propeller_token, small_settings

from bulksync.sandbox import PropellerSettings, Sandbox, running_sandbox


def link(a: int, b: int, type_: str = "related", cls: str = "product", **extra) -> dict:
    return {
        "type": type_,
        "subtype": "cross",
        "from": {"class": cls, "id": a},
        "to": {"class": cls, "id": b},
        **extra,
    }


def by_source(a: str, b: str) -> dict:
    end = {"class": "product", "language": "NL", "source": "SANDBOX"}
    return {
        "type": "related",
        "subtype": "upsell",
        "from": {**end, "sourceId": a},
        "to": {**end, "sourceId": b},
    }


FORM = {"client_id": "sandbox", "client_secret": "sandbox", "grant_type": "client_credentials"}


async def test_token_shape_and_errors(http):
    form = FORM
    status, body, _ = await call(http, "POST", "/oauth2/token", data=form)
    assert status == 200
    # The current docs' answer: expires_in a number (30 minutes), token_type Bearer.
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    assert body["scope"] == "profile" and body["access_token"]
    status, body, _ = await call(
        http, "POST", "/oauth2/token", data={**form, "client_secret": "wrong"}
    )
    assert status == 401 and body["ErrorCode"] == "invalid_client"
    status, body, _ = await call(
        http, "POST", "/oauth2/token", data={**form, "grant_type": "password"}
    )
    assert status == 400
    assert (await call(http, "POST", "/oauth2/token", json=form))[0] == 400


async def test_the_old_token_answer_is_a_knob():
    knobs = PropellerSettings(seed_products=1, token_answer="legacy")
    async with (
        running_sandbox(small_settings(propeller=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        status, body, _ = await call(http, "POST", "/oauth2/token", data=FORM)
    assert status == 200
    assert body["token_type"] == "BearerToken" and body["expires_in"] == "1800"
    assert body["status"] == "approved" and body["access_token"]


async def test_the_api_is_under_v2_and_the_token_at_the_root(http):
    token = await propeller_token(http)
    payload = {"links": [link(1, 2)]}
    # The paths without /v2 are not Propeller's: nothing answers them.
    for method, path in [
        ("POST", "/links/bulk/id"),
        ("GET", "/links/1"),
        ("POST", "/links/search"),
    ]:
        assert (await call(http, method, path, json=payload, headers=token))[0] == 404, path
    assert (await call(http, "POST", "/v2/oauth2/token", data=FORM))[0] != 200
    status, body, _ = await call(http, "POST", "/v2/links/bulk/id", json=payload, headers=token)
    assert status == 200 and body["data"][0]["success"] is True


async def test_account_links_join_seeded_users_and_contacts_to_companies(sandbox: Sandbox, http):
    # docs.propeller-commerce.com/rest-sonar/links: type account, subtype manage, from a user or
    # a contact to a company.
    token = await propeller_token(http)
    company = {"class": "company", "id": 1}
    links = [
        {"type": "account", "subtype": "manage", "from": {"class": cls, "id": 2}, "to": company}
        for cls in ("user", "contact")
    ]
    status, body, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": links}, headers=token
    )
    assert status == 200
    assert [entry["success"] for entry in body["data"]] == [True, True]
    stored = list(sandbox.state.store.propeller.links.values())
    assert {(x["type"], x["subtype"], x["from"]["class"]) for x in stored} == {
        ("account", "manage", "user"),
        ("account", "manage", "contact"),
    }


async def test_every_route_needs_a_valid_token(http):
    for method, path in [
        ("POST", "/v2/links/bulk/id"),
        ("GET", "/v2/links/1"),
        ("POST", "/v2/links/search"),
    ]:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            status, body, _ = await call(http, method, path, json={}, headers=headers)
            assert status == 401, (method, path)
            assert body["fault"]["detail"]["errorcode"] == "oauth.v2.InvalidAccessToken"


async def test_tokens_expire_with_time_scale():
    settings = small_settings(time_scale=1800.0)  # 1800 s of API time: one real second
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        token = await propeller_token(http)
        assert (await call(http, "GET", "/v2/links/1", headers=token))[0] == 404
        await asyncio.sleep(1.2)
        status, body, _ = await call(http, "GET", "/v2/links/1", headers=token)
        assert status == 401 and body["fault"]["faultstring"] == "Access Token expired"


async def test_bulk_by_id_gives_per_item_results_as_the_seed(sandbox: Sandbox, http):
    token = await propeller_token(http)
    payload = {
        "links": [
            {
                "type": "related",
                "subtype": "x",
                "from": {"class": "customer", "id": 19815},
                "to": {"class": "company", "id": 204},
            },
            link(1, 2),
            link(1, 99),
        ]
    }
    status, body, _ = await call(http, "POST", "/v2/links/bulk/id", json=payload, headers=token)
    assert status == 200
    assert body["messages"] == ["Completed"] and body["total"] == 3
    first, second, third = body["data"]
    assert first == {
        "error": "Customer with id [19815] not found",
        "from": {"class": "customer", "id": 19815},
        "lookupKey": "id",
        "success": False,
        "to": {"class": "company", "id": 204},
    }
    assert set(second) == {"from", "id", "lookupKey", "success", "to"}
    assert second["success"] is True and isinstance(second["id"], int)
    assert second["from"] == {"class": "product", "id": 1}
    assert third["success"] is False and third["error"] == "Product with id [99] not found"
    assert len(sandbox.state.store.propeller.links) == 1
    assert sandbox.state.stats.writes["propeller"] == 1


async def test_bulk_by_source_id_is_case_sensitive(http):
    token = await propeller_token(http)
    payload = {
        "links": [
            by_source("PRODUCT-00001", "PRODUCT-00002"),
            by_source("product-00001", "PRODUCT-00002"),
        ]
    }
    status, body, _ = await call(
        http, "POST", "/v2/links/bulk/sourceId", json=payload, headers=token
    )
    assert status == 200
    ok, missing = body["data"]
    assert ok["success"] is True and ok["lookupKey"] == "sourceId"
    assert ok["from"]["sourceId"] == "PRODUCT-00001" and ok["from"]["language"] == "NL"
    assert missing["success"] is False and "product-00001" in missing["error"]


async def test_invalid_lookup_key_including_wrong_case(http):
    token = await propeller_token(http)
    for key in ("ids", "ID", "sourceid", "SourceId"):
        status, body, _ = await call(
            http, "POST", f"/v2/links/bulk/{key}", json={"links": [link(1, 2)]}, headers=token
        )
        assert status == 400
        assert body == {
            "error": {
                "code": 10006,
                "messages": [
                    f"Invalid lookup key [{key}], key must contain one of the following "
                    "values: [id,sourceId]"
                ],
                "moreInfo": "https://www.propel.us/docs/errors/10006",
                "status": 400,
                "type": "InvalidLookupKey",
            }
        }


async def test_schema_errors_name_the_item_index(sandbox: Sandbox, http):
    token = await propeller_token(http)
    links = [link(1, 2), link(1, 3), link(2, 3), link(3, 4, type_="accessories-dummy")]
    status, body, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": links}, headers=token
    )
    assert status == 400
    assert body["error"]["code"] == 10007
    assert body["error"]["type"] == "SchemaValidationException"
    assert body["error"]["messages"] == [
        "#/links/3/type: accessories-dummy is not a valid enum value"
    ]
    bad = [
        link(1, 2),
        {
            "type": "related",
            "from": {"class": "product", "id": "1"},
            "to": {"class": "product", "id": 2},
            "priority": "high",
            "extra": 1,
        },
    ]
    _, body, _ = await call(http, "POST", "/v2/links/bulk/id", json={"links": bad}, headers=token)
    messages = body["error"]["messages"]
    assert "#/links/1: required key [subtype] not found" in messages
    assert "#/links/1/from/id: expected type: Integer, found: String" in messages
    assert "#/links/1/priority: expected type: Integer, found: String" in messages
    assert "#/links/1: extraneous key [extra] is not permitted" in messages
    _, body, _ = await call(http, "POST", "/v2/links/bulk/id", json={"link": []}, headers=token)
    assert body["error"]["messages"][-1] == "#: required key [links] not found"
    assert sandbox.state.store.propeller.links == {}  # a refused call writes nothing


async def test_missing_lookup_key_and_invalid_json(http):
    token = await propeller_token(http)
    payload = {
        "links": [
            {
                "type": "related",
                "subtype": "x",
                "from": {"class": "product"},
                "to": {"class": "product", "id": 2},
            }
        ]
    }
    status, body, _ = await call(http, "POST", "/v2/links/bulk/id", json=payload, headers=token)
    assert status == 400 and body["error"]["code"] == 10016
    assert body["error"]["messages"] == ["#/links/0/from: lookup key [id] not found in payload"]
    status, body, _ = await call(
        http,
        "POST",
        "/v2/links/bulk/id",
        data=b"{not json",
        headers={**token, "Content-Type": "application/json"},
    )
    assert status == 400 and body["error"]["code"] == 10005


async def test_max_items_per_call():
    settings = small_settings(propeller=PropellerSettings(seed_products=5, max_items_per_call=3))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        token = await propeller_token(http)
        three = [link(1, 2), link(1, 3), link(1, 4)]
        status, _, _ = await call(
            http, "POST", "/v2/links/bulk/id", json={"links": three}, headers=token
        )
        assert status == 200
        status, body, _ = await call(
            http, "POST", "/v2/links/bulk/id", json={"links": [*three, link(1, 5)]}, headers=token
        )
        assert status == 400 and body["error"]["code"] == 10007
        assert body["error"]["messages"] == ["#/links: expected maximum item count: 3, found: 4"]


async def test_default_max_items_is_100(http):
    token = await propeller_token(http)
    links = [link(1, 2) for _ in range(101)]
    status, body, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": links}, headers=token
    )
    assert status == 400 and "maximum item count: 100" in body["error"]["messages"][0]


async def test_same_link_twice_is_updated_and_counted(sandbox: Sandbox, http):
    token = await propeller_token(http)
    _, first, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": [link(1, 2)]}, headers=token
    )
    _, second, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": [link(1, 2, priority=5)]}, headers=token
    )
    assert first["data"][0]["id"] == second["data"][0]["id"]
    assert sandbox.state.stats.duplicates["propeller_link"] == 1
    status, body, _ = await call(http, "GET", f"/v2/links/{first['data'][0]['id']}", headers=token)
    assert status == 200 and body["data"]["priority"] == 5
    assert body["data"]["isActive"] is True and body["data"]["isDefault"] is False
    status, body, _ = await call(http, "GET", "/v2/links/424242", headers=token)
    assert status == 404 and body["error"]["code"] == 18003
    assert body["error"]["type"] == "LinkNotFound"


async def test_search_filters_and_pages(http):
    token = await propeller_token(http)
    links = [link(1, b) for b in (2, 3, 4, 5)] + [link(2, 3, type_="parts")]
    await call(http, "POST", "/v2/links/bulk/id", json={"links": links}, headers=token)
    status, body, _ = await call(
        http, "POST", "/v2/links/search", json={"offset": 3}, headers=token
    )
    assert status == 200 and body["itemsFound"] == 5 and len(body["data"]) == 3
    assert (body["page"], body["pages"], body["start"], body["end"]) == (1, 2, 1, 3)
    _, body, _ = await call(
        http, "POST", "/v2/links/search", json={"offset": 3, "page": 2}, headers=token
    )
    assert len(body["data"]) == 2 and body["start"] == 4
    _, body, _ = await call(
        http,
        "POST",
        "/v2/links/search",
        json={"type": "parts", "from": {"class": "product", "id": 2}},
        headers=token,
    )
    assert body["itemsFound"] == 1 and body["data"][0]["to"] == {"class": "product", "id": 3}
    for bad in ({"offset": 101}, {"page": 0}, {"offset": "12"}):
        status, body, _ = await call(http, "POST", "/v2/links/search", json=bad, headers=token)
        assert status == 400 and body["error"]["code"] == 10015, bad
    status, body, _ = await call(
        http, "POST", "/v2/links/search", json={"types": ["parts"]}, headers=token
    )
    assert status == 400 and body["error"]["code"] == 10007


async def test_token_only_from_the_documented_form_fields(http):
    # REFERENCE.md: form grant_type=client_credentials&client_id&client_secret; HTTP Basic
    # credentials are not documented, so they must not get a token here either.
    basic = base64.b64encode(b"sandbox:sandbox").decode()
    status, body, _ = await call(
        http,
        "POST",
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 401 and "access_token" not in body
    form = {"grant_type": "client_credentials", "client_id": "sandbox", "client_secret": "sandbox"}
    query = "&".join(f"{k}={v}" for k, v in form.items())
    assert (await call(http, "POST", f"/oauth2/token?{query}"))[0] == 400


async def test_bulk_body_must_be_application_json(http):
    token = await propeller_token(http)
    payload = json.dumps({"links": [link(1, 2)]}).encode()
    for mime in ("application/ld+json", "application/vnd.api+json", "text/plain"):
        status, body, _ = await call(
            http, "POST", "/v2/links/bulk/id", data=payload, headers={**token, "Content-Type": mime}
        )
        assert status == 400 and body["error"]["code"] == 10005, mime


async def test_a_link_is_identified_by_its_resources_by_default(sandbox: Sandbox, http):
    # Seed 002: "If a link for resources with such id doesn't already exist, it will be
    # created. If it does exist, it will be updated."
    token = await propeller_token(http)
    _, first, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": [link(1, 2)]}, headers=token
    )
    _, second, _ = await call(
        http, "POST", "/v2/links/bulk/id", json={"links": [link(1, 2, "parts")]}, headers=token
    )
    assert first["data"][0]["id"] == second["data"][0]["id"]
    assert len(sandbox.state.store.propeller.links) == 1
    _, body, _ = await call(http, "GET", f"/v2/links/{first['data'][0]['id']}", headers=token)
    assert body["data"]["type"] == "parts"


async def test_link_identity_is_a_knob():
    knobs = PropellerSettings(seed_products=5, link_identity="from_to_type")
    async with (
        running_sandbox(small_settings(propeller=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await propeller_token(http)
        links = [link(1, 2), link(1, 2, "parts"), link(1, 2, "parts", priority=3)]
        _, body, _ = await call(
            http, "POST", "/v2/links/bulk/id", json={"links": links}, headers=token
        )
        ids = [entry["id"] for entry in body["data"]]
        assert ids[0] != ids[1] and ids[1] == ids[2]
        assert len(sandbox.state.store.propeller.links) == 2


async def test_401_body_shape_is_a_knob():
    knobs = PropellerSettings(seed_products=2, auth_error_shape="envelope")
    async with (
        running_sandbox(small_settings(propeller=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer nope"}):
            status, body, _ = await call(http, "GET", "/v2/links/1", headers=headers)
            assert status == 401
            assert body["error"]["status"] == 401 and body["error"]["messages"]
