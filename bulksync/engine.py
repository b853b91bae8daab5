"""The engine: records flow from streaming readers through pools of stage workers to results.

Each stage is a pool of workers reading a bounded memory stream, so memory stays flat whatever
the input size and a slow stage pushes back on the one before it. Every item leaves the engine
through exactly one call to :meth:`Engine._finish`, which writes its one result line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .client import EngineClient, Target
from .connector import Connector, Done, Failed, Job, Outcome, RequestFailed, Skipped, Stage
from .errors import (
    AuthError,
    ErrorClass,
    FatalTargetError,
    TransportError,
    first_bulksync_error,
)
from .records import BadRecord, Kind, Record
from .results import ErrorInfo, ItemResult, ResultWriter, RunStats, Status
from .retry import RetryPolicy

log = logging.getLogger("bulksync.engine")

Input = tuple[Kind, Iterable[Record | BadRecord]]


@dataclass(slots=True)
class EngineOptions:
    concurrency: int = 16  # workers per stage unless the stage has its own figure
    stage_concurrency: Mapping[str, int] = field(default_factory=dict)
    queue_size: int | None = None  # items buffered between stages; default 2 x workers
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    grace_s: float = 10.0  # how long in-flight items may finish after a stop
    batch_linger_s: float = 0.05  # how long a batch stage waits to fill a batch


@dataclass(slots=True)
class StageCounters:
    """Live figures for the progress display."""

    kind: Kind
    name: str
    done: int = 0
    failed: int = 0


class Engine:
    def __init__(
        self,
        connector: Connector,
        target: Target,
        writer: ResultWriter,
        options: EngineOptions | None = None,
    ) -> None:
        self.connector = connector
        self.options = options or EngineOptions()
        self.stats = RunStats()
        self.client = EngineClient(target, self.stats, self.options.retry)
        self.writer = writer
        self.counters: list[StageCounters] = []
        self.read: dict[Kind, int] = {}
        self.stop = anyio.Event()
        self.interrupted = False
        self._live: set[Job] = set()  # read from the input, result not yet written
        self._pipeline = anyio.CancelScope()

    async def run(self, inputs: Sequence[Input]) -> RunStats:
        """Run every input to the end, or until :attr:`stop` is set and the grace period ends."""
        flows = [(kind, records, list(self.connector.stages(kind))) for kind, records in inputs]
        pipeline = self._pipeline
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._cancel_after_grace, pipeline)
                with pipeline:
                    async with anyio.create_task_group() as group:
                        for kind, records, stages in flows:
                            self._start_flow(group, kind, records, stages)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group_error:
            raise first_bulksync_error(group_error) from None
        finally:
            # Every item read from the input gets its result, even one cut off by a stop.
            for job in list(self._live):
                error = ErrorInfo("Interrupted", "the run stopped before this item finished")
                self._finish(job, "failed", error=error, step=job.stage)
        self.interrupted = self.stop.is_set()
        return self.stats

    def request_stop(self) -> None:
        """Stop taking new items; in-flight ones get ``grace_s`` to finish."""
        self.stop.set()

    def cancel_now(self) -> None:
        """Stop at once: in-flight items are reported as interrupted."""
        self.stop.set()
        self._pipeline.cancel()

    async def _cancel_after_grace(self, pipeline: anyio.CancelScope) -> None:
        await self.stop.wait()
        await anyio.sleep(self.options.grace_s)
        pipeline.cancel()

    def _start_flow(
        self,
        group: anyio.abc.TaskGroup,
        kind: Kind,
        records: Iterable[Record | BadRecord],
        stages: Sequence[Stage],
    ) -> None:
        size = self.options.queue_size
        streams = []
        for stage in stages:
            workers = self.options.stage_concurrency.get(stage.name, self.options.concurrency)
            send, receive = anyio.create_memory_object_stream[Job](
                size or 2 * workers * stage.batch_size
            )
            streams.append((stage, workers, send, receive))
        self.read[kind] = 0
        group.start_soon(self._feed, kind, records, streams[0][2])
        for index, (stage, workers, _send, receive) in enumerate(streams):
            counters = StageCounters(kind, stage.name)
            self.counters.append(counters)
            downstream = streams[index + 1][2] if index + 1 < len(streams) else None
            for _ in range(workers):
                group.start_soon(
                    self._work,
                    stage,
                    counters,
                    receive.clone(),
                    downstream.clone() if downstream else None,
                )
            receive.close()
            if downstream is not None:
                downstream.close()

    async def _feed(
        self, kind: Kind, records: Iterable[Record | BadRecord], send: MemoryObjectSendStream[Job]
    ) -> None:
        async with send:
            for record in records:
                if self.stop.is_set():
                    return
                self.read[kind] += 1
                if isinstance(record, BadRecord):
                    self._finish_bad(record)
                    await anyio.lowlevel.checkpoint()
                    continue
                job = Job(record)
                self._live.add(job)
                await send.send(job)

    async def _work(
        self,
        stage: Stage,
        counters: StageCounters,
        receive: MemoryObjectReceiveStream[Job],
        downstream: MemoryObjectSendStream[Job] | None,
    ) -> None:
        async with receive:
            try:
                linger = self.options.batch_linger_s
                while batch := await _take_batch(receive, stage.batch_size, linger):
                    await self._process(stage, counters, batch, downstream)
            finally:
                if downstream is not None:
                    downstream.close()

    async def _process(
        self,
        stage: Stage,
        counters: StageCounters,
        batch: list[Job],
        downstream: MemoryObjectSendStream[Job] | None,
    ) -> None:
        for job in batch:
            job.stage = stage.name
        pending = [job for job in batch if stage.applies(job)]
        for job in batch:
            if job not in pending:  # nothing to do here (an asset with no file to upload)
                counters.done += 1
                await self._advance(job, None, downstream)
        while pending:
            outcomes = await self._attempt(stage, pending)
            retry: list[Job] = []
            waits: list[float] = []
            for job, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Failed) and outcome.retryable:
                    delay = self.options.retry.delay(job.stage_attempts, outcome.retry_after)
                    elapsed = time.monotonic() - (job.started_at or time.monotonic())
                    if self.options.retry.allows(job.stage_attempts, elapsed, delay):
                        job.last_error = outcome.error
                        retry.append(job)
                        waits.append(delay)
                        continue
                    outcome = _gave_up(outcome, job.stage_attempts)
                if isinstance(outcome, Done):
                    counters.done += 1
                    await self._advance(job, outcome, downstream)
                else:
                    counters.failed += isinstance(outcome, Failed)
                    self._finish_stage_end(job, outcome, stage)
            if retry:
                self.stats.retries += len(retry)
                await anyio.sleep(max(waits))
            pending = retry

    async def _attempt(self, stage: Stage, jobs: list[Job]) -> Sequence[Outcome]:
        now = time.monotonic()
        for job in jobs:
            job.attempts += 1
            job.stage_attempts += 1
            job.started_at = job.started_at or now
        try:
            outcomes = await stage.run(jobs, self.client)
        except RequestFailed as exc:
            if exc.error_class is ErrorClass.FATAL:
                raise FatalTargetError(exc.error.message) from None
            if exc.error_class is ErrorClass.AUTH:
                raise AuthError(exc.error.message) from None
            retryable = exc.error_class is ErrorClass.RETRYABLE
            return [Failed(exc.error, retryable, exc.retry_after)] * len(jobs)
        except TransportError as exc:
            kind = "Timeout" if exc.timeout else "ConnectionError"
            for job in jobs:
                job.maybe_applied = job.maybe_applied or exc.maybe_applied
            return [Failed(ErrorInfo(kind, str(exc)), retryable=True)] * len(jobs)
        if len(outcomes) != len(jobs):
            raise FatalTargetError(
                f"stage {stage.name} returned {len(outcomes)} outcomes for {len(jobs)} items"
            )
        return outcomes

    async def _advance(
        self,
        job: Job,
        outcome: Done | None,
        downstream: MemoryObjectSendStream[Job] | None,
    ) -> None:
        if outcome is not None:
            job.state.setdefault("_extra", {}).update(outcome.extra)
            if outcome.remote_id is not None:
                job.state["_remote_id"] = outcome.remote_id
        job.stage_attempts = 0
        job.last_error = None
        job.maybe_applied = False
        if downstream is None:
            self._finish(job, "succeeded", remote_id=job.state.get("_remote_id"))
        else:
            await downstream.send(job)

    def _finish_stage_end(self, job: Job, outcome: Failed | Skipped, stage: Stage) -> None:
        if isinstance(outcome, Skipped):
            self._finish(job, "skipped", reason=outcome.reason)
            return
        job.state.setdefault("_extra", {}).update(outcome.extra)
        self._finish(job, "failed", error=outcome.error, step=stage.name)

    def _finish(
        self,
        job: Job,
        status: Status,
        *,
        remote_id: str | None = None,
        error: ErrorInfo | None = None,
        step: str | None = None,
        reason: str | None = None,
    ) -> None:
        record = job.record
        result = ItemResult(
            kind=record.kind,
            origin=record.origin,
            key=record.key,
            status=status,
            remote_id=remote_id,
            error=error,
            attempts=job.attempts,
            step=step if record.kind == "asset" and status == "failed" else None,
            reason=reason,
            extra=job.state.get("_extra", {}),
        )
        self._live.discard(job)
        self._write(result)

    def _finish_bad(self, record: BadRecord) -> None:
        error = ErrorInfo("InvalidInput", f"{record.origin}: {record.reason}")
        self._write(ItemResult(record.kind, record.origin, record.key, "failed", error=error))

    def _write(self, result: ItemResult) -> None:
        self.writer.write(result)
        self.stats.count(result)


async def _take_batch(
    receive: MemoryObjectReceiveStream[Job], size: int, linger_s: float
) -> list[Job]:
    """Wait for one job, then fill the batch for at most ``linger_s`` more.

    The linger lets a batch stage send full chunks while the reader is still producing,
    without holding a lone last item back for long. It polls rather than waiting in a
    cancellable ``receive()``: a deadline landing just as an item is handed over would
    drop that item.
    """
    try:
        batch = [await receive.receive()]
    except anyio.EndOfStream:
        return []
    deadline = anyio.current_time() + linger_s
    while len(batch) < size:
        try:
            batch.append(receive.receive_nowait())
        except anyio.EndOfStream:
            break
        except anyio.WouldBlock:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            await anyio.sleep(min(remaining, 0.005))
    return batch


def _gave_up(outcome: Failed, attempts: int) -> Failed:
    error = ErrorInfo(
        outcome.error.type,
        f"gave up after {attempts} attempts: {outcome.error.message}",
        outcome.error.http_status,
    )
    return Failed(error, retryable=False, extra=outcome.extra)
