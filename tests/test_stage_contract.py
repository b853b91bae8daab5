"""The typed engine-stage contract: what the engine tells a stage on ``Job``, what a stage
returns in ``Done``, the stage's own step data, and per-group serialisation by the engine."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from bulksync.connectors.fake._fake import FakeServer
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine._serial import SerialGroups
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import BaseConnector, BaseStage, Client, Done, Job, Outcome, Stage
from bulksync.spi._records import AssetRecord, LinkRecord, Origin, Record
from bulksync.store.results import ResultWriter, read_results
from bulksync.store.state import StateStore

FAST_RETRY = RetryPolicy(max_attempts=5, base_s=0.0005, cap_s=0.002, rng=random.Random(3))


class OneStage(BaseConnector):
    name = "one"

    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    def stages(self, kind: str) -> list[Stage]:
        return [self._stage]

    def delete_stages(self, kind: str) -> list[Stage]:
        return []


async def run(
    tmp_path: Path, stage: Stage, records: Sequence[Record], state: StateStore | None = None
) -> list[dict[str, object]]:
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    options = EngineOptions(concurrency=4, retry=FAST_RETRY, state=state)
    engine = Engine(OneStage(stage), target, writer, options)  # type: ignore[arg-type]
    with anyio.fail_after(20):
        await engine.run([(records[0].kind, iter(records))])
    writer.close()
    return list(read_results(tmp_path / "r.jsonl"))


@dataclass
class Tries:
    count: int = 0
    seen: list[int] = field(default_factory=list)


def test_step_data_is_made_once_per_job_and_kind() -> None:
    job = Job(AssetRecord(Origin("a", 1), "a"))
    first = job.step(Tries)
    first.count += 1
    assert job.step(Tries) is first and job.step(Tries).count == 1
    assert Job(job.record).step(Tries).count == 0  # another job starts afresh
    assert (job.digest, job.exists, job.file_id, job.absent_on_target) == (None, None, None, False)


class FlakyOnce(BaseStage):
    """Fails each item's first attempt, retryably; remembers its attempts in step data."""

    name = "create"

    def __init__(self) -> None:
        self.attempts_seen: list[int] = []

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        from bulksync.spi._connector import Failed
        from bulksync.spi._errors import ErrorInfo

        tries = jobs[0].step(Tries)
        tries.count += 1
        self.attempts_seen.append(tries.count)
        if tries.count == 1:
            return [Failed(ErrorInfo("HTTP503", "busy", 503), retryable=True)]
        return [Done(remote_id="R", action="created", extra={"note": "kept"})]


async def test_step_data_survives_a_retry_and_done_action_reaches_result_and_state(
    tmp_path: Path,
) -> None:
    stage = FlakyOnce()
    state = StateStore(tmp_path / "state.sqlite3", "t")
    try:
        [line] = await run(tmp_path, stage, [AssetRecord(Origin("a.jsonl", 1), "a")], state)
        state.flush()
        assert stage.attempts_seen == [1, 2]  # the retry found the first attempt's data
        assert line["status"] == "succeeded" and line["attempts"] == 2
        # The result line's fields and the state's text, as when the action was in `extra`.
        assert line["action"] == "created" and line["note"] == "kept"
        assert state.last_result("asset", "a") == "succeeded (created)"
    finally:
        state.close()


class PerGroup(BaseStage):
    """A grouped stage of one job per batch that counts how many batches of each group are
    in flight at once."""

    name = "link"
    grouped = True

    def __init__(self, serial: bool) -> None:
        self.serial_groups = serial
        self.inside: Counter[Hashable] = Counter()
        self.most: Counter[Hashable] = Counter()

    def group_key(self, job: Job) -> Hashable:
        record = job.record
        assert isinstance(record, LinkRecord)
        return record.from_

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        key = self.group_key(jobs[0])
        self.inside[key] += 1
        self.most[key] = max(self.most[key], self.inside[key])
        await anyio.sleep(0.002)  # long enough for another worker to take the next batch
        self.inside[key] -= 1
        return [Done() for _ in jobs]


@pytest.mark.parametrize("serial", [True, False])
async def test_the_engine_runs_one_batch_per_group_at_a_time_when_a_stage_asks(
    tmp_path: Path, serial: bool
) -> None:
    stage = PerGroup(serial)
    records = [
        LinkRecord(Origin("l.jsonl", i + 1), f"doc-{i % 2}", f"t{i}", "x") for i in range(24)
    ]
    lines = await run(tmp_path, stage, records)
    assert len(lines) == 24 and all(x["status"] == "succeeded" for x in lines)
    if serial:
        assert set(stage.most.values()) == {1}
    else:  # the same pool without the flag overlaps batches of a group: the check can fail
        assert max(stage.most.values()) > 1


async def test_serial_groups_keep_no_lock_after_a_failed_attempt() -> None:
    class Boom(PerGroup):
        async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
            raise RuntimeError("connector bug")

    serial = SerialGroups(Boom(serial=True))
    job = Job(LinkRecord(Origin("l.jsonl", 1), "doc", "t", "x"))
    with pytest.raises(RuntimeError):
        await serial.run([job], client=None)  # type: ignore[arg-type]
    assert serial.locks is not None and len(serial.locks) == 0
