"""The Propeller connector: request shapes against a scripted client, and end to end against
the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.runner import run_job_async
from bulksync.app.wiring import build_target
from bulksync.connectors.propeller._auth import PropellerLogin, resolve_token_url
from bulksync.connectors.propeller._links import BulkLinkStage
from bulksync.engine.auth import SessionAuth
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._auth import Token
from bulksync.spi._connector import Done, Failed, Job, RequestFailed
from bulksync.spi._errors import AuthError, ConfigError, ErrorClass
from bulksync.spi._records import LinkRecord, Origin

from .scripted import ScriptedClient, reply

SEED_FIELDS = {"from", "to", "id", "lookupKey", "success", "error"}


def product(pid: int) -> dict[str, Any]:
    return {"class": "product", "id": pid}


def link_job(
    line: int, frm: Any, to: Any, type_: str = "accessories", subtype: str | None = "x"
) -> Job:
    extra = {} if subtype is None else {"subtype": subtype}
    return Job(LinkRecord(Origin("links.jsonl", line), frm, to, type_, extra=extra))


def entry(
    frm: Any, to: Any, link_id: int | None = None, error: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"from": frm, "to": to, "lookupKey": "id", "success": error is None}
    if error is None:
        item["id"] = link_id
    else:
        item["error"] = error
    return item


async def test_bulk_request_shape_and_per_item_results_matched_by_from_and_to() -> None:
    jobs = [link_job(1, product(1), product(2)), link_job(2, product(19815), product(204))]
    jobs[0] = Job(
        LinkRecord(
            Origin("l", 1),
            product(1),
            product(2),
            "accessories",
            extra={"subtype": "x", "priority": 3, "isDefault": True, "isActive": False},
        )
    )
    # Answered out of order, with ids echoed as text: matched by from/to, not by position.
    answer = {
        "data": [
            entry(
                {"class": "product", "id": "19815"},
                product(204),
                error="Product with id [19815] not found",
            ),
            entry(product(1), product(2), link_id=543973),
        ],
        "messages": ["Completed"],
        "total": 2,
    }
    client = ScriptedClient(reply(200, answer))
    outcomes = await BulkLinkStage(chunk=100).run(jobs, client)
    request = client.requests[0]
    assert (request.method, request.url) == ("POST", "links/bulk/id")
    assert request.json == {
        "links": [
            {
                "type": "accessories",
                "subtype": "x",
                "from": product(1),
                "to": product(2),
                "isDefault": True,
                "isActive": False,
                "priority": 3,
            },
            {"type": "accessories", "subtype": "x", "from": product(19815), "to": product(204)},
        ]
    }
    assert isinstance(outcomes[0], Done) and outcomes[0].remote_id == "543973"
    assert outcomes[0].extra == {
        "from": product(1),
        "to": product(2),
        "lookupKey": "id",
        "id": 543973,
    }
    assert isinstance(outcomes[1], Failed) and not outcomes[1].retryable
    assert outcomes[1].error.message == "Product with id [19815] not found"


async def test_two_links_of_one_pair_are_told_apart_by_type_when_the_answer_has_it() -> None:
    jobs = [
        link_job(1, product(1), product(2), "accessories"),
        link_job(2, product(1), product(2), "related"),
    ]
    # Out of order: position would pair them wrongly; the echoed type pairs them right.
    related = {**entry(product(1), product(2), error="not allowed"), "type": "related"}
    accessories = {**entry(product(1), product(2), link_id=7), "type": "accessories"}
    client = ScriptedClient(reply(200, {"data": [related, accessories], "total": 2}))
    outcomes = await BulkLinkStage(chunk=100).run(jobs, client)
    assert isinstance(outcomes[0], Done) and outcomes[0].remote_id == "7"
    assert isinstance(outcomes[1], Failed) and outcomes[1].error.message == "not allowed"


async def test_schema_error_fails_the_named_item_and_resends_the_rest() -> None:
    jobs = [link_job(i, product(i), product(i + 1)) for i in range(1, 5)]
    schema = {
        "error": {
            "code": 10007,
            "status": 400,
            "type": "SchemaValidationException",
            "messages": ["#/links/2/from/id: expected type: Integer, found: String"],
        }
    }
    ok = {
        "data": [entry(product(i), product(i + 1), 10 + i) for i in (1, 2, 4)],
        "messages": ["Completed"],
        "total": 3,
    }
    client = ScriptedClient(reply(400, schema), reply(200, ok))
    outcomes = await BulkLinkStage().run(jobs, client)
    assert len(client.requests) == 2
    assert [link["from"]["id"] for link in client.requests[1].json["links"]] == [1, 2, 4]
    assert isinstance(outcomes[2], Failed) and outcomes[2].error.type == "SchemaValidationException"
    assert "#/links/2/from/id" in outcomes[2].error.message
    assert [isinstance(o, Done) for o in outcomes] == [True, True, False, True]


async def test_a_missing_entry_is_retryable_and_bad_input_is_refused_locally() -> None:
    jobs = [
        link_job(1, product(1), product(2)),
        link_job(2, product(3), product(4)),
        link_job(3, product(5), product(6), type_="crosssell"),
        link_job(4, product(7), product(8), subtype=None),
        link_job(5, "sku-1", product(8)),
    ]
    client = ScriptedClient(
        reply(
            200, {"data": [entry(product(1), product(2), 1)], "messages": ["Completed"], "total": 1}
        )
    )
    outcomes = await BulkLinkStage().run(jobs, client)
    assert len(client.requests[0].json["links"]) == 2
    assert isinstance(outcomes[0], Done)
    assert isinstance(outcomes[1], Failed) and outcomes[1].retryable
    for index in (2, 3, 4):
        assert isinstance(outcomes[index], Failed) and outcomes[index].error.type == "InvalidInput"
    assert "subtype" in outcomes[3].error.message  # type: ignore[union-attr]


@pytest.mark.parametrize("code", [10007, "10007", " 10007 "])
async def test_a_schema_error_splits_the_chunk_whether_its_code_is_a_number_or_text(
    code: int | str,
) -> None:
    # The errors page types `code` as a string; its examples show numbers.
    jobs = [link_job(i, product(i), product(i + 1)) for i in (1, 2)]
    schema = {
        "error": {
            "code": code,
            "status": 400,
            "type": "SchemaValidationException",
            "messages": ["#/links/0/type: accessories-dummy is not a valid enum value"],
        }
    }
    ok = {"data": [entry(product(2), product(3), 12)], "messages": ["Completed"], "total": 1}
    client = ScriptedClient(reply(400, schema), reply(200, ok))
    outcomes = await BulkLinkStage().run(jobs, client)
    assert len(client.requests) == 2
    assert isinstance(outcomes[0], Failed) and "accessories-dummy" in outcomes[0].error.message
    assert isinstance(outcomes[1], Done) and outcomes[1].remote_id == "12"


async def test_account_links_without_a_subtype_are_sent_with_manage() -> None:
    company = {"class": "company", "id": 150}
    jobs = [
        link_job(1, {"class": "contact", "id": 14575}, company, "account", subtype=None),
        link_job(2, {"class": "user", "id": 7}, company, "account", subtype="manage"),
        link_job(3, product(1), product(2), "related", subtype=None),
    ]
    answer = {
        "data": [
            entry({"class": "contact", "id": 14575}, company, 543843),
            entry({"class": "user", "id": 7}, company, 543844),
            entry(product(1), product(2), 543845),
        ],
        "messages": ["Completed"],
        "total": 3,
    }
    client = ScriptedClient(reply(200, answer))
    # The configured default subtype is meant for product links; account links take manage.
    outcomes = await BulkLinkStage(default_subtype="bulksync").run(jobs, client)
    sent = client.requests[0].json["links"]
    assert [(x["type"], x["subtype"]) for x in sent] == [
        ("account", "manage"),
        ("account", "manage"),
        ("related", "bulksync"),
    ]
    assert all(isinstance(o, Done) for o in outcomes)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, ErrorClass.ITEM), (503, ErrorClass.RETRYABLE), (429, ErrorClass.RETRYABLE)],
)
async def test_whole_chunk_errors_are_classified(status: int, error_class: ErrorClass) -> None:
    body = {
        "error": {
            "code": 10006,
            "status": status,
            "type": "InvalidLookupKey",
            "messages": ["Invalid lookup key"],
        }
    }
    with pytest.raises(RequestFailed) as failure:
        await BulkLinkStage().run(
            [link_job(1, product(1), product(2))], ScriptedClient(reply(status, body))
        )
    assert failure.value.error_class is error_class
    assert failure.value.error.type == "InvalidLookupKey"


def test_token_request_and_string_or_number_expires_in() -> None:
    login = PropellerLogin("my-client", "my-secret-value", "https://api.helice.cloud/oauth2/token")
    request = login.login_request()
    assert (request.method, request.url, request.authenticated) == (
        "POST",
        "https://api.helice.cloud/oauth2/token",
        False,
    )
    assert request.form == {
        "grant_type": "client_credentials",
        "client_id": "my-client",
        "client_secret": "my-secret-value",
    }
    legacy = login.parse_token(
        reply(200, {"access_token": "abc", "token_type": "BearerToken", "expires_in": "1899"}), 10.0
    )
    assert legacy.expires_at == 1909.0
    assert login.auth_headers(legacy) == {"Authorization": "Bearer abc"}
    current = login.parse_token(
        reply(200, {"access_token": "abc", "token_type": "Bearer", "expires_in": 1800}), 10.0
    )
    assert current.expires_at == 1810.0
    for bad in ({"expires_in": 1800}, {"access_token": "", "expires_in": 1800}):
        with pytest.raises(AuthError):
            login.parse_token(reply(200, bad), 0.0)


@pytest.mark.parametrize(
    ("base_url", "token_url", "expected"),
    [
        ("https://api.helice.cloud/v2", None, "https://api.helice.cloud/oauth2/token"),
        ("https://api.helice.cloud/v2/", None, "https://api.helice.cloud/oauth2/token"),
        ("http://127.0.0.1:8080/v2", None, "http://127.0.0.1:8080/oauth2/token"),
        ("https://api.helice.cloud/v2", "/auth/token", "https://api.helice.cloud/auth/token"),
        ("https://api.helice.cloud/v2", "auth/token", "https://api.helice.cloud/auth/token"),
        ("https://api.helice.cloud/v2", "https://login.example/t", "https://login.example/t"),
    ],
)
def test_the_token_url_is_on_the_origin_outside_v2(
    base_url: str, token_url: str | None, expected: str
) -> None:
    assert resolve_token_url(base_url, token_url) == expected


@pytest.mark.parametrize(
    "token_url", ["http://login.example/token", "ftp://api.helice.cloud/oauth2/token"]
)
def test_an_absolute_token_url_is_checked_like_the_base_url(token_url: str) -> None:
    # The client secret is sent there: plain http only to loopback, or with allow_http.
    with pytest.raises(ConfigError, match="token_url"):
        resolve_token_url("https://api.helice.cloud/v2", token_url)
    if token_url.startswith("http:"):
        assert resolve_token_url("https://api.helice.cloud/v2", token_url, True) == token_url


def test_the_session_renews_the_token_five_minutes_before_it_expires() -> None:
    config = sandbox_config(Path("/nonexistent"), "https://api.helice.cloud/v2", [], write=False)
    auth = build_target(config).target.auth
    assert isinstance(auth, SessionAuth)
    now = [0.0]
    auth._clock = lambda: now[0]  # the renewal moment, read from a fake clock
    auth._adopt(Token("t", 1800.0))
    now[0] = 1499.0
    assert auth._fresh()
    now[0] = 1500.0  # 1800 s - 300 s
    assert not auth._fresh()


def sandbox_config(
    folder: Path, url: str, links: list[dict[str, Any]], *, write: bool = True
) -> Config:
    path = folder / "links.jsonl"
    if write:
        path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in links))
    return Config(
        target=TargetConfig(
            kind="propeller", base_url=url, client_id_env="PROP_ID", client_secret_env="PROP_SECRET"
        ),
        inputs=InputsConfig(links=path),
        limits=LimitsConfig(concurrency=8, max_elapsed_s=60),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        sections={"propeller": {"subtype": "bulksync"}},
    )


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROP_ID", "sandbox")
    monkeypatch.setenv("PROP_SECRET", "sandbox")


def product_links(count: int, products: int) -> list[dict[str, Any]]:
    pairs = [(a, b) for a in range(1, products + 1) for b in range(1, products + 1) if a != b]
    return [{"from": product(a), "to": product(b), "type": "related"} for a, b in pairs[:count]]


async def test_ten_thousand_links_take_at_most_a_hundred_bulk_requests(tmp_path: Path) -> None:
    links = product_links(10_000, 101)
    async with running_sandbox(
        SandboxSettings().with_overrides({"propeller.seed_products": "101"})
    ) as sandbox:
        with anyio.fail_after(120):
            report = await run_job_async(
                sandbox_config(tmp_path, sandbox.propeller_url, links), quiet=True
            )
        requests = sandbox.state.stats.snapshot()["requests"]
    assert report.exit_code == 0, report.summary
    assert sum(requests["POST /v2/links/bulk/{lookupKey}"].values()) <= 100
    lines = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    assert len(lines) == 10_000 and len({x["line"] for x in lines}) == 10_000
    assert all(set(x) >= SEED_FIELDS and x["success"] and x["lookupKey"] == "id" for x in lines)


async def test_logs_in_at_the_root_with_base_url_v2_and_no_token_setting(tmp_path: Path) -> None:
    # As documented: base_url http://HOST:PORT/v2, the token at http://HOST:PORT/oauth2/token.
    links = [
        {"from": product(1), "to": product(2), "type": "related"},
        {
            "from": {"class": "contact", "id": 1},
            "to": {"class": "company", "id": 2},
            "type": "account",
        },
        {
            "from": {"class": "user", "id": 3},
            "to": {"class": "company", "id": 2},
            "type": "account",
        },
    ]
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = sandbox_config(tmp_path, f"http://127.0.0.1:{sandbox.port}/v2", links)
        assert "token_url" not in config.sections["propeller"]
        with anyio.fail_after(60):
            report = await run_job_async(config, quiet=True)
        requests = sandbox.state.stats.snapshot()["requests"]
        stored = list(sandbox.state.store.propeller.links.values())
    assert report.exit_code == 0, report.summary
    assert requests["POST /oauth2/token"] == {"200": 1}
    assert requests["POST /v2/links/bulk/{lookupKey}"] == {"200": 1}
    assert sorted((x["type"], x["subtype"], x["from"]["class"]) for x in stored) == [
        ("account", "manage", "contact"),
        ("account", "manage", "user"),
        ("related", "bulksync", "product"),
    ]
