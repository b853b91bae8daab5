"""OCAPI outcomes read from evidence rather than from the status, links refused before any
request, batch bodies kept under the batch API's size limit, and deletes built from a key."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bulksync.connectors.ocapi._batch import MAX_BODY_BYTES, BatchLinkStage
from bulksync.connectors.ocapi._delete import DeleteLinkStage, link_from_key
from bulksync.connectors.ocapi._links import CategoryLinkStage
from bulksync.spi._connector import Done, Failed, Job
from bulksync.spi._records import LinkRecord, Origin, Removal, link_key

from .scripted import ScriptedClient, reply
from .test_ocapi_unit import DATA, batch_reply, created, fault, job, sent_parts, to_category


@pytest.mark.parametrize(
    ("status", "exists", "action"),
    [
        (201, None, "created"),  # the server's own word
        (201, True, "created"),  # a stale state: the link was deleted since its last push
        (200, False, "created"),  # the --full listing lacked it
        (200, True, "updated"),  # the state or the listing had it
        (200, None, "upserted"),  # no evidence either way
    ],
)
async def test_put_action_comes_from_evidence(
    status: int, exists: bool | None, action: str
) -> None:
    item = job()
    if exists is not None:
        item.exists = exists
    client = ScriptedClient(reply(status, {"link": "L"}))
    assert await CategoryLinkStage(DATA).run([item], client) == [Done(remote_id="L", action=action)]


@pytest.mark.parametrize(("reread", "action"), [("found", "updated"), ("gone", "created")])
async def test_the_conflict_reread_is_the_evidence(reread: str, action: str) -> None:
    found = reply(200, {"position": 1.0}, {"x-dw-resource-state": "s"})
    gone = fault(404, "CategoryLinkNotFoundException")
    client = ScriptedClient(
        fault(409, "ResourceStateConflictException"),
        found if reread == "found" else gone,
        reply(200, {"link": "L"}),
    )
    item = job()
    item.exists = reread == "gone"  # what was known before is overruled
    outcomes = await CategoryLinkStage(DATA).run([item], client)
    assert outcomes == [Done(remote_id="L", action=action)]


async def test_batch_parts_take_the_action_from_each_jobs_evidence() -> None:
    jobs = [to_category(name) for name in ("known", "absent", "unknown")]
    jobs[0].exists = True
    jobs[1].exists = False
    client = ScriptedClient(batch_reply(lambda doc: (200, {"link": doc["target_category_id"]}, {})))
    outcomes = await BatchLinkStage(DATA, "s/-/dw/batch").run(jobs, client)
    assert [o.action for o in outcomes if isinstance(o, Done)] == [
        "updated",
        "created",
        "upserted",
    ]


@pytest.mark.parametrize("batch", [False, True])
async def test_a_negative_sequence_is_refused_naming_its_line_and_sends_nothing(
    batch: bool,
) -> None:
    record = LinkRecord(
        Origin("links.jsonl", 7),
        {"catalog": "C", "category": "K"},
        {"catalog": "T", "category": "U"},
        "other",
        -1,
    )
    client = ScriptedClient()  # no answer scripted: any request fails the test
    stage = BatchLinkStage(DATA, "s/-/dw/batch") if batch else CategoryLinkStage(DATA)
    [outcome] = await stage.run([Job(record)], client)
    assert client.requests == []
    assert isinstance(outcome, Failed) and not outcome.retryable
    assert outcome.error.type == "InvalidInput"
    assert outcome.error.message.startswith("'sequence' must be 0 or more")
    assert "got -1" in outcome.error.message


async def test_zero_is_a_valid_position() -> None:
    client = ScriptedClient(reply(200, {}))
    await CategoryLinkStage(DATA).run([job(sequence=0)], client)
    assert client.requests[0].json is not None and client.requests[0].json["position"] == 0.0


def long_named(i: int, size: int) -> Job:
    # The category id's length sets the part's size: a name of ``size`` characters.
    return to_category(f"{i:03d}-" + "x" * size)


@pytest.mark.parametrize("limit", [2_000, 5_000, 12_345])
async def test_batch_bodies_never_pass_the_size_limit(limit: int) -> None:
    jobs = [long_named(i, 40 + 37 * (i % 7)) for i in range(60)]
    client = ScriptedClient(*[batch_reply(created)] * 60)
    outcomes = await BatchLinkStage(DATA, "s/-/dw/batch", max_body_bytes=limit).run(jobs, client)
    sizes = [len(r.body or b"") for r in client.requests]
    assert len(sizes) > 1 and max(sizes) <= limit
    # Every link sent exactly once, and only full enough bodies cut: no two consecutive bodies
    # would have fitted in one.
    assert sum(len(sent_parts(r)) for r in client.requests) == 60
    assert all(isinstance(o, Done) for o in outcomes)
    assert all(a + b > limit for a, b in itertools.pairwise(sizes))


async def test_a_link_too_large_for_any_batch_fails_alone() -> None:
    jobs = [to_category("small-1"), long_named(0, 3_000), to_category("small-2")]
    client = ScriptedClient(batch_reply(created))
    outcomes = await BatchLinkStage(DATA, "s/-/dw/batch", max_body_bytes=2_000).run(jobs, client)
    assert len(client.requests) == 1 and len(sent_parts(client.requests[0])) == 2
    too_large = outcomes[1]
    assert isinstance(too_large, Failed) and not too_large.retryable
    assert too_large.error.type == "BatchBodyTooLarge" and "2000 bytes" in too_large.error.message
    assert isinstance(outcomes[0], Done) and isinstance(outcomes[2], Done)


def test_the_default_limit_is_the_documented_5_mb() -> None:
    assert MAX_BODY_BYTES == 5_000_000  # the smaller reading of "5 MB"


KEY = link_key(
    {"catalog": "My Catalog", "category": "a->b:c"}, {"catalog": "T", "category": "U/1"}, "other"
)


def test_a_link_key_gives_back_its_ids() -> None:
    link = link_from_key(KEY)
    assert link is not None
    assert link.path_extension() == (
        "catalogs/My%20Catalog/categories/a-%3Eb%3Ac/category_links/T/U%2F1/other"
    )
    for bad in ("plain->code:other", KEY.replace(":other", ":related"), "x", '{"a": 1}->{}:other'):
        assert link_from_key(bad) is None


@pytest.mark.parametrize(
    ("remote_id", "path"),
    [
        (None, f"{DATA}/catalogs/My%20Catalog/categories/a-%3Eb%3Ac/category_links/T/U%2F1/other"),
        # A recorded link URL still wins: it is the server's own name for the resource.
        (f"https://elsewhere/{DATA}/catalogs/A/categories/B/category_links/T/U/other",
         f"{DATA}/catalogs/A/categories/B/category_links/T/U/other"),
    ],
)  # fmt: skip
async def test_delete_path_from_the_link_url_else_from_the_key(
    remote_id: str | None, path: str
) -> None:
    client = ScriptedClient(reply(204))
    removal = Removal(Origin("target", 0), "link", KEY, remote_id)
    outcomes = await DeleteLinkStage(DATA).run([Job(removal)], client)
    assert [(r.method, r.url) for r in client.requests] == [("DELETE", path)]
    assert outcomes == [Done(remote_id=remote_id, action="deleted")]


async def test_delete_without_a_path_or_an_ocapi_key_sends_nothing() -> None:
    client = ScriptedClient()
    removal: Any = Removal(Origin("state", 0), "link", "A->B:other", None)
    [outcome] = await DeleteLinkStage(DATA).run([Job(removal)], client)
    assert client.requests == [] and isinstance(outcome, Failed)
    assert outcome.error.type == "NoRemoteId"
