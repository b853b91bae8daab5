"""The vendors' own OCAPI examples (tests/fixtures/docs/ocapi) against what bulksync builds
and how it reads the answers: a drift from the documentation fails here."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from docs_fixtures import load, names, response

from bulksync.connectors.ocapi._auth import DEFAULT_TOKEN_URL, OcapiClientCredentials
from bulksync.connectors.ocapi._delete import DeleteLinkStage
from bulksync.connectors.ocapi._links import CategoryLinkStage
from bulksync.connectors.ocapi._listing import OcapiLister
from bulksync.spi._connector import Done, Job, RemoteItem, RequestFailed
from bulksync.spi._errors import ErrorClass
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import LinkRecord, Origin, Removal, link_key

from .scripted import ScriptedClient

DATA = "s/-/dw/data/v23_2"
SOURCE = {"catalog": "MyCatalog", "category": "MyCategory1"}
TARGET = {"catalog": "OtherCatalog", "category": "Category1"}
SAMPLE_TOKEN_CLIENT = "a" * 30  # the article's sandbox test client id and password


def sample_job(sequence: int | None = 1) -> Job:
    return Job(LinkRecord(Origin("links.jsonl", 1), SOURCE, TARGET, "other", sequence))


def test_every_fixture_names_its_page() -> None:
    found = names("ocapi")
    assert len(found) >= 10
    for name in found:
        fixture = load("ocapi", name)  # asserts an https source
        assert "request" in fixture or "response" in fixture, name


# -- token --------------------------------------------------------------------------------


def test_token_request_is_the_documented_one() -> None:
    documented = load("ocapi", "token_request")["request"]
    source = OcapiClientCredentials(SAMPLE_TOKEN_CLIENT, SAMPLE_TOKEN_CLIENT, DEFAULT_TOKEN_URL)
    built = source.login_request()
    basic = documented["headers"]["authorization"].removeprefix("Basic ")
    assert base64.b64decode(basic) == f"{SAMPLE_TOKEN_CLIENT}:{SAMPLE_TOKEN_CLIENT}".encode()
    assert built.method == documented["method"]
    assert built.headers["Authorization"] == documented["headers"]["authorization"]
    assert dict(built.form or {}) == documented["form"]
    assert not built.authenticated  # the Basic header is the credential, no bearer added
    # The article's host and endpoint name, under the path Salesforce now documents.
    current = load("ocapi", "token_url_dwsso")["request"]
    assert built.url == current["path"] == DEFAULT_TOKEN_URL
    old = urlsplit(documented["path"])
    assert urlsplit(built.url).netloc == old.netloc
    assert urlsplit(built.url).path == old.path.replace("/dw/oauth2/", "/dwsso/oauth2/")


def test_token_answer_gives_the_token_and_its_documented_lifetime() -> None:
    source = OcapiClientCredentials("id", "secret", DEFAULT_TOKEN_URL)
    answer = load("ocapi", "token_answer")["response"]["json"]
    token = source.parse_token(response("ocapi", "token_answer"), now=1000.0)
    assert token.value == answer["access_token"]
    assert token.expires_at == 1000.0 + answer["expires_in"] == 2799.0
    assert source.auth_headers(token) == {"Authorization": f"Bearer {answer['access_token']}"}


# -- PUT ----------------------------------------------------------------------------------


async def test_put_request_path_and_document_match_the_sample() -> None:
    documented = load("ocapi", "category_link_put_request")["request"]
    put_201 = response("ocapi", "category_link_put_201")
    client = ScriptedClient(put_201)
    await CategoryLinkStage(DATA).run([sample_job(1)], client)
    [sent] = client.requests
    assert sent.method == documented["method"]
    # The sample writes /s/-/data/...; every other sample (and the spec) /s/-/dw/data/...: the
    # resource part below the version is what must match.
    tail = documented["path"].split("/v23_2/", 1)[1]
    assert sent.url == f"{DATA}/{tail}"
    sample = documented["json"]
    # The ids, the type and the position as the sample sends them; the names, the date and
    # _v/_type are the server's (see CategoryLink.document).
    for name, value in sent.json.items():
        assert sample[name] == value, name
    assert set(sent.json) == {
        "position",
        "source_catalog_id",
        "source_category_id",
        "target_catalog_id",
        "target_category_id",
        "type",
    }
    assert isinstance(sent.json["position"], float)


@pytest.mark.parametrize(
    ("fixture", "exists", "action"),
    [
        ("category_link_put_201", None, "created"),
        ("category_link_put_200", None, "upserted"),  # the spec's only status: no evidence
        ("category_link_put_200", True, "updated"),
        ("category_link_put_200", False, "created"),
    ],
)
async def test_put_answers_are_done_with_the_link_url(
    fixture: str, exists: bool | None, action: str
) -> None:
    job = sample_job()
    if exists is not None:
        job.exists = exists
    outcomes = await CategoryLinkStage(DATA).run([job], ScriptedClient(response("ocapi", fixture)))
    link = load("ocapi", fixture)["response"]["json"]["link"]
    assert outcomes == [Done(remote_id=link, action=action)]


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    ["fault_catalog_not_found", "fault_category_not_found", "fault_category_link_not_found"],
)
async def test_documented_faults_fail_the_item_with_their_type_and_message(fixture: str) -> None:
    fault = load("ocapi", fixture)["response"]["json"]["fault"]
    with pytest.raises(RequestFailed) as failure:
        await CategoryLinkStage(DATA).run(
            [sample_job()], ScriptedClient(response("ocapi", fixture))
        )
    error = failure.value
    assert error.error_class is ErrorClass.ITEM  # a missing catalog/category/link: no retry
    assert (error.error.type, error.error.http_status) == (fault["type"], 404)
    assert error.error.message.endswith(fault["message"])


async def test_delete_of_a_documented_link_and_its_gone_answer() -> None:
    documented = load("ocapi", "category_link_delete_204")["request"]
    key = link_key(SOURCE, TARGET, "other")
    for remote_id in (None, load("ocapi", "category_link_get")["response"]["json"]["link"]):
        client = ScriptedClient(response("ocapi", "category_link_delete_204"))
        removal = Removal(Origin("state", 0), "link", key, remote_id)
        assert await DeleteLinkStage(DATA).run([Job(removal)], client) == [
            Done(remote_id=remote_id, action="deleted")
        ]
        [sent] = client.requests
        assert (sent.method, "/" + sent.url) == (documented["method"], documented["path"])
    gone = ScriptedClient(response("ocapi", "fault_category_link_not_found"))
    removal = Removal(Origin("state", 0), "link", key, None)
    [outcome] = await DeleteLinkStage(DATA).run([Job(removal)], gone)
    assert outcome == Done(remote_id=None, action="gone")


# -- listing ------------------------------------------------------------------------------


def listed(body: dict[str, Any]) -> list[RemoteItem]:
    request = HttpRequest("GET", f"{DATA}/catalogs/MyCatalog/categories/MyCategory1/category_links")
    documented = response("ocapi", "category_links_get")
    answer = HttpResponse(documented.status, documented.headers, orjson.dumps(body))
    page = OcapiLister(DATA).read_page("link", request, answer)
    assert page.next is None  # start 0 + count 2 reaches total 2
    return list(page.items)


@pytest.mark.parametrize("with_link", [True, False])
def test_the_documented_listing_reads_into_its_links(with_link: bool) -> None:
    body = load("ocapi", "category_links_get")["response"]["json"]
    if not with_link:  # optional in the spec's category_link document
        body = {**body, "data": [{k: v for k, v in d.items() if k != "link"} for d in body["data"]]}
    items = listed(body)
    targets = [{"catalog": "OtherCatalog", "category": f"Category{i}"} for i in (1, 2)]
    assert [item.key for item in items] == [link_key(SOURCE, t, "other") for t in targets]
    assert [item.fields["position"] for item in items] == [1.0, 2.0]
    expected_ids = [d.get("link") for d in body["data"]]
    assert [item.remote_id for item in items] == expected_ids
    assert all((item.remote_id is None) != with_link for item in items)
