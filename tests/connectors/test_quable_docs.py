"""The Quable connector against the examples Quable's own pages show (tests/fixtures/docs).

Every documented example request must be what bulksync builds for the same item, and every
documented answer must parse to the outcome the page describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docs_fixtures import load, names, response

from bulksync.connectors.quable._assets import CreateStage, DeleteStage, UploadStage
from bulksync.connectors.quable._auth import QuableLogin
from bulksync.connectors.quable._errors import PERMISSION_405, quable_error
from bulksync.connectors.quable._links import V4LinkStage, V5LinkStage
from bulksync.spi._connector import Done, Job, RequestFailed
from bulksync.spi._errors import ErrorClass
from bulksync.spi._http import HttpRequest
from bulksync.spi._records import AssetRecord, LinkRecord, Origin, Removal

from .scripted import ScriptedClient

VENDOR = "quable"


def documented(name: str) -> dict[str, Any]:
    request: dict[str, Any] = load(VENDOR, name)["request"]
    return request


def assert_same_request(built: HttpRequest, name: str) -> None:
    """Method, path (ours is relative to the instance URL) and JSON body as the page shows."""
    doc = documented(name)
    assert (built.method, "/" + built.url) == (doc["method"], doc["path"])
    if "json" in doc:
        # The transport sends `json` as application/json, the page's Content-Type.
        assert doc["headers"]["Content-Type"] == "application/json"
        assert built.json == doc["json"] and built.form is None and built.body is None


def test_every_fixture_names_its_page() -> None:
    assert len(names(VENDOR)) >= 15
    for name in names(VENDOR):
        assert load(VENDOR, name)["source"].startswith("https://")


def test_login_request_is_the_documented_curl_call() -> None:
    request = QuableLogin("API_JOB_USER", "API_JOB_PASSWORD").login_request()
    assert_same_request(request, "login_request")
    assert not request.authenticated


def test_the_documented_login_answer_gives_a_token_and_no_refresh() -> None:
    login = QuableLogin("u", "p")
    token = login.parse_token(response(VENDOR, "login_response"), 1000.0)
    assert token.value == "94fa500c0fbd121480e46690e733453f"
    assert token.expires_at == 1000.0 + 3600
    # "refresh_token": null: the engine logs in again instead of refreshing.
    assert login.refresh_request(token) is None
    assert login.auth_headers(token) == {"Authorization": "Bearer 94fa500c0fbd121480e46690e733453f"}


def test_a_refresh_token_gives_the_documented_cookie_refresh() -> None:
    login = QuableLogin("u", "p", remember=True)
    token = login.parse_token(response(VENDOR, "login_response_with_refresh_token"), 0.0)
    refresh = login.refresh_request(token)
    assert refresh is not None
    doc = documented("refresh_request")
    assert (refresh.method, "/" + refresh.url) == (doc["method"], doc["path"])
    assert refresh.headers == {
        "Cookie": doc["headers"]["Cookie"].replace("TOKEN", "ec58b427a96aca9e17a9cc376669b3a5")
    }
    fresh = login.parse_token(response(VENDOR, "refresh_response"), 0.0)
    assert fresh.value == "e086490be7030758b3b6d442ce7d548c" and fresh.expires_at == 3600


def _record(**fields: Any) -> AssetRecord:
    return AssetRecord(Origin("assets.jsonl", 1), **fields)


async def test_remote_path_asset_is_the_documented_create() -> None:
    body = documented("asset_remote_path_request")["json"]
    record = _record(
        id=body["id"],
        remote_path=body["remotePath"],
        classification=body["classification"]["id"],
        attributes=body["attributes"],
    )
    client = ScriptedClient(response(VENDOR, "asset_remote_path_response"))
    outcomes = await CreateStage().run([Job(record)], client)
    assert_same_request(client.requests[0], "asset_remote_path_request")
    assert outcomes == [Done(remote_id="myAssetIdentifier", action="created")]


async def test_two_step_asset_is_the_documented_upload_then_create(tmp_path: Path) -> None:
    doc = documented("file_upload_request")
    path = tmp_path / doc["files"]["file"]
    path.write_bytes(b"\xff\xd8jpeg")
    create = documented("asset_file_request")["json"]
    job = Job(_record(id=create["id"], file=path, classification=create["classification"]["id"]))
    client = ScriptedClient(response(VENDOR, "file_upload_response"))
    await UploadStage().run([job], client)
    upload = client.requests[0]
    assert (upload.method, "/" + upload.url) == (doc["method"], doc["path"])
    assert upload.fields == doc["form"]
    assert [(part.name, part.filename) for part in upload.files] == list(doc["files"].items())
    assert job.file_id == "c52c1695-a303-4d7f-9bc5-c50142843325"
    # The page's create names its file "theFileIdentifier": the id the upload answered.
    job.file_id = create["file"]["id"]
    client = ScriptedClient(response(VENDOR, "asset_file_response"))
    outcomes = await CreateStage().run([job], client)
    assert_same_request(client.requests[0], "asset_file_request")
    assert outcomes == [Done(remote_id="blueshirt", action="created")]


async def test_a_changed_asset_is_the_documented_put() -> None:
    body = documented("asset_update_request")["json"]
    job = Job(_record(id=body["id"], attributes=body["attributes"]))
    job.exists = True
    client = ScriptedClient(response(VENDOR, "asset_update_response"))
    outcomes = await CreateStage().run([job], client)
    assert_same_request(client.requests[0], "asset_update_request")
    assert outcomes == [Done(remote_id=body["id"], action="updated")]


async def test_prune_of_an_asset_is_the_documented_delete() -> None:
    removal = Removal(Origin("state", 0), "asset", "23edd9a9-3651-4798-bb56-front")
    client = ScriptedClient(response(VENDOR, "asset_delete_response"))
    outcomes = await DeleteStage("api/assets/{key}").run([Job(removal)], client)
    assert_same_request(client.requests[0], "asset_delete_response")
    assert outcomes == [Done(remote_id=removal.key, action="deleted")]


async def test_a_link_is_the_documented_v5_create() -> None:
    body = documented("link_request")["json"]
    record = LinkRecord(
        Origin("links.jsonl", 1),
        body["origin"]["id"],
        body["target"]["id"],
        body["linkType"]["id"],
        body["sequence"],
    )
    client = ScriptedClient(response(VENDOR, "link_response"))
    outcomes = await V5LinkStage().run([Job(record)], client)
    assert_same_request(client.requests[0], "link_request")
    # 201 with no body: created, and no id to keep (prune then finds it by its filters).
    assert outcomes == [Done(remote_id=None, action="created")]


async def test_grouped_links_are_the_documented_v4_call() -> None:
    doc = documented("v4_links_request")
    _, _, document, _, link_type = doc["path"].strip("/").split("/")
    jobs = [
        Job(
            LinkRecord(
                Origin("links.jsonl", n), document, item["target_code"], link_type, item["sequence"]
            )
        )
        for n, item in enumerate(doc["json"]["items"], 1)
    ]
    client = ScriptedClient(response(VENDOR, "link_response"))
    await V4LinkStage().run(jobs, client)
    built = client.requests[0]
    assert (built.method, "/" + built.url) == (doc["method"], doc["path"])
    # The page lists items sequence first; JSON objects compare without order.
    assert built.json == doc["json"]


@pytest.mark.parametrize("action", ["create of asset a", "listing assets"])
def test_the_documented_405_is_a_permission_error_that_stops_the_run(action: str) -> None:
    failure = quable_error(response(VENDOR, "error_405"), action)
    assert isinstance(failure, RequestFailed)
    assert failure.error_class is ErrorClass.AUTH
    note = load(VENDOR, "error_405")["note"]
    assert PERMISSION_405 in note and PERMISSION_405 in failure.error.message
