"""Propeller's documented examples (tests/fixtures/docs/propeller/) against the connector: each
documented request is what bulksync builds, each documented answer reads to the right outcome.

The bulk page shows no example request, only its schema; the requests here are the links the
documented answers echo (their `from`, `to` and lookup key), sent in the answer's order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docs_fixtures as docs  # pytest puts tests/ (home of the top conftest.py) on sys.path
import pytest
from docs_fixtures import load, response

from bulksync.connectors.propeller._auth import PropellerLogin, resolve_token_url
from bulksync.connectors.propeller._links import BulkLinkStage
from bulksync.engine.auth import SessionAuth
from bulksync.spi._connector import Done, Failed, Job, RequestFailed
from bulksync.spi._errors import AuthError, ErrorClass
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import LinkRecord, Origin

from .scripted import ScriptedClient, reply

VENDOR = "propeller"
BASE_URL = "https://api.helice.cloud/v2"  # "REST v2: https://api.helice.cloud/v2/{resource}"


def fixture(name: str) -> dict[str, Any]:
    return load(VENDOR, name)


def answer(name: str) -> HttpResponse:
    return response(VENDOR, name)


def login() -> PropellerLogin:
    form = fixture("token_request")["request"]["form"]
    return PropellerLogin(
        form["client_id"], form["client_secret"], resolve_token_url(BASE_URL, None)
    )


def test_the_token_request_is_the_documented_one() -> None:
    documented = fixture("token_request")["request"]
    request = login().login_request()
    assert (request.method, request.url) == (documented["method"], documented["path"])
    assert request.form is not None and not request.authenticated
    # Same fields, in the order the page writes them.
    assert list(request.form.items()) == list(documented["form"].items())


@pytest.mark.parametrize(
    ("name", "lifetime"),
    [
        ("token_answer_current", 1800.0),
        ("token_answer_getting_started", 1800.0),
        ("token_answer_legacy", 1899.0),
    ],
)
def test_every_documented_token_answer_reads_with_its_expiry(name: str, lifetime: float) -> None:
    body = fixture(name)["response"]["json"]
    token = login().parse_token(answer(name), 100.0)
    assert token.value == body["access_token"]
    assert token.expires_at == 100.0 + lifetime
    assert login().auth_headers(token) == {"Authorization": f"Bearer {body['access_token']}"}


async def test_the_documented_invalid_client_answer_stops_the_login() -> None:
    refused = answer("token_error_invalid_client")
    sent: list[HttpRequest] = []

    async def send(request: HttpRequest) -> HttpResponse:
        sent.append(request)
        return refused

    with pytest.raises(AuthError, match="401"):
        await SessionAuth(login(), margin_s=300).headers(send)
    assert len(sent) == 1  # no refresh token to fall back on


def jobs_for(entries: list[dict[str, Any]], type_: str) -> list[Job]:
    return [
        Job(LinkRecord(Origin("links.jsonl", n), e["from"], e["to"], type_, extra={"subtype": "x"}))
        for n, e in enumerate(entries, 1)
    ]


@pytest.mark.parametrize(
    ("name", "type_"),
    [
        # contact -> company is the docs' `account` link; the customer one is refused per item.
        ("bulk_links_by_id_200", "account"),
        ("bulk_links_by_id_200_cross_upsell", "related"),
        ("bulk_links_by_sourceid_200_cross_upsell", "related"),
    ],
)
async def test_every_documented_bulk_entry_reads_to_its_outcome(name: str, type_: str) -> None:
    entries = fixture(name)["response"]["json"]["data"]
    client = ScriptedClient(answer(name))
    outcomes = await BulkLinkStage().run(jobs_for(entries, type_), client)
    request = client.requests[0]
    assert (request.method, request.url) == ("POST", f"links/bulk/{entries[0]['lookupKey']}")
    sent = request.json["links"]
    assert [(x["from"], x["to"]) for x in sent] == [(e["from"], e["to"]) for e in entries]
    for entry, outcome in zip(entries, outcomes, strict=True):
        if entry["success"]:
            assert isinstance(outcome, Done) and outcome.remote_id == str(entry["id"])
            assert outcome.extra["id"] == entry["id"]
        else:
            assert isinstance(outcome, Failed) and not outcome.retryable
            assert outcome.error.message == entry["error"]
        assert outcome.extra["lookupKey"] == entry["lookupKey"]


@pytest.mark.parametrize("name", ["bulk_links_400_schema_validation", "error_string_code"])
async def test_a_documented_schema_error_fails_the_named_item_only(name: str) -> None:
    # "Bulk Links by sourceId - 400 (schema validation error)": #/links/0 is the bad item.
    end = {"class": "product", "language": "NL", "source": "TECHDATA"}
    first = {**end, "sourceId": "NCABD7000411"}
    entries = [
        {"from": first, "to": {**end, "sourceId": "NCABD70004"}},
        {"from": first, "to": {**end, "sourceId": "NCABD70004123"}},
    ]
    jobs = jobs_for(entries, "related")
    rest = {
        "data": [{**entries[1], "id": 543976, "lookupKey": "sourceId", "success": True}],
        "messages": ["Completed"],
        "total": 1,
    }
    client = ScriptedClient(answer(name), reply(200, rest))
    outcomes = await BulkLinkStage().run(jobs, client)
    message = fixture(name)["response"]["json"]["error"]["messages"][0]
    assert isinstance(outcomes[0], Failed) and outcomes[0].error.message == message
    assert outcomes[0].error.type == "SchemaValidationException"
    assert (
        len(client.requests) == 2 and client.requests[1].json["links"][0]["to"] == entries[1]["to"]
    )
    assert isinstance(outcomes[1], Done) and outcomes[1].remote_id == "543976"


async def test_the_documented_invalid_lookup_key_fails_the_whole_chunk() -> None:
    entries = fixture("bulk_links_by_id_200_cross_upsell")["response"]["json"]["data"]
    body = fixture("bulk_links_400_invalid_lookup_key")["response"]["json"]["error"]
    client = ScriptedClient(answer("bulk_links_400_invalid_lookup_key"))
    with pytest.raises(RequestFailed) as failure:
        await BulkLinkStage().run(jobs_for(entries, "related"), client)
    assert len(client.requests) == 1  # a 10006 names no item: nothing is sent again
    assert failure.value.error_class is ErrorClass.ITEM
    assert failure.value.error.type == body["type"] == "InvalidLookupKey"
    assert failure.value.error.message == body["messages"][0]


def test_every_fixture_is_checked_by_a_test() -> None:
    # A fixture added without a test reading it would check nothing.
    source = Path(__file__).read_text(encoding="utf-8")
    unread = [name for name in docs.names(VENDOR) if f'"{name}"' not in source]
    assert docs.names(VENDOR) and not unread, unread
