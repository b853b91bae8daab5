"""Request shapes and error mapping of the OCAPI connector, against a scripted client."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Callable, Sequence
from email.message import Message
from typing import Any

import orjson
import pytest

from bulksync.app.config import Config, TargetConfig
from bulksync.app.wiring import build_target
from bulksync.connectors.ocapi import OcapiConnector, OcapiOptions
from bulksync.connectors.ocapi._auth import OcapiClientCredentials
from bulksync.connectors.ocapi._batch import BatchLinkStage, split_multipart
from bulksync.connectors.ocapi._links import CategoryLinkStage
from bulksync.spi._connector import Done, Failed, Job, Outcome, RequestFailed
from bulksync.spi._errors import AuthError, ConfigError, ErrorClass
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, Endpoint, LinkRecord, Origin

from .scripted import ScriptedClient, reply

DATA = "s/-/dw/data/v23_2"
SRC = {"catalog": "MyCatalog", "category": "MyCategory1"}
TGT = {"catalog": "OtherCatalog", "category": "Category1"}
LINK_URL = (
    "https://example.com/s/-/dw/data/v23_2/catalogs/MyCatalog/categories/MyCategory1/"
    "category_links/OtherCatalog/Category1/other"
)


def fault_doc(type_: str, message: str = "") -> dict[str, Any]:
    return {"_v": "23.2", "fault": {"type": type_, "message": message or f"{type_}!"}}


def fault(status: int, type_: str, message: str = "", **headers: str) -> HttpResponse:
    return reply(status, fault_doc(type_, message), headers)


def job(
    from_: Endpoint = SRC, to: Endpoint = TGT, type_: str = "other", sequence: int | None = 1
) -> Job:
    return Job(LinkRecord(Origin("links.jsonl", 1), from_, to, type_, sequence))


def to_category(name: str) -> Job:
    return job(to={"catalog": "OtherCatalog", "category": name})


# -- auth -------------------------------------------------------------------------------------


def test_token_request_is_basic_client_credentials_form() -> None:
    source = OcapiClientCredentials("my-client", "s3cret:with-colon", "dwsso/oauth2/access_token")
    request = source.login_request()
    assert (request.method, request.url, request.authenticated) == (
        "POST",
        "dwsso/oauth2/access_token",
        False,
    )
    expected = base64.b64encode(b"my-client:s3cret:with-colon").decode()
    assert request.headers == {"Authorization": f"Basic {expected}"}
    assert request.form == {"grant_type": "client_credentials"}
    assert request.json is None and request.body is None
    token = source.parse_token(
        reply(200, {"access_token": "a5b6", "token_type": "Bearer", "expires_in": 1799}), 10.0
    )
    assert token.value == "a5b6" and token.expires_at == 1809.0
    assert source.auth_headers(token) == {"Authorization": "Bearer a5b6"}
    assert source.refresh_request(token) is None  # no refresh token: a new token request


def test_token_answer_variants() -> None:
    source = OcapiClientCredentials("id", "secret", "https://account.demandware.com/x")
    as_text = source.parse_token(reply(200, {"access_token": "t", "expires_in": "20"}), 0.0)
    assert as_text.expires_at == 20.0
    missing = source.parse_token(reply(200, {"access_token": "t"}), 0.0)
    assert missing.expires_at == 1799.0  # the documented lifetime
    for body in ({"error": "invalid_client"}, {"access_token": ""}, ["x"]):
        with pytest.raises(AuthError):
            source.parse_token(reply(200, body), 0.0)


# -- single calls -----------------------------------------------------------------------------


async def test_put_url_method_and_document() -> None:
    weird = job(
        from_={"catalog": "My Catalog", "category": "Shoes & Boots/Men"},
        to={"catalog": "Other", "category": "ä?#"},
        type_="cross_selling",
        sequence=3,
    )
    client = ScriptedClient(reply(201, {"_type": "category_link", "link": LINK_URL}))
    outcomes = await CategoryLinkStage(DATA).run([weird], client)
    request = client.requests[0]
    assert request.method == "PUT"
    assert request.url == (
        "s/-/dw/data/v23_2/catalogs/My%20Catalog/categories/Shoes%20%26%20Boots%2FMen"
        "/category_links/Other/%C3%A4%3F%23/cross_selling"
    )
    assert request.authenticated
    assert request.json == {
        "position": 3.0,
        "source_catalog_id": "My Catalog",
        "source_category_id": "Shoes & Boots/Men",
        "target_catalog_id": "Other",
        "target_category_id": "ä?#",
        "type": "cross_selling",
    }
    assert isinstance(request.json["position"], float)
    assert outcomes == [Done(remote_id=LINK_URL, action="created")]


async def test_put_200_without_evidence_is_upserted_and_no_sequence_sends_no_position() -> None:
    # The spec's only PUT status is 200: it cannot tell a create from an update.
    client = ScriptedClient(reply(200, {"_type": "category_link", "position": 4.0}))
    outcomes = await CategoryLinkStage(DATA).run([job(sequence=None)], client)
    assert "position" not in client.requests[0].json
    assert outcomes == [Done(remote_id=None, action="upserted")]


@pytest.mark.parametrize(
    ("record_job", "needle"),
    [
        (job(type_="related"), "link type 'related'"),
        (job(type_="Other"), "link type 'Other'"),
        (job(from_="MyCategory1"), "'from' must be an object"),
        (job(to="shirt-0"), "'to' must be an object"),
        (job(to={"class": "product", "id": 1}), "'to' must be an object"),
        (job(from_={"catalog": "c", "category": "k", "x": 1}), "'from' must be an object"),
        (job(from_={"catalog": "c", "category": ""}), "'from' must be an object"),
        (job(to={"catalog": "c", "category": 7}), "'to' must be an object"),
        (Job(AssetRecord(Origin("assets.jsonl", 1), "a1")), "category links only"),
    ],
)
async def test_bad_input_fails_locally_without_a_request(record_job: Job, needle: str) -> None:
    client = ScriptedClient()
    outcomes = await CategoryLinkStage(DATA).run([record_job], client)
    assert client.requests == []
    failed = outcomes[0]
    assert isinstance(failed, Failed) and not failed.retryable
    assert failed.error.type == "InvalidInput" and needle in failed.error.message


@pytest.mark.parametrize(
    ("response", "error_type", "error_class", "retry_after"),
    [
        (fault(404, "CatalogNotFoundException"), "CatalogNotFoundException", ErrorClass.ITEM, None),
        (
            fault(404, "CategoryNotFoundException"),
            "CategoryNotFoundException",
            ErrorClass.ITEM,
            None,
        ),
        # Not retried because of the fault type itself, even behind a retryable status.
        (
            fault(503, "CategoryNotFoundException"),
            "CategoryNotFoundException",
            ErrorClass.ITEM,
            None,
        ),
        (
            fault(400, "IllegalEnumerationValueException"),
            "IllegalEnumerationValueException",
            ErrorClass.ITEM,
            None,
        ),
        (
            fault(401, "InvalidAccessTokenException"),
            "InvalidAccessTokenException",
            ErrorClass.AUTH,
            None,
        ),
        (
            fault(429, "TooManyRequestsException", **{"retry-after": "3"}),
            "TooManyRequestsException",
            ErrorClass.RETRYABLE,
            3.0,
        ),
        (
            fault(503, "ServiceUnavailableException"),
            "ServiceUnavailableException",
            ErrorClass.RETRYABLE,
            None,
        ),
        (
            HttpResponse(502, {"content-type": "text/html"}, b"<h1>Bad Gateway</h1>"),
            "HTTP502",
            ErrorClass.RETRYABLE,
            None,
        ),
    ],
)
async def test_fault_documents_become_classified_item_errors(
    response: HttpResponse, error_type: str, error_class: ErrorClass, retry_after: float | None
) -> None:
    with pytest.raises(RequestFailed) as failure:
        await CategoryLinkStage(DATA).run([job()], ScriptedClient(response))
    assert failure.value.error.type == error_type
    assert failure.value.error_class is error_class
    assert failure.value.error.http_status == response.status
    assert failure.value.retry_after == retry_after
    message = failure.value.error.message
    assert "MyCatalog/MyCategory1 -> OtherCatalog/Category1 (other)" in message
    assert (f"{error_type}!" if error_type.endswith("Exception") else "Bad Gateway") in message


async def test_conflict_rereads_and_retries_once_with_the_resource_state() -> None:
    client = ScriptedClient(
        fault(409, "ResourceStateConflictException"),
        reply(200, {"_type": "category_link", "position": 9.0}, {"x-dw-resource-state": "86ab"}),
        reply(200, {"_type": "category_link", "link": LINK_URL}),
    )
    outcomes = await CategoryLinkStage(DATA).run([job()], client)
    path = f"{DATA}/catalogs/MyCatalog/categories/MyCategory1/category_links/OtherCatalog"
    path += "/Category1/other"
    assert [(r.method, r.url) for r in client.requests] == [
        ("PUT", path),
        ("GET", path),
        ("PUT", path),
    ]
    assert "_resource_state" not in client.requests[0].json
    assert client.requests[2].json == {**client.requests[0].json, "_resource_state": "86ab"}
    assert outcomes == [Done(remote_id=LINK_URL, action="updated")]


async def test_conflict_state_may_come_from_the_body() -> None:
    client = ScriptedClient(
        fault(409, "ResourceStateConflictException"),
        reply(200, {"_resource_state": "from-body", "position": 1.0}),
        reply(201, {}),
    )
    await CategoryLinkStage(DATA).run([job()], client)
    assert client.requests[2].json["_resource_state"] == "from-body"


async def test_a_second_conflict_fails_the_item_without_more_retries() -> None:
    client = ScriptedClient(
        fault(409, "ResourceStateConflictException"),
        reply(200, {"position": 1.0}, {"x-dw-resource-state": "aa"}),
        fault(409, "ResourceStateConflictException", "state moved again"),
    )
    with pytest.raises(RequestFailed) as failure:
        await CategoryLinkStage(DATA).run([job()], client)
    assert len(client.requests) == 3
    assert failure.value.error.type == "ResourceStateConflictException"
    assert failure.value.error_class is ErrorClass.ITEM
    assert "state moved again" in failure.value.error.message


async def test_conflict_on_a_link_deleted_since_puts_again_without_state() -> None:
    client = ScriptedClient(
        fault(409, "ResourceStateConflictException"),
        fault(404, "CategoryLinkNotFoundException"),
        reply(201, {}),
    )
    outcomes = await CategoryLinkStage(DATA).run([job()], client)
    assert "_resource_state" not in client.requests[2].json
    assert outcomes == [Done(action="created")]


async def test_a_409_that_is_not_a_state_conflict_is_not_reread() -> None:
    client = ScriptedClient(reply(409, {"message": "busy"}))
    with pytest.raises(RequestFailed) as failure:
        await CategoryLinkStage(DATA).run([job()], client)
    assert len(client.requests) == 1 and failure.value.error_class is ErrorClass.ITEM


# -- batch ------------------------------------------------------------------------------------


def sent_parts(request: HttpRequest) -> list[Message]:
    """The batch body, parsed by the standard library (not by the code under test)."""
    assert request.body is not None
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.body, policy=email.policy.HTTP)
    assert message.is_multipart() and not message.defects
    parts = message.get_payload()
    assert isinstance(parts, list)
    return parts


def part_json(part: Message) -> dict[str, Any]:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    document = orjson.loads(payload)
    assert isinstance(document, dict)
    return document


PartAnswer = tuple[int, Any, dict[str, str]] | None


def batch_reply(
    answer: Callable[[dict[str, Any]], PartAnswer], *, reverse: bool = True, close: bool = True
) -> Callable[[HttpRequest], HttpResponse]:
    """A 200 multipart answer; each part's answer chosen from the link it carried (never from
    its place), the parts sent back in reverse order; None leaves a part out."""

    def respond(request: HttpRequest) -> HttpResponse:
        boundary = request.headers["Content-Type"].split("boundary=")[1]
        parts = sent_parts(request)
        chunks = []
        for part in reversed(parts) if reverse else parts:
            chosen = answer(part_json(part))
            if chosen is None:
                continue
            status, body, headers = chosen
            head = f"--{boundary}\r\nx-dw-content-id: {part['x-dw-content-id']}\r\n"
            head += f"x-dw-status-code: {status}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            chunks.append(head.encode() + b"\r\n" + orjson.dumps(body) + b"\r\n")
        if close:
            chunks.append(f"--{boundary}--\r\n".encode())
        content_type = f"multipart/mixed; boundary={boundary}"
        return HttpResponse(200, {"content-type": content_type}, b"".join(chunks))

    return respond


def created(document: dict[str, Any]) -> PartAnswer:
    return 201, {"_type": "category_link", "link": document["target_category_id"]}, {}


def stage() -> BatchLinkStage:
    stage = OcapiConnector(OcapiOptions(batch=True)).stages("link")[0]
    assert isinstance(stage, BatchLinkStage)
    return stage


async def test_batch_request_shape() -> None:
    jobs = [to_category(f"cat-{i}") for i in range(3)]
    client = ScriptedClient(batch_reply(created))
    outcomes = await stage().run(jobs, client)
    request = client.requests[0]
    assert (request.method, request.url, request.authenticated) == ("POST", "s/-/dw/batch", True)
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/mixed; boundary=")
    boundary = content_type.split("boundary=")[1]
    assert request.body is not None and request.body.startswith(f"--{boundary}\r\n".encode())
    assert request.body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert request.headers["x-dw-resource-path"] == "/s/-/dw/data/v23_2/"
    parts = sent_parts(request)
    assert len(parts) == 3
    assert len({part["x-dw-content-id"] for part in parts}) == 3
    for i, part in enumerate(parts):
        assert part["x-dw-http-method"] == "PUT"
        assert part["x-dw-resource-path-extension"] == (
            f"catalogs/MyCatalog/categories/MyCategory1/category_links/OtherCatalog/cat-{i}/other"
        )
        assert part["Content-Type"] == "application/json"
        assert part_json(part) == {
            "position": 1.0,
            "source_catalog_id": "MyCatalog",
            "source_category_id": "MyCategory1",
            "target_catalog_id": "OtherCatalog",
            "target_category_id": f"cat-{i}",
            "type": "other",
        }
    assert outcomes == [Done(remote_id=f"cat-{i}", action="created") for i in range(3)]
    # A fresh random boundary per batch.
    second = ScriptedClient(batch_reply(created))
    await stage().run(jobs, second)
    assert second.requests[0].headers["Content-Type"] != content_type


async def test_parts_answered_out_of_order_are_matched_by_content_id() -> None:
    verdicts: dict[str, PartAnswer] = {
        "new": (201, {"link": "new"}, {}),
        "old": (200, {"link": "old"}, {}),
        "unknown": (200, {"link": "unknown"}, {}),
        "gone": (404, fault_doc("CategoryNotFoundException", "No category with ID 'gone'"), {}),
        "busy": (503, fault_doc("ServiceUnavailableException"), {"retry-after": "2"}),
        "expired": (401, fault_doc("InvalidAccessTokenException"), {}),
        "nocatalog": (404, fault_doc("CatalogNotFoundException"), {}),
    }
    names = list(verdicts)
    client = ScriptedClient(batch_reply(lambda doc: verdicts[doc["target_category_id"]]))
    jobs = [to_category(name) for name in names]
    jobs[names.index("old")].exists = True  # what the engine sets from the state
    outcomes = await stage().run(jobs, client)
    by_name = dict(zip(names, outcomes, strict=True))
    assert by_name["new"] == Done(remote_id="new", action="created")
    assert by_name["old"] == Done(remote_id="old", action="updated")
    assert by_name["unknown"] == Done(remote_id="unknown", action="upserted")
    gone = by_name["gone"]
    assert isinstance(gone, Failed) and not gone.retryable
    assert (gone.error.type, gone.error.http_status) == ("CategoryNotFoundException", 404)
    assert "No category with ID 'gone'" in gone.error.message
    busy = by_name["busy"]
    assert isinstance(busy, Failed) and busy.retryable and busy.retry_after == 2.0
    assert busy.error.type == "ServiceUnavailableException"
    expired = by_name["expired"]  # left to the engine: retried with a renewed token
    assert isinstance(expired, Failed) and expired.retryable
    assert expired.error.type == "InvalidAccessTokenException"
    nocatalog = by_name["nocatalog"]
    assert isinstance(nocatalog, Failed) and not nocatalog.retryable
    assert nocatalog.error.type == "CatalogNotFoundException"


@pytest.mark.parametrize("close", [True, False])
async def test_a_part_missing_from_the_answer_is_a_retryable_failure(close: bool) -> None:
    # Without the close delimiter (a truncated answer), the last part read is not trusted.
    def answer(doc: dict[str, Any]) -> PartAnswer:
        return None if doc["target_category_id"] == "lost" else created(doc)

    jobs = [to_category(name) for name in ("a", "lost", "b", "c")]
    client = ScriptedClient(batch_reply(answer, reverse=False, close=close))
    outcomes = await stage().run(jobs, client)
    lost = outcomes[1]
    assert isinstance(lost, Failed) and lost.retryable and lost.error.type == "MissingBatchPart"
    assert isinstance(outcomes[0], Done) and isinstance(outcomes[2], Done)
    assert isinstance(outcomes[3], Done if close else Failed)


async def test_a_conflicting_part_is_reread_and_put_once_more() -> None:
    def answer(doc: dict[str, Any]) -> PartAnswer:
        if doc["target_category_id"] == "raced":
            return 409, fault_doc("ResourceStateConflictException"), {}
        return created(doc)

    client = ScriptedClient(
        batch_reply(answer),
        reply(200, {"position": 2.0}, {"x-dw-resource-state": "st"}),
        reply(200, {"link": "raced"}),
    )
    outcomes = await stage().run([to_category("ok"), to_category("raced")], client)
    assert [r.method for r in client.requests] == ["POST", "GET", "PUT"]
    assert client.requests[2].url.endswith("/category_links/OtherCatalog/raced/other")
    assert client.requests[2].json is not None
    assert client.requests[2].json["_resource_state"] == "st"
    assert outcomes[1] == Done(remote_id="raced", action="updated")


async def test_no_batch_carries_more_than_50_parts() -> None:
    jobs = [to_category(f"c{i}") for i in range(120)]
    client = ScriptedClient(*[batch_reply(created)] * 3)
    outcomes = await stage().run(jobs, client)
    assert [len(sent_parts(r)) for r in client.requests] == [50, 50, 20]
    assert outcomes == [Done(remote_id=f"c{i}", action="created") for i in range(120)]
    assert stage().batch_size == 50 and stage().grouped
    # One group for all links, so the engine fills every batch.
    assert stage().group_key(jobs[0]) == stage().group_key(to_category("other"))
    with pytest.raises(ConfigError, match="at most 50"):
        OcapiOptions(batch=True, batch_size=51)
    with pytest.raises(ConfigError):
        OcapiOptions(batch_size=0)


async def test_invalid_items_never_reach_the_batch() -> None:
    jobs = [to_category("a"), job(type_="bogus"), to_category("b")]
    client = ScriptedClient(batch_reply(created))
    outcomes = await stage().run(jobs, client)
    targets = [part_json(p)["target_category_id"] for p in sent_parts(client.requests[0])]
    assert sorted(targets) == ["a", "b"]
    assert isinstance(outcomes[1], Failed) and outcomes[1].error.type == "InvalidInput"
    assert isinstance(outcomes[0], Done) and isinstance(outcomes[2], Done)
    none_valid = ScriptedClient()
    await stage().run([job(type_="bogus")], none_valid)
    assert none_valid.requests == []


@pytest.mark.parametrize(
    ("response", "error_type", "error_class"),
    [
        (fault(400, "QuotaExceededException"), "QuotaExceededException", ErrorClass.ITEM),
        (
            fault(503, "ServiceUnavailableException"),
            "ServiceUnavailableException",
            ErrorClass.RETRYABLE,
        ),
        (fault(401, "InvalidAccessTokenException"), "InvalidAccessTokenException", ErrorClass.AUTH),
        (reply(200, {"not": "multipart"}), "BadBatchResponse", ErrorClass.RETRYABLE),
    ],
)
async def test_a_whole_batch_failure_is_classified_like_any_response(
    response: HttpResponse, error_type: str, error_class: ErrorClass
) -> None:
    with pytest.raises(RequestFailed) as failure:
        await stage().run([to_category("a"), to_category("b")], ScriptedClient(response))
    assert failure.value.error.type == error_type
    assert failure.value.error_class is error_class


def test_multipart_answers_with_bare_lf_preamble_and_epilogue() -> None:
    body = (
        b'preamble\n--b0\nx-dw-content-id: one\nX-DW-Status-Code: 201\n\n{"a": 1}\n'
        b"--b0\r\nx-dw-content-id: two\r\nx-dw-status-code: 200\r\n\r\n\r\n"
        b"--b0--\nepilogue\n--b0\nx-dw-content-id: three\n\n"
    )
    parts = split_multipart(body, "b0")
    assert [(p.headers["x-dw-content-id"], p.headers["x-dw-status-code"]) for p in parts] == [
        ("one", "201"),
        ("two", "200"),
    ]
    assert parts[0].body == b'{"a": 1}' and parts[1].body == b""


# -- config -----------------------------------------------------------------------------------


def config(ocapi: dict[str, Any] | None = None, **target: Any) -> Config:
    fields = {"client_id_env": "OCAPI_UNIT_ID", "client_secret_env": "OCAPI_UNIT_SECRET", **target}
    return Config(
        target=TargetConfig(kind="ocapi", base_url="https://example.com", **fields),
        sections={"ocapi": ocapi or {}},
    )


def test_build_target_ocapi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCAPI_UNIT_ID", "client")
    monkeypatch.setenv("OCAPI_UNIT_SECRET", "secret")
    built = build_target(config())
    assert isinstance(built.connector, OcapiConnector)
    single: Sequence[Any] = built.connector.stages("link")
    assert isinstance(single[0], CategoryLinkStage)
    built = build_target(config({"batch": True, "batch_size": 20, "token_url": "/dw/token"}))
    batched: Sequence[Any] = built.connector.stages("link")
    assert isinstance(batched[0], BatchLinkStage) and batched[0].batch_size == 20
    with pytest.raises(ConfigError, match="unknown key"):
        build_target(config({"batch_sise": 10}))
    with pytest.raises(ConfigError, match="plain http"):
        build_target(config({"token_url": "http://account.example.com/token"}))
    with pytest.raises(ConfigError, match="client_id_env and client_secret_env"):
        build_target(config(client_secret_env=None))
    monkeypatch.delenv("OCAPI_UNIT_SECRET")
    with pytest.raises(ConfigError, match="OCAPI_UNIT_SECRET is not set"):
        build_target(config())


async def test_assets_fail_with_a_clear_reason() -> None:
    (asset_stage,) = OcapiConnector().stages("asset")
    outcomes: Sequence[Outcome] = await asset_stage.run(
        [Job(AssetRecord(Origin("assets.jsonl", 1), "a1"))], ScriptedClient()
    )
    assert isinstance(outcomes[0], Failed) and "category links only" in outcomes[0].error.message
