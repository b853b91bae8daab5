"""Quable v4 links set as whole groups: a changed link sends its group again with mode
replace, and prune sets each group without the pruned links (seed 000)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.connectors.quable._connector import QuableConnector, QuableOptions
from bulksync.connectors.quable._links import V4LinkStage
from bulksync.connectors.quable._v4links import MAX_PAGES, V4PruneStage
from bulksync.engine._serial import GroupLocks, SerialGroups
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._connector import Done, Failed, Job, Outcome
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import LinkRecord, Origin, Removal, link_key

from .scripted import ScriptedClient, reply

DOC, TYPE = "suede_shoe", "ref_refCol"
GROUP_PATH = f"api_1.php/documents/{DOC}/links/{TYPE}"
TOKEN_ENV = "BULKSYNC_TEST_QUABLE_V4_TOKEN"


def link(to: str, sequence: int | None, *, changed: bool = False) -> Job:
    job = Job(LinkRecord(Origin("links.jsonl", 1), DOC, to, TYPE, sequence))
    if changed:  # what the engine sets for an item pushed before with another content
        job.exists = True
    return job


def removal(to: str, doc: str = DOC) -> Job:
    return Job(Removal(Origin("state", 0), "link", link_key(doc, to, TYPE)))


def listing(links: dict[str, int], next_page: str | None = None) -> HttpResponse:
    members = [
        {
            "id": f"l-{target}",
            "origin": {"@id": f"/api/documents/{DOC}", "id": DOC},
            "target": {"@id": f"/api/documents/{target}", "id": target},
            "linkType": {"@id": f"/api/link_types/{TYPE}", "id": TYPE},
            "sequence": sequence,
        }
        for target, sequence in links.items()
    ]
    view: dict[str, Any] = {"@type": "hydra:PartialCollectionView"}
    if next_page is not None:
        view["hydra:next"] = next_page
    return reply(200, {"hydra:member": members, "hydra:totalItems": 99, "hydra:view": view})


def actions(outcomes: Sequence[Outcome]) -> list[Any]:
    return [o.action if isinstance(o, Done) else o for o in outcomes]


# Request shapes, against a scripted client.


async def test_a_batch_without_changed_links_is_one_update_and_reads_nothing() -> None:
    client = ScriptedClient(reply(200, {"added": ["a", "b"]}))
    outcomes = await V4LinkStage().run([link("a", 3), link("b", None)], client)
    assert [(r.method, r.url) for r in client.requests] == [("POST", GROUP_PATH)]
    assert client.requests[0].json == {
        "mode": "update",
        "items": [{"target_code": "a", "sequence": 3}, {"target_code": "b", "sequence": 2}],
    }
    assert actions(outcomes) == ["linked", "linked"]


async def test_a_changed_link_sends_the_group_again_with_mode_replace() -> None:
    client = ScriptedClient(listing({"a": 1, "b": 2, "c": 3}), reply(200, {}))
    jobs = [link("b", 7, changed=True), link("new", 4)]
    outcomes = await V4LinkStage().run(jobs, client)
    assert [(r.method, r.url) for r in client.requests] == [
        ("GET", "api/links"),
        ("POST", GROUP_PATH),
    ]
    assert client.requests[0].params == {"origin.id": DOC, "linkType.id": TYPE, "limit": "100"}
    assert client.requests[1].json == {
        "mode": "replace",
        "items": [
            {"target_code": "a", "sequence": 1},
            {"target_code": "c", "sequence": 3},
            {"target_code": "new", "sequence": 4},
            {"target_code": "b", "sequence": 7},
        ],
    }
    assert actions(outcomes) == ["updated", "linked"]


async def test_replace_without_a_sequence_keeps_the_remote_one_or_appends() -> None:
    client = ScriptedClient(listing({"a": 5, "b": 9}), reply(200, {}))
    jobs = [link("a", None, changed=True), link("z", None)]
    await V4LinkStage().run(jobs, client)
    items = {i["target_code"]: i["sequence"] for i in client.requests[1].json["items"]}
    assert items == {"a": 5, "b": 9, "z": 10}


async def test_the_group_listing_follows_hydra_next_to_the_last_page() -> None:
    page2 = f"/api/links?origin.id={DOC}&linkType.id={TYPE}&limit=100&page=2"
    page3 = page2.replace("page=2", "page=3")
    client = ScriptedClient(
        listing({"a": 1, "b": 2}, page2),
        listing({"c": 3}, page3),
        listing({"d": 4}),
        reply(200, {}),
    )
    await V4LinkStage().run([link("c", 30, changed=True)], client)
    assert [(r.method, r.url) for r in client.requests] == [
        ("GET", "api/links"),
        ("GET", page2),
        ("GET", page3),
        ("POST", GROUP_PATH),
    ]
    items = {i["target_code"]: i["sequence"] for i in client.requests[3].json["items"]}
    assert items == {"a": 1, "b": 2, "c": 30, "d": 4}


async def test_a_listing_that_repeats_its_next_page_fails_without_writing() -> None:
    loop = "/api/links?page=2"
    client = ScriptedClient(listing({"a": 1}, loop), listing({"b": 2}, loop))
    outcomes = await V4LinkStage().run([link("a", 2, changed=True)], client)
    assert [r.method for r in client.requests] == ["GET", "GET"]
    assert isinstance(outcomes[0], Failed) and outcomes[0].error.type == "BadListing"
    assert "repeats" in outcomes[0].error.message and not outcomes[0].retryable


async def test_a_listing_that_never_ends_stops_after_the_page_bound() -> None:
    pages = iter(range(2, MAX_PAGES + 10))

    def endless(request: HttpRequest) -> HttpResponse:
        return listing({}, f"/api/links?page={next(pages)}")

    client = ScriptedClient(*[endless] * (MAX_PAGES + 1))
    outcomes = await V4LinkStage().run([link("a", 2, changed=True)], client)
    assert len(client.requests) == MAX_PAGES
    assert isinstance(outcomes[0], Failed) and "more than" in outcomes[0].error.message


async def test_a_listing_of_another_group_is_not_trusted() -> None:
    """A server ignoring the filters would have the replace copy foreign links in."""
    foreign = listing({"a": 1})
    body = orjson.loads(foreign.body)
    body["hydra:member"][0]["origin"] = {"id": "other_doc"}
    client = ScriptedClient(reply(200, body))
    outcomes = await V4LinkStage().run([link("a", 2, changed=True)], client)
    assert [r.method for r in client.requests] == ["GET"]
    assert isinstance(outcomes[0], Failed) and "other_doc" in outcomes[0].error.message


async def test_prune_of_two_links_in_a_group_of_five_replaces_with_the_other_three() -> None:
    stage = V4PruneStage()
    jobs = [removal("b"), removal("d")]
    assert stage.grouped and stage.group_key(jobs[0]) == stage.group_key(jobs[1]) == (DOC, TYPE)
    client = ScriptedClient(listing({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}), reply(200, {}))
    outcomes = await stage.run(jobs, client)
    assert [(r.method, r.url) for r in client.requests] == [
        ("GET", "api/links"),
        ("POST", GROUP_PATH),
    ]
    assert client.requests[1].json == {
        "mode": "replace",
        "items": [
            {"target_code": "a", "sequence": 1},
            {"target_code": "c", "sequence": 3},
            {"target_code": "e", "sequence": 5},
        ],
    }
    assert actions(outcomes) == ["deleted", "deleted"]


async def test_prune_of_every_link_replaces_with_empty_items() -> None:
    client = ScriptedClient(listing({"a": 1, "b": 2}), reply(200, {}))
    outcomes = await V4PruneStage().run([removal("a"), removal("b"), removal("gone")], client)
    assert client.requests[1].json == {"mode": "replace", "items": []}
    assert actions(outcomes) == ["deleted", "deleted", "gone"]


async def test_prune_of_links_already_gone_writes_nothing() -> None:
    client = ScriptedClient(listing({"a": 1}))
    outcomes = await V4PruneStage().run([removal("x"), removal("y")], client)
    assert [r.method for r in client.requests] == ["GET"]
    assert actions(outcomes) == ["gone", "gone"]


async def test_prune_of_an_unreadable_key_fails_that_item_only() -> None:
    stage = V4PruneStage()
    bad = Job(Removal(Origin("state", 0), "link", "not-a-link-key"))
    assert stage.group_key(bad) != stage.group_key(removal("a"))
    client = ScriptedClient(listing({"a": 1, "b": 2}), reply(200, {}))
    outcomes = await stage.run([bad, removal("a")], client)
    assert isinstance(outcomes[0], Failed) and outcomes[0].error.type == "InvalidKey"
    assert actions(outcomes)[1] == "deleted"
    assert client.requests[1].json["items"] == [{"target_code": "b", "sequence": 2}]


async def test_the_listing_error_is_raised_classified_for_the_engine_to_retry() -> None:
    from bulksync.spi._connector import RequestFailed
    from bulksync.spi._errors import ErrorClass

    client = ScriptedClient(reply(503, {"hydra:description": "busy"}, {"retry-after": "2"}))
    with pytest.raises(RequestFailed) as failure:
        await V4PruneStage().run([removal("a")], client)
    assert failure.value.error_class is ErrorClass.RETRYABLE and failure.value.retry_after == 2


def test_v4_prune_is_wired_in_the_connector() -> None:
    stages = QuableConnector(QuableOptions(links_api="v4", v4_batch=50)).delete_stages("link")
    assert len(stages) == 1 and isinstance(stages[0], V4PruneStage)
    assert stages[0].batch_size == 50


class GatedClient:
    """Answers a group's listing and writes like the server; the first listing waits for a
    gate, so a second batch of the group gets every chance to overtake it."""

    def __init__(self, links: dict[str, int]) -> None:
        self.links = dict(links)
        self.gate = anyio.Event()
        self.log: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            self.log.append("GET")
            snapshot = dict(self.links)
            if len(self.log) == 1:
                await self.gate.wait()
            return listing(snapshot)
        self.log.append(request.json["mode"])
        wanted = {i["target_code"]: i["sequence"] for i in request.json["items"]}
        if request.json["mode"] == "replace":
            self.links = wanted
        else:
            for target, sequence in wanted.items():
                self.links.setdefault(target, sequence)
        return reply(200, {})


@pytest.mark.parametrize("second_changed", [True, False])
async def test_batches_of_one_group_run_one_after_the_other(second_changed: bool) -> None:
    stage = V4LinkStage(batch_size=2)
    serial = SerialGroups(stage)  # what the engine runs each attempt of a stage through
    client = GatedClient({"a": 1, "b": 2})
    second = [link("b", 20, changed=True)] if second_changed else [link("new", 9)]
    async with anyio.create_task_group() as group:
        group.start_soon(serial.run, [link("a", 10, changed=True)], client)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(serial.run, second, client)
        await anyio.wait_all_tasks_blocked()
        assert client.log == ["GET"]  # the second batch waits for the group's lock
        client.gate.set()
    # The second batch read the group after the first one's replace: nothing was undone.
    expected = {"a": 10, "b": 20} if second_changed else {"a": 10, "b": 2, "new": 9}
    assert client.links == expected
    assert serial.locks is not None
    assert len(serial.locks) == 0  # no lock is kept for a group nobody works on


def test_both_v4_stages_ask_the_engine_to_serialise_their_groups() -> None:
    # The stages no longer lock by themselves: without the flag two batches of one group
    # would read and replace it at once.
    for stage in (V4LinkStage(), V4PruneStage()):
        assert stage.grouped and stage.serial_groups


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks = GroupLocks()
    async with locks.hold("g"):
        async with anyio.create_task_group() as group:
            group.start_soon(_hold_briefly, locks)
            await anyio.wait_all_tasks_blocked()
            assert len(locks) == 1 and locks._entries["g"].users == 2  # holder and waiter
            group.cancel_scope.cancel()
        assert locks._entries["g"].users == 1
    assert len(locks) == 0


async def _hold_briefly(locks: GroupLocks) -> None:
    async with locks.hold("g"):
        pass  # cancelled while waiting: never reached


# Against the sandbox, over HTTP, through the whole engine.


def write_links(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def v4_config(folder: Path, url: str, *, v4_batch: int = 200) -> Config:
    return Config(
        target=TargetConfig(kind="quable", base_url=url, token_env=TOKEN_ENV),
        inputs=InputsConfig(links=folder / "links.jsonl"),
        limits=LimitsConfig(rate=[(100_000, 1.0)], concurrency=8),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        sections={"quable": {"links_api": "v4", "v4_batch": v4_batch}},
    )


def catalogue() -> list[dict[str, Any]]:
    """4 documents x 2 link types x 10 targets: 8 groups of 10 links."""
    return [
        {
            "from": f"doc-{d:05d}",
            "to": f"doc-{10 + t:05d}",
            "type": f"type-{k}",
            "sequence": t + 1,
        }
        for d in range(1, 5)
        for k in range(2)
        for t in range(10)
    ]


def stored(sandbox: Any) -> Counter[tuple[str, str, str, int]]:
    return Counter(
        (x["origin"], x["linkType"], x["target"], x["sequence"])
        for x in sandbox.state.store.quable.links.values()
    )


def wanted(rows: list[dict[str, Any]]) -> Counter[tuple[str, str, str, int]]:
    return Counter((r["from"], r["type"], r["to"], r["sequence"]) for r in rows)


def writes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    counts = {
        route: sum(after[route].values()) - sum(before.get(route, {}).values())
        for route in after
        if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE")
    }
    return {route: n for route, n in counts.items() if n}


V4_ROUTE = "POST /api_1.php/documents/{document_code}/links/{link_type_code}"


@pytest.fixture
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "sandbox-token")


@pytest.mark.usefixtures("_token")
async def test_changed_v4_sequences_reach_the_sandbox_one_replace_per_group(
    tmp_path: Path,
) -> None:
    rows = catalogue()
    write_links(tmp_path / "links.jsonl", rows)
    settings = SandboxSettings().with_overrides({"quable.seed_documents": "40"})
    async with running_sandbox(settings) as sandbox:
        assert sandbox.state.settings.quable.v4_update_existing == "keep"  # the strict reading
        config = v4_config(tmp_path, sandbox.url)
        with anyio.fail_after(60):
            first = await run_job_async(config, quiet=True)
            assert first.exit_code == 0, first.summary
            assert stored(sandbox) == wanted(rows)
            # Four links changed in three groups: (doc 1, type 0) twice, (doc 1, type 1),
            # (doc 3, type 0).
            for index, sequence in ((0, 40), (5, 2), (12, 99), (43, 7)):
                rows[index]["sequence"] = sequence
            write_links(tmp_path / "links.jsonl", rows)
            before = sandbox.state.stats.snapshot()["requests"]
            second = await run_job_async(config, quiet=True)
            after = sandbox.state.stats.snapshot()["requests"]
        assert second.exit_code == 0, second.summary
        assert stored(sandbox) == wanted(rows)  # new sequences, nothing doubled or lost
    assert writes(before, after) == {V4_ROUTE: 3}
    lines = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    assert Counter(x.get("action") for x in lines[-len(rows) :] if x["status"] == "succeeded") == {
        "updated": 4
    }


@pytest.mark.usefixtures("_token")
async def test_changed_links_of_one_group_over_concurrent_batches_all_land(
    tmp_path: Path,
) -> None:
    """Batches of 3 of one group of 10, run by 8 workers: without the group's lock a replace
    computed from a stale listing would put other batches' links back where they were."""
    rows = catalogue()[:10]
    write_links(tmp_path / "links.jsonl", rows)
    settings = SandboxSettings().with_overrides(
        {"quable.seed_documents": "40", "quable.latency.fixed_ms": "5"}
    )
    async with running_sandbox(settings) as sandbox:
        config = v4_config(tmp_path, sandbox.url, v4_batch=3)
        with anyio.fail_after(60):
            assert (await run_job_async(config, quiet=True)).exit_code == 0
            for row in rows:
                row["sequence"] = 100 - row["sequence"]
            write_links(tmp_path / "links.jsonl", rows)
            report = await run_job_async(config, quiet=True)
        assert report.exit_code == 0, report.summary
        assert stored(sandbox) == wanted(rows)


@pytest.mark.usefixtures("_token")
async def test_v4_prune_removes_exactly_the_links_gone_from_the_input(tmp_path: Path) -> None:
    rows = catalogue()
    write_links(tmp_path / "links.jsonl", rows)
    settings = SandboxSettings().with_overrides({"quable.seed_documents": "40"})
    async with running_sandbox(settings) as sandbox:
        config = v4_config(tmp_path, sandbox.url)
        prune = RunOptions(prune=True, max_delete="3")
        with anyio.fail_after(60):
            assert (await run_job_async(config, quiet=True, options=prune)).exit_code == 0
            # A link pushed by someone else into a pruned group: prune must leave it.
            store = sandbox.state.store.quable
            store.add_link("doc-00001", "document", "doc-00030", "document", "type-0", 50, {})
            gone = {3, 4, 25}  # two links of (doc 1, type 0), one of (doc 2, type 0)
            kept = [row for i, row in enumerate(rows) if i not in gone]
            write_links(tmp_path / "links.jsonl", kept)
            before = sandbox.state.stats.snapshot()["requests"]
            report = await run_job_async(config, quiet=True, options=prune)
            after = sandbox.state.stats.snapshot()["requests"]
        assert report.exit_code == 0, report.summary
        extra = ("doc-00001", "type-0", "doc-00030", 50)
        assert stored(sandbox) == wanted(kept) + Counter([extra])
    assert report.summary["deleted"] == 3
    assert writes(before, after) == {V4_ROUTE: 2}  # one replace per group, no DELETE
