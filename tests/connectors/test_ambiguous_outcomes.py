"""Ambiguous outcomes and unreadable 2xx answers, against a scripted client.

A write answered 500, 502, 504, a timeout or an unreadable 2xx may have been applied: the next
attempt looks the object up before creating it again. 408, 429 and 503 are refusals before any
work (RFC 9110, RFC 6585): the create is simply sent again. A 2xx that does not carry what the
stage needs is never a success.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bulksync.connectors.ocapi import OcapiConnector, OcapiOptions
from bulksync.connectors.propeller._links import BulkLinkStage
from bulksync.connectors.quable._assets import CreateStage, UploadStage
from bulksync.connectors.quable._links import V4LinkStage, V5LinkStage, find_link
from bulksync.engine._stages import StageCounters, StagePool
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import Done, Failed, Job, RequestFailed, Skipped, Stage
from bulksync.spi._errors import ErrorClass, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, LinkRecord, Origin
from bulksync.store.results import RunStats

from .scripted import ScriptedClient, reply

LINK = {"@id": "/api/links/77", "id": 77, "origin": {"id": "shoe"}, "target": {"id": "blue"}}
FOUND = reply(200, {"hydra:member": [{**LINK, "linkType": {"id": "ref"}}], "hydra:totalItems": 1})
NONE_FOUND = reply(200, {"hydra:member": [], "hydra:totalItems": 0})
ASSET = reply(200, {"@id": "/api/assets/banner", "id": "banner"})
GARBAGE = {
    "html": HttpResponse(
        200, {"content-type": "text/html"}, b"<!doctype html>\n<html><body>Bad gateway</body>"
    ),
    "invalid_json": HttpResponse(200, {"content-type": "application/json"}, b'{"id": "7'),
    "empty": HttpResponse(200, {"content-type": "application/json"}, b""),
    "list": reply(200, [{"id": "7"}]),
}


def timeout(request: HttpRequest) -> HttpResponse:
    raise TransportError("read timed out", maybe_applied=True, timeout=True)


def link() -> Job:
    return Job(LinkRecord(Origin("links.jsonl", 1), "shoe", "blue", "ref", 1))


def banner() -> Job:
    return Job(AssetRecord(Origin("assets.jsonl", 1), id="banner", remote_path="https://x/b.jpg"))


class Sink:
    """Where the pool's jobs end: the test reads their one outcome each."""

    def __init__(self) -> None:
        self.ended: list[tuple[Job, Failed | Skipped | None]] = []

    def succeed(self, job: Job) -> None:
        self.ended.append((job, None))

    def end(self, job: Job, outcome: Failed | Skipped, step: str) -> None:
        self.ended.append((job, outcome))

    async def intend(self, jobs: Sequence[Job]) -> None:
        return None


async def run_pool(stage: Stage, client: ScriptedClient, *jobs: Job, attempts: int = 4) -> Sink:
    sink = Sink()
    retry = RetryPolicy(max_attempts=attempts, base_s=0.0, cap_s=0.0)
    counters = StageCounters("link", stage.name)
    pool = StagePool(stage, counters, client, retry, RunStats(), sink, 0.0)  # type: ignore[arg-type]
    await pool.process(list(jobs), None)
    assert len(sink.ended) == len(jobs)  # one end per job, whatever happened
    return sink


def calls(client: ScriptedClient) -> list[str]:
    return [f"{r.method} {r.url}" for r in client.requests]


@pytest.mark.parametrize(
    "first",
    [reply(500, {}), reply(502, {}), reply(504, {}), timeout],
    ids=["500", "502", "504", "timeout"],
)
async def test_an_ambiguous_link_create_is_looked_up_not_repeated(first: Any) -> None:
    client = ScriptedClient(first, FOUND)
    sink = await run_pool(V5LinkStage(), client, job := link())
    assert calls(client) == ["POST api/links", "GET api/links"]
    assert sink.ended == [(job, None)] and job.remote_id == "77"


@pytest.mark.parametrize("status", [408, 429, 503])
async def test_a_refused_link_create_is_simply_sent_again(status: int) -> None:
    client = ScriptedClient(reply(status, {}), reply(201, {"id": 9}))
    sink = await run_pool(V5LinkStage(), client, job := link())
    assert calls(client) == ["POST api/links", "POST api/links"]
    assert sink.ended == [(job, None)] and job.remote_id == "9"


async def test_a_lookup_that_finds_nothing_creates_and_every_later_attempt_looks_again() -> None:
    # The first POST may land late: it is looked for before each later create, not once.
    client = ScriptedClient(reply(502, {}), NONE_FOUND, reply(503, {}), FOUND)
    sink = await run_pool(V5LinkStage(), client, job := link())
    assert calls(client) == ["POST api/links", "GET api/links", "POST api/links", "GET api/links"]
    assert sink.ended == [(job, None)]


@pytest.mark.parametrize(
    "first", [reply(500, {}), GARBAGE["empty"], timeout], ids=["500", "empty-200", "timeout"]
)
async def test_an_ambiguous_asset_create_is_looked_up_then_updated(first: Any) -> None:
    client = ScriptedClient(first, ASSET, reply(200, {"id": "banner"}))
    sink = await run_pool(CreateStage(), client, job := banner())
    assert calls(client) == ["POST api/assets", "GET api/assets/banner", "PUT api/assets/banner"]
    assert sink.ended == [(job, None)]


async def test_a_refused_asset_create_is_sent_again_without_lookup() -> None:
    client = ScriptedClient(reply(503, {}), reply(201, {"id": "banner"}))
    sink = await run_pool(CreateStage(), client, job := banner())
    assert calls(client) == ["POST api/assets", "POST api/assets"]
    assert sink.ended == [(job, None)]


async def test_an_asset_lookup_answered_with_a_page_that_is_not_the_asset_proves_nothing() -> None:
    job = banner()
    job.maybe_applied = True
    with pytest.raises(RequestFailed) as caught:
        await CreateStage().run([job], ScriptedClient(GARBAGE["html"]))
    assert caught.value.error.type == "BadResponse" and not caught.value.maybe_applied
    assert job.exists is None


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_an_unreadable_2xx_to_a_link_create_is_no_success(kind: str) -> None:
    with pytest.raises(RequestFailed) as caught:
        await V5LinkStage().run([link()], ScriptedClient(GARBAGE[kind]))
    failure = caught.value
    assert failure.error_class is ErrorClass.RETRYABLE and failure.maybe_applied
    assert failure.error.type == "BadResponse" and failure.error.http_status == 200
    assert failure.error.message.startswith("link shoe -> blue (ref): HTTP 200 with ")
    assert "\n" not in failure.error.message


def test_the_unreadable_body_is_named_with_its_type_and_an_excerpt() -> None:
    from bulksync.spi._answers import json_object

    with pytest.raises(RequestFailed) as caught:
        json_object(GARBAGE["html"], "create of x", write=True)
    assert caught.value.error.message == (
        "create of x: HTTP 200 with an unreadable body (text/html): "
        "<!doctype html> <html><body>Bad gateway</body>"
    )
    with pytest.raises(RequestFailed) as caught:
        json_object(GARBAGE["list"], "create of x", write=False)
    assert caught.value.error.message.endswith("a JSON array where a JSON object was expected")
    assert not caught.value.maybe_applied  # a read changes nothing


async def test_the_documented_bodiless_201_of_a_link_create_is_a_success() -> None:
    outcomes = await V5LinkStage().run([link()], ScriptedClient(reply(201)))
    assert outcomes == [Done(remote_id=None, action="created")]


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_an_unreadable_2xx_to_an_asset_create_or_upload_is_no_success(
    kind: str, tmp_path: Path
) -> None:
    with pytest.raises(RequestFailed) as caught:
        await CreateStage().run([banner()], ScriptedClient(GARBAGE[kind]))
    assert caught.value.maybe_applied and caught.value.error.type == "BadResponse"
    path = tmp_path / "a.png"
    path.write_bytes(b"png")
    upload = Job(AssetRecord(Origin("assets.jsonl", 1), id="a", file=path))
    with pytest.raises(RequestFailed) as caught:
        await UploadStage().run([upload], ScriptedClient(GARBAGE[kind]))
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert upload.file_id is None


async def test_an_upload_answer_without_a_file_id_is_no_success(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"png")
    upload = Job(AssetRecord(Origin("assets.jsonl", 1), id="a", file=path))
    with pytest.raises(RequestFailed) as caught:
        await UploadStage().run([upload], ScriptedClient(reply(201, {"name": "a.png"})))
    assert caught.value.error.message == "upload of a.png: HTTP 201 with no file id in its body"


async def test_a_lookup_that_lists_other_links_does_not_say_the_link_is_absent() -> None:
    other = {"id": 5, "origin": {"id": "hat"}, "target": {"id": "blue"}, "linkType": {"id": "ref"}}
    client = ScriptedClient(reply(200, {"hydra:member": [other]}))
    with pytest.raises(RequestFailed) as caught:
        await find_link(client, "shoe", "blue", "ref")
    assert caught.value.error.type == "BadLookup"
    for kind in ("html", "empty", "list"):
        with pytest.raises(RequestFailed):
            await find_link(ScriptedClient(GARBAGE[kind]), "shoe", "blue", "ref")


@pytest.mark.parametrize("kind", ["html", "invalid_json"])
async def test_an_unreadable_2xx_to_a_v4_group_is_retried(kind: str) -> None:
    with pytest.raises(RequestFailed) as caught:
        await V4LinkStage().run([link()], ScriptedClient(GARBAGE[kind]))
    assert caught.value.error_class is ErrorClass.RETRYABLE
    # The v4 success body is not documented: an empty one is no reason to fail.
    assert await V4LinkStage().run([link()], ScriptedClient(GARBAGE["empty"])) == [
        Done(action="linked")
    ]


def ocapi_job() -> Job:
    ends = ({"catalog": "C", "category": "K"}, {"catalog": "T", "category": "U"})
    return Job(LinkRecord(Origin("links.jsonl", 1), *ends, "other", 1))


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_an_unreadable_2xx_to_an_ocapi_put_is_no_success(kind: str) -> None:
    stage = OcapiConnector(OcapiOptions()).stages("link")[0]
    with pytest.raises(RequestFailed) as caught:
        await stage.run([ocapi_job()], ScriptedClient(GARBAGE[kind]))
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert caught.value.error.type == "BadResponse"


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b"[1]"])
async def test_an_unreadable_part_of_an_ocapi_batch_fails_only_its_own_link(body: bytes) -> None:
    stage = OcapiConnector(OcapiOptions(batch=True)).stages("link")[0]

    def respond(request: HttpRequest) -> HttpResponse:
        boundary = request.headers["Content-Type"].split("boundary=")[1]
        parts = [(b'{"link": "https://h/x"}', "link-0"), (body, "link-1")]
        chunks = [
            f"--{boundary}\r\nx-dw-content-id: {cid}\r\nx-dw-status-code: 200\r\n\r\n".encode()
            + content
            + b"\r\n"
            for content, cid in parts
        ]
        closing = f"--{boundary}--\r\n".encode()
        content_type = f"multipart/mixed; boundary={boundary}"
        return HttpResponse(200, {"content-type": content_type}, b"".join(chunks) + closing)

    outcomes = await stage.run([ocapi_job(), ocapi_job()], ScriptedClient(respond))
    assert outcomes[0] == Done(remote_id="https://h/x", action="upserted")
    assert isinstance(outcomes[1], Failed) and outcomes[1].retryable
    assert outcomes[1].error.type == "BadResponse"


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_an_ocapi_batch_answered_with_garbage_is_retried_whole(kind: str) -> None:
    stage = OcapiConnector(OcapiOptions(batch=True)).stages("link")[0]
    with pytest.raises(RequestFailed) as caught:
        await stage.run([ocapi_job(), ocapi_job()], ScriptedClient(GARBAGE[kind]))
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert "\n" not in caught.value.error.message


@pytest.mark.parametrize(
    "answer",
    [*GARBAGE.values(), reply(200, {"links": []}), reply(200, {"data": {}})],
    ids=[*GARBAGE, "no-data", "data-not-a-list"],
)
async def test_a_propeller_bulk_answer_that_is_not_data_fails_its_links_retryably(
    answer: HttpResponse,
) -> None:
    jobs = [
        Job(
            LinkRecord(
                Origin("l", n),
                {"class": "product", "id": n},
                {"class": "product", "id": 9},
                "accessories",
                extra={"subtype": "x"},
            )
        )
        for n in (1, 2)
    ]
    outcomes = await BulkLinkStage().run(jobs, ScriptedClient(answer))
    for outcome in outcomes:
        assert isinstance(outcome, Failed) and outcome.retryable and outcome.maybe_applied
        assert outcome.error.type == "BadResponse"


async def test_garbage_on_every_answer_fails_with_one_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = ScriptedClient(*[GARBAGE[kind] for kind in sorted(GARBAGE)] * 2)
    sink = await run_pool(V5LinkStage(), client, link(), attempts=4)
    [(_, outcome)] = sink.ended
    assert isinstance(outcome, Failed) and outcome.error.type == "BadResponse"
    assert outcome.error.message.startswith(
        "gave up after 4 attempts: lookup of link shoe -> blue (ref): HTTP 200 with "
    )
    assert outcome.maybe_applied  # the first POST's garbage answer leaves it unknown
    # After the first garbage answer every attempt looks the link up first.
    assert calls(client) == ["POST api/links"] + ["GET api/links"] * 3
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_garbage_listing_page_is_retried_never_read_as_empty(kind: str) -> None:
    from bulksync.connectors.ocapi._listing import OcapiLister
    from bulksync.connectors.quable._listing import QuableLister

    request = HttpRequest("GET", "x")
    for lister in (QuableLister(), OcapiLister("s/-/dw/data/v23_2")):
        with pytest.raises(RequestFailed) as caught:
            lister.read_page("link", request, GARBAGE[kind])
        assert caught.value.error_class is ErrorClass.RETRYABLE
        assert caught.value.error.type == "BadResponse"
