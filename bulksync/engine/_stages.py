"""A stage's pool of workers: batching, grouping, and the per-item retry loop.

The engine wires pools together with bounded memory streams; each pool takes jobs (or, for
grouped stages, whole groups), runs the connector's stage on them, retries what is retryable
and hands every job either to the next stage or to the engine's result writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulksync.engine._serial import SerialGroups
from bulksync.engine.client import EngineClient, count_sent
from bulksync.engine.retry import Retrier, RetryPolicy
from bulksync.spi._connector import Done, Failed, Job, Outcome, RequestFailed, Skipped, Stage
from bulksync.spi._errors import (
    AuthError,
    BulksyncError,
    ErrorClass,
    ErrorInfo,
    FatalTargetError,
    LocalFileError,
    QuotaExhausted,
    TransportError,
)
from bulksync.spi._records import Kind
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import RunStats

log = logging.getLogger("bulksync.engine._engine")
batch_log = logging.getLogger("bulksync.batch")


@dataclass(slots=True)
class StageCounters:
    """Live figures for the progress display and the timeline.

    Every item of the stage's kind is counted once here: ``done`` and ``failed`` at this stage,
    ``skipped`` when its result came without it reaching this stage (unchanged, a bad line,
    failed at an earlier stage, interrupted), ``not_applicable`` when the stage had nothing to
    do for it (an asset with no file at the upload): that one is outside the stage's total.
    """

    kind: Kind
    name: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_applicable: int = 0

    @property
    def finished(self) -> int:
        """Items of the stage's own total that are past it, whatever their outcome."""
        return self.done + self.failed + self.skipped

    @property
    def label(self) -> str:
        """What the displays call the stage: "assets: upload", "links: create".

        A stage named after its kind (Quable's "link", OCAPI's "asset") is the one that
        creates it; its name stays as it is where it is configured (stage_concurrency)."""
        verb = "create" if self.name == self.kind else self.name
        return f"{self.kind}s: {verb}"


class ItemSink(Protocol):
    """Where a job leaves the pipeline: the engine writes its one result."""

    def succeed(self, job: Job) -> None: ...

    def end(self, job: Job, outcome: Failed | Skipped, step: str) -> None: ...

    async def intend(self, jobs: Sequence[Job]) -> None:
        """Make the jobs' pushes durable before a request of theirs is sent (crash safety)."""
        ...


class StagePool:
    def __init__(
        self,
        stage: Stage,
        counters: StageCounters,
        client: EngineClient,
        retry: RetryPolicy,
        stats: RunStats,
        sink: ItemSink,
        linger_s: float,
    ) -> None:
        self.stage = stage
        self._serial = SerialGroups(stage)  # one batch per group at a time, if it asks
        self.counters = counters
        self._client = client
        # The run's one retry loop: its waits, its limits and its count of retries.
        self._retrier = Retrier(retry, stats)
        self._sink = sink
        self._linger_s = linger_s

    async def work(
        self,
        receive: MemoryObjectReceiveStream[Job],
        downstream: MemoryObjectSendStream[Job] | None,
    ) -> None:
        """One worker: take batches of jobs until the stream ends."""
        async with receive:
            try:
                while batch := await take_batch(receive, self.stage.batch_size, self._linger_s):
                    await self.process(batch, downstream)
            finally:
                if downstream is not None:
                    downstream.close()

    async def work_groups(
        self,
        receive: MemoryObjectReceiveStream[list[Job]],
        downstream: MemoryObjectSendStream[Job] | None,
    ) -> None:
        """One worker of a grouped stage: each batch is one group made by :func:`group_jobs`."""
        async with receive:
            try:
                async for group in receive:
                    await self.process(group, downstream)
            finally:
                if downstream is not None:
                    downstream.close()

    async def process(
        self, batch: list[Job], downstream: MemoryObjectSendStream[Job] | None
    ) -> None:
        pending: list[Job] = []
        for job in batch:
            job.stage = self.stage.name
            try:
                applies = self.stage.applies(job)
            except Exception as exc:
                self._sink.end(job, _internal(exc, job), self.stage.name)
                continue
            if applies:
                pending.append(job)
            else:  # nothing to do here (an asset with no file to upload)
                await self._advance(job, None, downstream, applied=False)
        await self._sink.intend(pending)
        while pending:
            outcomes = await self._attempt(pending)
            if len(pending) > 1 and all(isinstance(o, Failed) and o.isolate for o in outcomes):
                # One bad item may have failed the whole batch: halve it until it is found.
                first = outcomes[0]
                assert isinstance(first, Failed)
                middle = len(pending) // 2
                wait = 0.0
                if first.retryable:
                    # A timeout: the server may be as overloaded as the batch was big, so the
                    # halves wait like any retry rather than hitting it again at once.
                    wait = self._retrier.policy.delay(pending[0].stage_attempts)
                self._halving(pending, middle, first, wait)
                if first.retryable:
                    await self._retrier.sleep(wait)
                await self.process(pending[:middle], downstream)
                await self.process(pending[middle:], downstream)
                return
            retry: list[Job] = []
            waits: list[float] = []
            causes: dict[str, None] = {}  # the failures met, in order, each once
            for job, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Failed) and outcome.retryable:
                    started = job.started_at or time.monotonic()
                    delay = self._retrier.wait_for(job.stage_attempts, started, outcome.retry_after)
                    if delay is not None:
                        retry.append(job)
                        waits.append(delay)
                        causes[_cause(outcome)] = None
                        continue
                    outcome = _gave_up(outcome, job.stage_attempts, job.maybe_applied)
                if isinstance(outcome, Done):
                    await self._advance(job, outcome, downstream)
                else:
                    # The sink counts the item here and at every later stage, once each.
                    self._sink.end(job, outcome, self.stage.name)
            if retry:
                what = f"{self._what()} ({_items(len(retry))})"
                await self._retrier.pause(max(waits), what, "; ".join(causes), len(retry))
            pending = retry

    def _what(self) -> str:
        return self.counters.label  # as the displays name the stage

    def _halving(self, pending: list[Job], middle: int, first: Failed, wait: float) -> None:
        """Log the halving, and count each half as one request sent again: both carry items
        the target was already sent."""
        what, cause = self._what(), _cause(first)
        batch_log.info(
            "halving a batch of %d at %s to find the item that failed it: %s",
            len(pending),
            what,
            cause,
            extra={"event": "halve", "stage": what, "items": len(pending), "cause": cause},
        )
        for n, half in enumerate((middle, len(pending) - middle), 1):
            self._retrier.resent(f"{what} (half {n} of {_items(len(pending))})", cause, wait, half)

    async def _attempt(self, jobs: list[Job]) -> Sequence[Outcome]:
        if _exhausted(self._client) is not None:
            return [quota_failed(job) for job in jobs]  # nothing more goes out
        now = time.monotonic()
        for job in jobs:
            job.attempts += 1
            job.stage_attempts += 1
            job.started_at = job.started_at or now
        sent = [0]
        try:
            with count_sent(sent):
                outcomes = await self._serial.run(jobs, self._client)
        except QuotaExhausted:
            for job in jobs:
                if sent[0]:
                    # This attempt's earlier requests may have written: verify next time.
                    job.maybe_applied = True
                else:  # nothing of this attempt went out
                    job.attempts -= 1
                    job.stage_attempts -= 1
            return [quota_failed(job) for job in jobs]
        except RequestFailed as exc:
            if exc.error_class is ErrorClass.FATAL:
                raise FatalTargetError(exc.error.message) from None
            if exc.error_class is ErrorClass.AUTH:
                raise AuthError(exc.error.message) from None
            retryable = exc.error_class is ErrorClass.RETRYABLE
            failed = Failed(
                exc.error,
                retryable,
                exc.retry_after,
                isolate=not retryable,
                maybe_applied=exc.maybe_applied,
            )
            outcomes = [failed] * len(jobs)
        except LocalFileError as exc:
            # The local file, not the target: this item alone, retried only if it changed.
            return [
                Failed(ErrorInfo("LocalFile", f"{job.record.origin}: {exc}"), exc.retryable)
                for job in jobs
            ]
        except TransportError as exc:
            kind = "Timeout" if exc.timeout else "ConnectionError"
            for job in jobs:
                job.maybe_applied = job.maybe_applied or exc.maybe_applied
            # A batch that timed out may simply be too big for the server: halve it.
            split = exc.timeout and len(jobs) > 1
            return [Failed(ErrorInfo(kind, str(exc)), retryable=True, isolate=split)] * len(jobs)
        except BulksyncError:
            raise  # auth and fatal target errors end the run
        except Exception as exc:
            # A connector bug (answers it cannot read are classified failures, read through
            # bulksync.spi._answers): fail these items, keep the run.
            log.exception("stage %s failed unexpectedly", self.stage.name)
            return [_internal(exc, job) for job in jobs]
        if len(outcomes) != len(jobs):
            raise FatalTargetError(
                f"stage {self.stage.name} returned {len(outcomes)} outcomes for {len(jobs)} items"
            )
        for job, outcome in zip(jobs, outcomes, strict=True):
            # Sticky until the stage succeeds: a write that may have landed can still land
            # late, so every later attempt verifies, not only the next one.
            if isinstance(outcome, Failed) and outcome.maybe_applied:
                job.maybe_applied = True
        return outcomes

    async def _advance(
        self,
        job: Job,
        outcome: Done | None,
        downstream: MemoryObjectSendStream[Job] | None,
        applied: bool = True,
    ) -> None:
        if applied:
            self.counters.done += 1
        else:
            self.counters.not_applicable += 1
        job.passed += 1
        if outcome is not None:
            job.extra.update(outcome.extra)
            if outcome.action is not None:
                job.action = outcome.action
            if outcome.remote_id is not None:
                job.remote_id = outcome.remote_id
        job.stage_attempts = 0
        job.maybe_applied = job.resumed
        if downstream is None:
            self._sink.succeed(job)
        else:
            # What this stage made (an upload's file id) is kept before the job waits for the
            # next stage: a crash in between then reuses it rather than orphaning it.
            await self._sink.intend([job])
            await downstream.send(job)


async def take_batch(
    receive: MemoryObjectReceiveStream[Job], size: int, linger_s: float
) -> list[Job]:
    """Wait for one job, then fill the batch for at most ``linger_s`` more.

    The linger lets a batch stage send full chunks while the reader is still producing,
    without holding a lone last item back for long. It polls rather than waiting in a
    cancellable ``receive()``: a deadline landing just as an item is handed over would
    drop that item.
    """
    try:
        # A job waiting already is taken without a trip through the event loop (receive()
        # always yields once first): one hop fewer per item.
        batch = [receive.receive_nowait()]
    except anyio.WouldBlock:
        try:
            batch = [await receive.receive()]
        except anyio.EndOfStream:
            return []
    except anyio.EndOfStream:
        return []
    if size == 1:
        return batch
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


async def group_jobs(
    stage: Stage,
    receive: MemoryObjectReceiveStream[Job],
    send: MemoryObjectSendStream[list[Job]],
    max_open_groups: int,
    max_held_jobs: int = 10_000,
) -> None:
    """Gather jobs by the stage's group key into batches of at most ``stage.batch_size``.

    A group is sent when it is full, when the input ends, or when too many groups or jobs are
    held (the oldest group goes first), so memory stays bounded even for unsorted input.
    """
    groups: dict[Hashable, list[Job]] = {}
    held = 0
    async with receive, send:
        async for job in receive:
            try:
                key = stage.group_key(job)
            except Exception:
                # A group of its own: the stage's run will fail it with its own error.
                log.exception("stage %s could not group an item", stage.name)
                key = ("ungroupable", id(job))
            group = groups.setdefault(key, [])
            group.append(job)
            held += 1
            if len(group) >= stage.batch_size:
                held -= len(group)
                await send.send(groups.pop(key))
            elif len(groups) > max_open_groups or held > max_held_jobs:
                oldest = groups.pop(next(iter(groups)))
                held -= len(oldest)
                await send.send(oldest)
        for group in groups.values():
            await send.send(group)


def _exhausted(client: EngineClient) -> QuotaExhausted | None:
    # A client standing in for the engine's (a test's scripted one) has no budget to use up.
    target = getattr(client, "target", None)
    return None if target is None else target.budget.exhausted


def quota_failed(job: Job) -> Failed:
    """The quota is used up: "not attempted" for an item that sent nothing yet, "not
    finished" for one part-way through (the next run resumes it either way)."""
    done = "not finished" if job.attempts else "not attempted"
    return Failed(ErrorInfo("QuotaExhausted", f"{done}: quota exhausted"))


def _cause(outcome: Failed) -> str:
    """A failure in a log line: its type and a short excerpt of its message."""
    return f"{outcome.error.type}: {redacted_excerpt(outcome.error.message, 160)}"


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _internal(exc: Exception, job: Job) -> Failed:
    # The input line's file:line, as every other error a user can act on names it.
    return Failed(ErrorInfo("InternalError", f"{job.record.origin}: {type(exc).__name__}: {exc}"))


def _gave_up(outcome: Failed, attempts: int, maybe_applied: bool) -> Failed:
    """The last failure, final; maybe applied when any attempt's write may have landed."""
    error = ErrorInfo(
        outcome.error.type,
        f"gave up after {attempts} attempts: {outcome.error.message}",
        outcome.error.http_status,
    )
    return Failed(error, retryable=False, extra=outcome.extra, maybe_applied=maybe_applied)
