"""The engine driven by the in-memory fake target: every item ends with exactly one result."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from bulksync.connectors.fake._fake import FakeConnector, FakeServer, FakeSettings
from bulksync.engine._engine import FEED_BATCH, Engine, EngineOptions
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.spi import BaseConnector
from bulksync.spi._connector import BaseStage, Client, Done, Failed, Job, Outcome, Skipped
from bulksync.spi._errors import ErrorInfo
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Origin
from bulksync.store.results import ResultWriter, read_results

FAST_RETRY = RetryPolicy(max_attempts=14, base_s=0.0005, cap_s=0.004, rng=random.Random(1))


def links(count: int) -> list[LinkRecord]:
    return [
        LinkRecord(Origin("links.jsonl", i + 1), f"doc-{i}", f"doc-{i + 1}", "ref_refCol", i)
        for i in range(count)
    ]


async def run_fake(
    tmp_path: Path,
    records: Sequence[LinkRecord | AssetRecord | BadRecord],
    settings: FakeSettings,
    *,
    kind: str = "link",
    options: EngineOptions | None = None,
) -> tuple[Engine, FakeServer, list[dict[str, object]]]:
    server = FakeServer(settings)
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, RateBudget(), NoAuth())
    engine = Engine(FakeConnector(), target, writer, options or EngineOptions(retry=FAST_RETRY))
    with anyio.fail_after(60):
        await engine.run([(kind, iter(records))])  # type: ignore[list-item]
    writer.close()
    return engine, server, list(read_results(tmp_path / "results.jsonl"))


async def test_ten_thousand_items_with_transient_and_permanent_faults(tmp_path: Path) -> None:
    settings = FakeSettings(transient_rate=0.2, permanent_rate=0.05, seed=11, retry_after_s=0.0005)
    items = links(10_000)
    engine, server, results = await run_fake(tmp_path, items, settings)

    lines = Counter(r["line"] for r in results)
    assert len(results) == 10_000
    assert set(lines) == set(range(1, 10_001)) and max(lines.values()) == 1

    rejected = {item.key for item in items if server.rejects(item.key)}
    assert 300 < len(rejected) < 700  # about 5%, so both kinds of fault are really exercised
    for result in results:
        if result["key"] in rejected:
            assert result["status"] == "failed"
            assert "rejected by the fake server" in result["error"]["message"]  # type: ignore[index]
            assert result["error"]["http_status"] == 422  # type: ignore[index]
        else:
            assert result["status"] == "succeeded", result
    assert sum(server.counters.faults.values()) > 1500  # the 20% transient faults happened
    assert engine.stats.retries > 1500
    assert server.counters.sent_after_success == 0
    # Each good item was written once, or twice only when a write's answer was lost.
    lost_answers = server.counters.faults.get("applied-then-drop", 0)
    extra_writes = sum(n - 1 for n in server.counters.applied.values())
    assert extra_writes <= lost_answers
    assert set(server.counters.applied) == {i.key for i in items} - rejected
    assert engine.stats.succeeded == 10_000 - len(rejected)
    assert engine.stats.failed == len(rejected)


async def test_bad_records_get_their_own_failed_result(tmp_path: Path) -> None:
    good = links(3)
    bad = BadRecord(Origin("links.jsonl", 2), "link", "invalid JSON: unexpected character")
    records = [good[0], bad, good[2]]
    _, _, results = await run_fake(tmp_path, records, FakeSettings())
    by_line = {r["line"]: r for r in results}
    assert by_line[2]["status"] == "failed"
    assert by_line[2]["error"]["type"] == "InvalidInput"  # type: ignore[index]
    assert "links.jsonl:2" in by_line[2]["error"]["message"]  # type: ignore[index]
    assert by_line[1]["status"] == by_line[3]["status"] == "succeeded"


async def test_two_step_assets_report_the_failed_step(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.png").write_bytes(b"png")
    records = [
        AssetRecord(Origin("assets.jsonl", 1), "a", file=media / "a.png"),
        AssetRecord(Origin("assets.jsonl", 2), "missing", file=media / "missing.png"),
        AssetRecord(Origin("assets.jsonl", 3), "remote", remote_path="https://x.test/r.jpg"),
    ]
    engine, server, results = await run_fake(tmp_path, records, FakeSettings(), kind="asset")
    by_line = {r["line"]: r for r in results}
    assert by_line[1]["status"] == "succeeded" and by_line[3]["status"] == "succeeded"
    assert by_line[2]["status"] == "failed"
    assert by_line[2]["step"] == "upload"
    # The failed upload counts once, at the upload; the create stage shows it skipped.
    upload, create = engine.counters
    assert (upload.done, upload.failed, upload.not_applicable) == (1, 1, 1)
    assert (create.done, create.failed, create.skipped) == (2, 0, 1)
    assert by_line[2]["error"]["type"] == "MissingFile"  # type: ignore[index]
    assert by_line[2]["attempts"] == 1  # a missing file is not retried
    assert set(server.counters.applied) == {"a", "remote"}


class GatedUpload(BaseStage):
    """An upload stage where every item but the first waits for a gate to open."""

    name = "upload"

    def __init__(self) -> None:
        self.gate = anyio.Event()

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        if jobs[0].record.key != "asset-0":
            await self.gate.wait()
        return [Done()]


class RecordingCreate(BaseStage):
    name = "create"

    def __init__(self, upload: GatedUpload) -> None:
        self.upload = upload
        self.created_while_uploads_pending: list[str] = []

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        if not self.upload.gate.is_set():
            self.created_while_uploads_pending.append(jobs[0].record.key)
            self.upload.gate.set()
        return [Done(remote_id=jobs[0].record.key)]


class StagedConnector(BaseConnector):
    name = "staged"

    def __init__(self, stages: list[object]) -> None:
        self._stages = stages

    def stages(self, kind: str) -> list[object]:
        return self._stages


async def test_a_create_waits_only_for_its_own_upload(tmp_path: Path) -> None:
    upload = GatedUpload()
    create = RecordingCreate(upload)
    records = [AssetRecord(Origin("a.jsonl", i + 1), f"asset-{i}") for i in range(20)]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    engine = Engine(StagedConnector([upload, create]), target, writer)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("asset", iter(records))])
    writer.close()
    assert create.created_while_uploads_pending == ["asset-0"]
    assert engine.stats.succeeded == 20


class ScriptedBatch(BaseStage):
    """A batch stage: item 'bad' always fails, 'flaky' fails once retryably, others succeed."""

    name = "link"
    batch_size = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.flaky_seen = False

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        await anyio.lowlevel.checkpoint()
        keys = [str(job.record.to) for job in jobs]
        self.calls.append(keys)
        outcomes: list[Outcome] = []
        for key in keys:
            if key == "bad":
                outcomes.append(Failed(ErrorInfo("NotFound", "no such doc")))
            elif key == "flaky" and not self.flaky_seen:
                self.flaky_seen = True
                outcomes.append(Failed(ErrorInfo("Busy", "try later"), retryable=True))
            elif key == "old":
                outcomes.append(Skipped("unchanged"))
            else:
                outcomes.append(Done(remote_id=f"id-{key}"))
        return outcomes


async def test_batch_stage_retries_only_the_items_that_asked_for_it(tmp_path: Path) -> None:
    stage = ScriptedBatch()
    targets = ["a", "bad", "flaky", "old"]
    records = [LinkRecord(Origin("l.jsonl", i + 1), "doc", t, "x") for i, t in enumerate(targets)]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    options = EngineOptions(concurrency=1, retry=FAST_RETRY)
    engine = Engine(StagedConnector([stage]), target, writer, options)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("link", iter(records))])
    writer.close()
    results = {r["line"]: r for r in read_results(tmp_path / "r.jsonl")}
    assert stage.calls == [targets, ["flaky"]]
    assert [results[i]["status"] for i in (1, 2, 3, 4)] == [
        "succeeded",
        "failed",
        "succeeded",
        "skipped",
    ]
    assert results[3]["attempts"] == 2 and results[3]["remote_id"] == "id-flaky"
    assert results[4]["reason"] == "unchanged"


async def test_a_stop_finishes_in_flight_items_and_reports_the_cut_ones(tmp_path: Path) -> None:
    settings = FakeSettings(latency_s=0.05)
    items = links(5_000)
    server = FakeServer(settings)
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, RateBudget(), NoAuth())
    engine = Engine(FakeConnector(), target, writer, EngineOptions(concurrency=8, grace_s=5))

    async def stop_soon() -> None:
        while engine.stats.total < 40:
            await anyio.sleep(0.01)
        engine.request_stop()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(stop_soon)
            await engine.run([("link", iter(items))])
    writer.close()
    results = list(read_results(tmp_path / "results.jsonl"))
    assert engine.interrupted
    assert 40 <= len(results) < 5_000
    assert len({r["line"] for r in results}) == len(results)
    assert all(r["status"] == "succeeded" for r in results)  # the grace period was enough
    # Every item read from the input got a result; none was read and dropped.
    assert len(results) == engine.read["link"]


async def test_grace_expiry_marks_in_flight_items_interrupted(tmp_path: Path) -> None:
    settings = FakeSettings(latency_s=30)  # nothing can finish within the grace period
    server = FakeServer(settings)
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, RateBudget(), NoAuth())
    engine = Engine(FakeConnector(), target, writer, EngineOptions(concurrency=4, grace_s=0.1))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(engine.run, [("link", iter(links(100)))])
            await anyio.sleep(0.1)
            engine.request_stop()
    writer.close()
    results = list(read_results(tmp_path / "results.jsonl"))
    assert results, "the in-flight items must be reported"
    assert len(results) == engine.read["link"]
    assert all(r["error"]["type"] == "Interrupted" for r in results)  # type: ignore[index]


async def test_results_file_is_flushed_as_items_finish(tmp_path: Path) -> None:
    settings = FakeSettings(latency_s=0.02)
    server = FakeServer(settings)
    path = tmp_path / "results.jsonl"
    writer = ResultWriter(path)
    target = Target("fake://test", server, RateBudget(), NoAuth())
    engine = Engine(FakeConnector(), target, writer, EngineOptions(concurrency=2))
    seen_mid_run = 0
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(engine.run, [("link", iter(links(200)))])
            while engine.stats.total < 50:
                await anyio.sleep(0.01)
            seen_mid_run = len(path.read_bytes().splitlines())
    writer.close()
    assert seen_mid_run >= 50
    assert all(orjson.loads(line) for line in path.read_bytes().splitlines())


@pytest.mark.parametrize("concurrency", [1, 32])
async def test_memory_streams_bound_how_far_reading_runs_ahead(
    tmp_path: Path, concurrency: int
) -> None:
    """Backpressure: the reader never gets more than the queues' room ahead of the results."""
    items = links(2_000)
    ahead: list[int] = []
    server = FakeServer(FakeSettings(latency_s=0.001))
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, RateBudget(), NoAuth())
    options = EngineOptions(concurrency=concurrency)
    engine = Engine(FakeConnector(), target, writer, options)

    def reading() -> object:
        for item in items:
            ahead.append(engine.read.get("link", 0) - engine.stats.total)
            yield item

    with anyio.fail_after(30):
        await engine.run([("link", reading())])  # type: ignore[list-item]
    writer.close()
    # The queues and the workers, plus one batch read ahead to record its intents at once.
    assert max(ahead) <= 3 * concurrency + 2 + min(FEED_BATCH, 2 * concurrency)


class RecordingBudget(RateBudget):
    """A RateBudget that remembers when it granted each request."""

    def __init__(self, windows: list[tuple[int, float]]) -> None:
        super().__init__(windows)
        self.grants: list[float] = []

    def _grant(self, now: float) -> None:
        self.grants.append(now)
        super()._grant(now)


async def test_retries_and_logins_are_charged_to_the_budget_and_no_window_is_exceeded(
    tmp_path: Path,
) -> None:
    windows = [(20, 0.25), (50, 1.0)]
    budget = RecordingBudget(windows)
    server = FakeServer(FakeSettings(transient_rate=0.3, seed=5, retry_after_s=None))
    from bulksync.connectors.fake._fake import FakeTokenSource
    from bulksync.engine.auth import SessionAuth

    server.settings.token_lifetime_s = 0.5  # logins every few hundred milliseconds
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, budget, SessionAuth(FakeTokenSource()))
    engine = Engine(FakeConnector(), target, writer, EngineOptions(concurrency=8, retry=FAST_RETRY))
    with anyio.fail_after(30):
        await engine.run([("link", iter(links(120)))])
    writer.close()
    assert engine.stats.succeeded == 120
    assert engine.stats.retries > 10 and server.counters.logins >= 2
    # Every request the server saw, retries and logins included, went through the budget.
    assert len(budget.grants) == server.counters.requests
    for limit, period in windows:
        for i, start in enumerate(budget.grants):
            in_window = sum(1 for t in budget.grants[i:] if t < start + period)
            assert in_window <= limit, (limit, period, start)


async def test_links_to_a_failed_asset_are_skipped_without_a_request(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.png").write_bytes(b"png")
    assets = [
        AssetRecord(Origin("assets.jsonl", 1), "ok", file=media / "ok.png"),
        AssetRecord(Origin("assets.jsonl", 2), "gone", file=media / "gone.png"),
    ]
    link_records = [
        LinkRecord(Origin("links.jsonl", 1), "doc-1", "ok", "t"),
        LinkRecord(Origin("links.jsonl", 2), "doc-1", "gone", "t"),
        LinkRecord(Origin("links.jsonl", 3), "gone", "doc-2", "t"),
    ]
    server = FakeServer()
    writer = ResultWriter(tmp_path / "results.jsonl")
    target = Target("fake://test", server, RateBudget(), NoAuth())
    engine = Engine(FakeConnector(), target, writer)
    with anyio.fail_after(10):
        await engine.run([("asset", iter(assets)), ("link", iter(link_records))])
    writer.close()
    results = {(r["kind"], r["line"]): r for r in read_results(tmp_path / "results.jsonl")}
    assert results[("asset", 2)]["status"] == "failed"
    assert results[("link", 1)]["status"] == "succeeded"
    for line in (2, 3):
        skipped = results[("link", line)]
        assert skipped["status"] == "skipped"
        assert "asset 'gone'" in str(skipped["reason"]) and "line 2" in str(skipped["reason"])
        assert skipped["attempts"] == 0
    links_sent = [k for k in server.counters.applied if "->" in k]
    assert links_sent == ["doc-1->ok:t"]


class GroupedStage(BaseStage):
    """Groups links by their origin; the target 'bad' fails any request it is part of."""

    name = "link"
    batch_size = 3
    grouped = True

    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    def group_key(self, job: Job) -> object:
        return job.record.from_  # type: ignore[union-attr]

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        await anyio.lowlevel.checkpoint()
        self.requests.append([f"{j.record.from_}>{j.record.to}" for j in jobs])  # type: ignore[union-attr]
        if any(j.record.to == "bad" for j in jobs):  # type: ignore[union-attr]
            from bulksync.spi._connector import RequestFailed
            from bulksync.spi._errors import ErrorClass

            raise RequestFailed(ErrorInfo("HTTP400", "unknown target", 400), ErrorClass.ITEM)
        return [Done() for _ in jobs]


async def test_grouped_stage_sends_one_request_per_group_and_isolates_a_bad_item(
    tmp_path: Path,
) -> None:
    stage = GroupedStage()
    pairs = [("A", "1"), ("B", "1"), ("A", "2"), ("C", "1"), ("B", "2"), ("A", "3"), ("A", "4")]
    pairs += [("D", "1"), ("D", "bad"), ("D", "3")]
    records = [LinkRecord(Origin("l.jsonl", i + 1), f, t, "x") for i, (f, t) in enumerate(pairs)]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    options = EngineOptions(concurrency=2, retry=FAST_RETRY)
    engine = Engine(StagedConnector([stage]), target, writer, options)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("link", iter(records))])
    writer.close()
    results = {r["line"]: r for r in read_results(tmp_path / "r.jsonl")}
    groups = [r for r in stage.requests if "bad" not in str(r) and not r[0].startswith("D")]
    assert sorted(map(sorted, groups)) == [["A>1", "A>2", "A>3"], ["A>4"], ["B>1", "B>2"], ["C>1"]]
    # The D group failed as a whole, then was halved until the bad link stood alone.
    d_requests = [r for r in stage.requests if r[0].startswith("D")]
    assert d_requests[0] == ["D>1", "D>bad", "D>3"] and ["D>bad"] in d_requests
    assert results[9]["status"] == "failed" and results[9]["error"]["http_status"] == 400  # type: ignore[index]
    assert all(results[i]["status"] == "succeeded" for i in results if i != 9)
    assert len(results) == len(pairs)


class TimingOutBatch(BaseStage):
    """Times out on any batch of more than one item: the pool must halve it, after a wait."""

    name = "link"
    batch_size = 4

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        await anyio.lowlevel.checkpoint()
        self.sizes.append(len(jobs))
        if len(jobs) > 1:
            from bulksync.spi._errors import TransportError

            raise TransportError("read timed out", maybe_applied=True, timeout=True)
        return [Done()]


class RecordingRetry(RetryPolicy):
    def __init__(self) -> None:
        super().__init__(max_attempts=4, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)
        self.delays: list[int] = []

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        self.delays.append(attempt)
        return super().delay(attempt, retry_after)


async def test_a_batch_that_timed_out_is_halved_after_a_backoff(tmp_path: Path) -> None:
    stage = TimingOutBatch()
    records = [LinkRecord(Origin("l.jsonl", i + 1), "a", f"t{i}", "x") for i in range(4)]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    retry = RecordingRetry()
    options = EngineOptions(concurrency=1, retry=retry, batch_linger_s=0.5)
    engine = Engine(StagedConnector([stage]), target, writer, options)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("link", iter(records))])
    writer.close()
    assert stage.sizes == [4, 2, 1, 1, 2, 1, 1]
    # One backoff before each halving (the 4, then each 2), none before a success.
    assert retry.delays == [1, 2, 2]
    # Retries count requests sent again, not items: every request after the first 4 carried
    # items already sent, 6 of them (it was 4 + 2 + 2 = 8 items when items were counted).
    assert engine.stats.succeeded == 4 and engine.stats.retries == len(stage.sizes) - 1 == 6


class BrokenStage(BaseStage):
    name = "link"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        if jobs[0].record.to == "boom":  # type: ignore[union-attr]
            raise KeyError("id")  # an answer the connector could not read
        return [Done()]


async def test_an_unexpected_connector_error_fails_that_item_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    records = [
        LinkRecord(Origin("l.jsonl", i + 1), "a", t, "x")
        for i, t in enumerate(["ok", "boom", "ok2"])
    ]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    engine = Engine(StagedConnector([BrokenStage()]), target, writer)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("link", iter(records))])
    writer.close()
    results = {r["line"]: r for r in read_results(tmp_path / "r.jsonl")}
    assert results[2]["status"] == "failed"
    assert (
        results[2]["error"]["type"] == "InternalError"
        and "KeyError" in results[2]["error"]["message"]
    )  # type: ignore[index]
    assert results[1]["status"] == results[3]["status"] == "succeeded"


async def test_grouping_holds_a_bounded_number_of_jobs_for_unsorted_input() -> None:
    from bulksync.engine._stages import group_jobs

    class ByOrigin(BaseStage):
        name = "link"
        batch_size = 50
        grouped = True

        def group_key(self, job: Job) -> object:
            return job.record.from_  # type: ignore[union-attr]

    jobs = [Job(LinkRecord(Origin("l", i + 1), f"doc-{i % 7}", f"t{i}", "x")) for i in range(300)]
    send_in, receive_in = anyio.create_memory_object_stream[Job](400)
    send_out, receive_out = anyio.create_memory_object_stream[list[Job]](400)
    for job in jobs:
        send_in.send_nowait(job)
    send_in.close()
    with anyio.fail_after(5):
        await group_jobs(ByOrigin(), receive_in, send_out, max_open_groups=1000, max_held_jobs=20)
    groups = [group async for group in receive_out]
    assert sorted(id(j) for g in groups for j in g) == sorted(id(j) for j in jobs)
    assert all(len({j.record.from_ for j in g}) == 1 for g in groups)  # type: ignore[union-attr]
    # Never more than 20 held at once: no group can have grown past that.
    assert max(len(g) for g in groups) <= 20 and len(groups) > 7
