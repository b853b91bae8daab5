"""Request shapes and error mapping of the Quable connector, against a scripted client."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bulksync.connectors.quable._assets import CreateStage, DeleteStage, UploadStage
from bulksync.connectors.quable._auth import QuableLogin
from bulksync.connectors.quable._errors import quable_error
from bulksync.connectors.quable._links import V4LinkStage, V5LinkStage, find_removed_link
from bulksync.spi._connector import Done, Failed, Job, RequestFailed
from bulksync.spi._errors import AuthError, ErrorClass
from bulksync.spi._records import AssetRecord, LinkRecord, Origin, Removal

from .scripted import ScriptedClient, reply


def asset(**fields: Any) -> Job:
    return Job(AssetRecord(Origin("assets.jsonl", 1), **fields))


def link(from_: str = "shoe", to: str = "blue_shoe", sequence: int | None = 1, **kw: Any) -> Job:
    return Job(
        LinkRecord(
            Origin("links.jsonl", 1), from_, to, kw.pop("type", "ref_refCol"), sequence, **kw
        )
    )


async def test_upload_streams_the_file_as_multipart(tmp_path: Path) -> None:
    path = tmp_path / "shirt.jpg"
    path.write_bytes(b"\xff\xd8jpeg")
    job = asset(id="blueshirt", file=path)
    client = ScriptedClient(reply(201, {"id": "c52c1695", "type": "asset"}))
    outcomes = await UploadStage().run([job], client)
    request = client.requests[0]
    assert (request.method, request.url) == ("POST", "api/files")
    assert request.fields == {"fileType": "asset"}
    assert [(p.name, p.path, p.filename, p.content_type) for p in request.files] == [
        ("file", path, "shirt.jpg", "image/jpeg")
    ]
    assert isinstance(outcomes[0], Done) and job.file_id == "c52c1695"


async def test_upload_of_a_missing_file_fails_without_a_request(tmp_path: Path) -> None:
    client = ScriptedClient()
    outcomes = await UploadStage().run([asset(id="x", file=tmp_path / "nope.png")], client)
    assert isinstance(outcomes[0], Failed) and outcomes[0].error.type == "MissingFile"
    assert not outcomes[0].retryable and client.requests == []


async def test_create_posts_the_documented_body() -> None:
    job = asset(
        id="blueshirt", file=Path("/x/shirt.jpg"), classification="dam_sort", attributes={"a": 1}
    )
    job.file_id = "c52c1695"
    client = ScriptedClient(reply(201, {"@id": "/api/assets/blueshirt", "id": "blueshirt"}))
    outcomes = await CreateStage().run([job], client)
    request = client.requests[0]
    assert (request.method, request.url) == ("POST", "api/assets")
    assert request.json == {
        "id": "blueshirt",
        "classification": {"id": "dam_sort"},
        "attributes": {"a": 1},
        "file": {"id": "c52c1695"},
    }
    assert outcomes == [Done(remote_id="blueshirt", action="created")]


async def test_remote_path_asset_is_one_step() -> None:
    job = asset(id="banner", remote_path="https://img.example.com/b.jpg")
    client = ScriptedClient(reply(201, {"id": "banner"}))
    assert not UploadStage().applies(job)
    await CreateStage().run([job], client)
    assert client.requests[0].json == {
        "id": "banner",
        "remotePath": "https://img.example.com/b.jpg",
    }


async def test_an_existing_asset_is_updated_with_put() -> None:
    job = asset(id="a/b", remote_path="https://img.example.com/b.jpg")
    client = ScriptedClient(reply(409, {"hydra:description": "exists"}), reply(200, {"id": "a/b"}))
    outcomes = await CreateStage().run([job], client)
    assert [(r.method, r.url) for r in client.requests] == [
        ("POST", "api/assets"),
        ("PUT", "api/assets/a%2Fb"),
    ]
    assert outcomes == [Done(remote_id="a/b", action="updated")]
    # A retry of that item goes straight to the PUT.
    client = ScriptedClient(reply(200, {"id": "a/b"}))
    await CreateStage().run([job], client)
    assert [r.method for r in client.requests] == ["PUT"]


@pytest.mark.parametrize(("found", "expected"), [(200, ["GET", "PUT"]), (404, ["GET", "POST"])])
async def test_a_create_whose_answer_was_lost_is_looked_up_first(
    found: int, expected: list[str]
) -> None:
    job = asset(id="blueshirt", remote_path="https://img.example.com/b.jpg")
    job.maybe_applied = True
    client = ScriptedClient(reply(found, {"id": "blueshirt"}), reply(201, {"id": "blueshirt"}))
    outcomes = await CreateStage().run([job], client)
    assert [r.method for r in client.requests] == expected
    assert isinstance(outcomes[0], Done)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ErrorClass.ITEM),
        (422, ErrorClass.ITEM),
        (403, ErrorClass.AUTH),
        (503, ErrorClass.RETRYABLE),
        (429, ErrorClass.RETRYABLE),
    ],
)
async def test_errors_are_classified_with_the_server_message(
    status: int, error_class: ErrorClass
) -> None:
    body = {
        "@type": "ConstraintViolationList",
        "violations": [{"propertyPath": "classification", "message": "Unknown classification"}],
    }
    client = ScriptedClient(reply(status, body, {"retry-after": "3"}))
    with pytest.raises(RequestFailed) as failure:
        await CreateStage().run([asset(id="x", remote_path="https://i.example.com/x")], client)
    assert failure.value.error_class is error_class
    assert failure.value.error.http_status == status
    assert "classification: Unknown classification" in failure.value.error.message
    assert failure.value.retry_after == 3.0


async def test_v5_link_body_and_lost_answer_lookup() -> None:
    job = link(attributes={"note": "x"})
    client = ScriptedClient(reply(201, {"id": "l-1"}))
    outcomes = await V5LinkStage().run([job], client)
    assert client.requests[0].json == {
        "origin": {"id": "shoe"},
        "target": {"id": "blue_shoe"},
        "linkType": {"id": "ref_refCol"},
        "attributes": {"note": "x"},
        "sequence": 1,
    }
    assert outcomes == [Done(remote_id="l-1", action="created")]
    job.maybe_applied = True
    client = ScriptedClient(reply(200, {"hydra:member": [{"id": "l-1"}], "hydra:totalItems": 1}))
    outcomes = await V5LinkStage().run([job], client)
    assert [(r.method, r.url) for r in client.requests] == [("GET", "api/links")]
    assert client.requests[0].params == {
        "origin.id": "shoe",
        "target.id": "blue_shoe",
        "linkType.id": "ref_refCol",
    }
    assert outcomes == [Done(remote_id="l-1", action="created")]


async def test_v5_link_that_exists_already_is_not_an_error() -> None:
    client = ScriptedClient(
        reply(409, {"hydra:description": "exists"}), reply(200, {"hydra:member": [{"id": "l-9"}]})
    )
    outcomes = await V5LinkStage().run([link()], client)
    assert outcomes == [Done(remote_id="l-9", action="exists")]


async def test_object_endpoints_are_refused_for_quable_links() -> None:
    job = Job(LinkRecord(Origin("l.jsonl", 3), {"class": "product", "id": 1}, "x", "t"))
    outcomes = await V5LinkStage().run([job], ScriptedClient())
    assert isinstance(outcomes[0], Failed) and outcomes[0].error.type == "InvalidInput"


async def test_v4_groups_one_document_and_type_per_request() -> None:
    stage = V4LinkStage(batch_size=50)
    jobs = [link("suede_shoe", "blue_suede_shoe", 1), link("suede_shoe", "red_suede_shoe", None)]
    assert stage.grouped and stage.group_key(jobs[0]) == stage.group_key(jobs[1])
    client = ScriptedClient(reply(200, {"added": ["blue_suede_shoe"]}))
    outcomes: Sequence[Any] = await stage.run(jobs, client)
    request = client.requests[0]
    assert (request.method, request.url) == (
        "POST",
        "api_1.php/documents/suede_shoe/links/ref_refCol",
    )
    assert request.json == {
        "mode": "update",
        "items": [
            {"target_code": "blue_suede_shoe", "sequence": 1},
            {"target_code": "red_suede_shoe", "sequence": 2},
        ],
    }
    assert all(isinstance(o, Done) for o in outcomes)


def test_login_and_refresh_requests() -> None:
    login = QuableLogin("api-user", "p4ssw0rd-secret", remember=True)
    request = login.login_request()
    assert (request.method, request.url, request.authenticated) == (
        "POST",
        "api_1.php/sessions",
        False,
    )
    assert request.json == {
        "signin": {"username": "api-user", "password": "p4ssw0rd-secret", "remember": True}
    }
    answer = {"oauth": {"access_token": "fd55", "expires_in": 3600, "refresh_token": "ec58"}}
    token = login.parse_token(reply(201, answer), 100.0)
    assert token.value == "fd55" and token.expires_at == 3700.0
    refresh = login.refresh_request(token)
    assert refresh is not None and refresh.method == "GET"
    assert refresh.url == "api_1.php/sessions" and not refresh.authenticated
    assert refresh.headers == {"Cookie": "quable-remember-me=ec58"}
    assert login.auth_headers(token) == {"Authorization": "Bearer fd55"}


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no token"},
        # The flat shape of the scraped seed is not what Quable answers: the token is at oauth.*
        {"access_token": "fd55", "expires_in": 3600},
        {"oauth": {"access_token": "", "expires_in": 3600}},
        {"oauth": "fd55"},
        [],
    ],
)
def test_a_login_answer_without_oauth_access_token_is_an_auth_error(body: Any) -> None:
    with pytest.raises(AuthError, match=r"oauth\.access_token"):
        QuableLogin("u", "p").parse_token(reply(201, body), 0.0)


def test_a_null_refresh_token_means_no_refresh_request() -> None:
    login = QuableLogin("u", "p")
    # docs.quable.com/reference/api-authentication-token: the body carries only the signin.
    assert login.login_request().json == {"signin": {"username": "u", "password": "p"}}
    answer = {"oauth": {"access_token": "94fa", "expires_in": 3600, "refresh_token": None}}
    token = login.parse_token(reply(201, answer), 0.0)
    assert token.refresh_value is None and login.refresh_request(token) is None


@pytest.mark.parametrize("expires_in", [None, "soon", 0, -5, True, float("nan")])
def test_an_unusable_expires_in_falls_back_to_the_documented_hour(expires_in: Any) -> None:
    answer = {"oauth": {"access_token": "t", "expires_in": expires_in}}
    token = QuableLogin("u", "p").parse_token(reply(201, answer), 10.0)
    assert token.expires_at == 3610.0


def test_405_is_the_documented_permission_error_and_stops_the_run() -> None:
    failure = quable_error(reply(405, {"hydra:description": "nope"}), "create of asset a")
    assert failure.error_class is ErrorClass.AUTH
    assert "does not have permission to access the resource" in failure.error.message
    assert failure.error.http_status == 405


def _member(link_id: str, origin: str, target: str, link_type: str) -> dict[str, Any]:
    return {
        "id": link_id,
        "origin": {"id": origin},
        "target": {"id": target},
        "linkType": {"id": link_type},
    }


async def test_prune_finds_a_link_whose_create_gave_no_id_by_its_filters() -> None:
    removal = Removal(Origin("state", 0), "link", "doc-1->doc-2:ref")
    client = ScriptedClient(
        reply(200, {"hydra:member": [_member("L9", "doc-1", "doc-2", "ref")]}), reply(204)
    )
    outcomes = await DeleteStage("api/links/{remote_id}", find_removed_link).run(
        [Job(removal)], client
    )
    assert [(r.method, r.url) for r in client.requests] == [
        ("GET", "api/links"),
        ("DELETE", "api/links/L9"),
    ]
    assert client.requests[0].params == {
        "origin.id": "doc-1",
        "target.id": "doc-2",
        "linkType.id": "ref",
    }
    assert outcomes == [Done(remote_id="L9", action="deleted")]


async def test_prune_of_a_link_not_found_by_its_filters_is_gone_after_one_lookup() -> None:
    removal = Removal(Origin("state", 0), "link", "doc-1->doc-2:ref")
    client = ScriptedClient(reply(200, {"hydra:member": []}))
    outcomes = await DeleteStage("api/links/{remote_id}", find_removed_link).run(
        [Job(removal)], client
    )
    assert [r.method for r in client.requests] == ["GET"]
    assert outcomes == [Done(action="gone")]


@pytest.mark.parametrize("key", ["a:b->c:ref", "a->b->c:ref", "a->b", "->b:ref"])
async def test_prune_never_looks_up_a_key_that_splits_more_than_one_way(key: str) -> None:
    removal = Removal(Origin("state", 0), "link", key)
    client = ScriptedClient()
    with pytest.raises(RequestFailed) as refused:
        await DeleteStage("api/links/{remote_id}", find_removed_link).run([Job(removal)], client)
    assert refused.value.error.type == "NoRemoteId" and client.requests == []
