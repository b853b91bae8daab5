"""The engine: records flow from streaming readers through pools of stage workers to results.

Each stage is a pool of workers reading a bounded memory stream, so memory stays flat whatever
the input size and a slow stage pushes back on the one before it. Inputs run one after the
other in the order given (assets before the links that may point at them). Every item read
leaves the engine through exactly one result line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulksync.engine._breaker import DEFAULT_UNREACHABLE_AFTER, CircuitBreaker, no_route_of
from bulksync.engine._identities import IdentityIndex
from bulksync.engine._resume import ResumeGate, record_intents
from bulksync.engine._stages import ItemSink, StageCounters, StagePool, group_jobs, quota_failed
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import (
    Connector,
    Failed,
    Job,
    Skipped,
    Stage,
)
from bulksync.spi._errors import ErrorInfo, QuotaExhausted, first_bulksync_error
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Origin, Record
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.remote import RemoteIndex
from bulksync.store.results import ItemResult, ResultSink, RunStats, Status
from bulksync.store.state import StateStore
from bulksync.store.verdict import Judge

log = logging.getLogger("bulksync.engine._engine")

Input = tuple[Kind, Iterable[Record | BadRecord]]
# At most this many jobs are read ahead and recorded in one transaction before the first of
# them is sent (fewer when the first stage's queue is smaller).
FEED_BATCH = 64

# The stages a kind's records go through: the connector's own unless a flow names others.
StagesOf = Callable[[Kind], Sequence[Stage]]

__all__ = ["Engine", "EngineOptions", "Input", "StageCounters", "StagesOf"]


@dataclass(slots=True)
class EngineOptions:
    concurrency: int = 16  # workers per stage unless the stage has its own figure
    stage_concurrency: Mapping[str, int] = field(default_factory=dict)
    queue_size: int | None = None  # items buffered between stages; default 2 x workers
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    grace_s: float = 10.0  # how long in-flight items may finish after a stop
    batch_linger_s: float = 0.05  # how long a batch stage waits to fill a batch
    max_open_groups: int = 1000  # groups a grouped stage may hold open at once
    state: StateStore | None = None  # what was confirmed before: skip it when unchanged
    full: bool = False  # ignore the state: compare with `remote` (or push everything again)
    remote: RemoteIndex | None = None  # the target's listing, with --full
    # Fail fast ([limits] unreachable_after, stall_s): so many requests in a row failing one
    # target-wide way, or no answer at all for so long, stop the run (exit 4). None: no watch.
    unreachable_after: int = DEFAULT_UNREACHABLE_AFTER
    stall_s: float | None = None


class Engine(ItemSink):
    def __init__(
        self,
        connector: Connector,
        target: Target,
        writer: ResultSink,
        options: EngineOptions | None = None,
        stats: RunStats | None = None,
    ) -> None:
        self.connector = connector
        self.options = options or EngineOptions()
        self.stats = stats or RunStats()  # shared when one run drives several engines (prune)
        breaker = CircuitBreaker(self.options.unreachable_after, no_route_of(connector))
        self.client = EngineClient(target, self.stats, self.options.retry, breaker)
        self.writer = writer
        self.counters: list[StageCounters] = []
        self._stages: dict[Kind, list[tuple[Stage, StageCounters]]] = {}
        self.read: dict[Kind, int] = {}
        self.stop = anyio.Event()
        self.interrupted = False
        self._live: set[Job] = set()  # read from the input, result not yet written
        self._failed_assets: dict[str, str] = {}  # asset id -> why, for dependent links
        self._pipeline = anyio.CancelScope()
        self._gate: ResumeGate | None = None
        self._identities: IdentityIndex | None = None
        self.unreadable = 0  # input lines the reader could not turn into a record
        self.first_unreadable: Origin | None = None

    async def run(self, inputs: Sequence[Input], *, stages_of: StagesOf | None = None) -> RunStats:
        """Run every input to the end, or until :attr:`stop` is set and the grace period ends.

        Each kind's records go through ``stages_of(kind)``, the connector's stages unless a
        flow names others (prune runs removals through the delete stages).
        """
        stages_of = stages_of or self.connector.stages
        options = self.options
        if options.state is not None or options.full:
            lister = self.connector.lister
            judge = Judge(options.state, options.remote, lister, options.full)
            if options.state is not None:
                # A first migration has nothing to look up: skip a query per item.
                judge.empty_kinds = {k for k, _ in inputs if options.state.count(k) == 0}
            self._gate = ResumeGate(judge, options.state, options.full)
        flows = [(kind, records, list(stages_of(kind))) for kind, records in inputs]
        self._identities = IdentityIndex()
        for kind, _, stages in flows:
            self.read[kind] = 0
            pairs = [(stage, StageCounters(kind, stage.name)) for stage in stages]
            self._stages[kind] = pairs
            self.counters.extend(counters for _, counters in pairs)
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._cancel_after_grace)
                if self.options.stall_s is not None:
                    outer.start_soon(self.client.breaker.watch_stall, self.options.stall_s)
                if self.options.state is not None:
                    outer.start_soon(self._flush_state, self.options.state)
                with self._pipeline:
                    for kind, records, stages in flows:
                        if self.stop.is_set():
                            break
                        await self._run_flow(kind, records, stages)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group_error:
            raise first_bulksync_error(group_error) from None
        finally:
            # Every item read from the input gets its result, even one cut off by a stop.
            gone = self.client.breaker.tripped or self.client.target.budget.failure
            for job in list(self._live):
                error = ErrorInfo("Interrupted", "the run stopped before this item finished")
                if gone is not None:
                    done = "not attempted" if job.attempts == 0 else "not finished"
                    error = ErrorInfo("TargetUnreachable", f"{done}: target unreachable: {gone}")
                self._finish(job, "failed", error=error, step=job.stage)
            if self._identities is not None:
                self._identities.close()
                self._identities = None
        self.interrupted = self.stop.is_set()
        return self.stats

    @property
    def quota(self) -> QuotaExhausted | None:
        """The quota that stopped the run: from then on nothing is sent, and every item not
        sent yet ends "not attempted: quota exhausted" (exit 6)."""
        return self.client.target.budget.exhausted

    def request_stop(self) -> None:
        """Stop taking new items; in-flight ones get ``grace_s`` to finish."""
        self.stop.set()

    def cancel_now(self) -> None:
        """Stop at once: in-flight items are reported as interrupted."""
        self.stop.set()
        self._pipeline.cancel()

    async def _flush_state(self, state: StateStore) -> None:
        """Commit confirmations on time even while no item finishes (a slow stretch)."""
        while True:
            await anyio.sleep(state.flush_interval_s)
            state.flush()

    async def _cancel_after_grace(self) -> None:
        await self.stop.wait()
        await anyio.sleep(self.options.grace_s)
        self._pipeline.cancel()

    async def _run_flow(
        self, kind: Kind, records: Iterable[Record | BadRecord], stages: Sequence[Stage]
    ) -> None:
        options = self.options
        counters = [c for _, c in self._stages[kind]]
        async with anyio.create_task_group() as group:
            downstream: MemoryObjectSendStream[Job] | None = None
            # Built from the last stage backwards, so each pool knows where its output goes.
            for stage, stage_counters in reversed(list(zip(stages, counters, strict=True))):
                workers = options.stage_concurrency.get(stage.name, options.concurrency)
                pool = StagePool(
                    stage,
                    stage_counters,
                    self.client,
                    options.retry,
                    self.stats,
                    self,
                    options.batch_linger_s,
                )
                capacity = options.queue_size or 2 * workers * stage.batch_size
                send, receive = anyio.create_memory_object_stream[Job](capacity)
                if stage.grouped:
                    groups_send, groups = anyio.create_memory_object_stream[list[Job]](workers)
                    group.start_soon(
                        group_jobs, stage, receive, groups_send, options.max_open_groups
                    )
                    for _ in range(workers):
                        next_send = downstream.clone() if downstream else None
                        group.start_soon(pool.work_groups, groups.clone(), next_send)
                    groups.close()
                else:
                    for _ in range(workers):
                        next_send = downstream.clone() if downstream else None
                        group.start_soon(pool.work, receive.clone(), next_send)
                    receive.close()
                if downstream is not None:
                    downstream.close()
                downstream = send
            assert downstream is not None
            group.start_soon(self._feed, kind, records, downstream)

    async def _feed(
        self, kind: Kind, records: Iterable[Record | BadRecord], send: MemoryObjectSendStream[Job]
    ) -> None:
        # Never more read ahead than the first queue holds: backpressure stays what it was.
        batch = max(1, min(FEED_BATCH, int(send.statistics().max_buffer_size)))
        async with send:
            ready: list[Job] = []
            for record in records:
                if self.stop.is_set():
                    break  # no more reading; what was read still goes, within the grace
                self.read[kind] += 1
                job = self._admit(record)
                if job is None:
                    await anyio.lowlevel.checkpoint()
                    continue
                ready.append(job)
                if len(ready) >= batch:
                    await self._send_batch(ready, send)
                    ready = []
            await self._send_batch(ready, send)

    def _admit(self, record: Record | BadRecord) -> Job | None:
        """The job to push for this input line, or None when its result is already written.

        A bug while judging one line (its identity, its hash, the state) fails that line
        alone: the try costs nothing on the way through, and the run goes on.
        """
        try:
            return self._admit_one(record)
        except Exception as exc:
            self._finish_internal(record, exc)
            return None

    def _admit_one(self, record: Record | BadRecord) -> Job | None:
        if isinstance(record, BadRecord):
            # Lines the reader could not read: prune must not take their items for gone.
            self.unreadable += 1
            if self.first_unreadable is None:
                self.first_unreadable = record.origin
            self._finish_bad(record)
            return None
        refusal = self._refusal(record)
        if refusal is not None:
            self._finish_bad(refusal)
            return None
        first = self._first_claim(record)
        if first is not None:
            assert isinstance(record, AssetRecord | LinkRecord)
            self._finish_duplicate(record, first)
            return None
        job = Job(record)
        self._live.add(job)
        if self._gate is not None and self._gate.unchanged(job):
            self._finish(job, "skipped", reason="unchanged")
            return None
        if self.quota is not None:
            self._finish(job, "failed", error=quota_failed(job).error)
            return None
        blocked_by = self._failed_dependency(record)
        if blocked_by is not None:
            self._finish(job, "skipped", reason=blocked_by)
            return None
        return job

    async def _send_batch(self, jobs: Sequence[Job], send: MemoryObjectSendStream[Job]) -> None:
        if self.quota is not None:
            for job in jobs:  # read before the quota ran out: they go nowhere now
                self._finish(job, "failed", error=quota_failed(job).error)
            return
        # One transaction makes the whole batch's intents durable before any of it is sent:
        # a commit per item would cost more than the rest of the engine's work on it.
        await self.intend(jobs)
        for job in jobs:
            await send.send(job)

    def _refusal(self, record: Record) -> BadRecord | None:
        if not isinstance(record, AssetRecord | LinkRecord):
            return None
        reason = self.connector.refuse(record)
        return None if reason is None else BadRecord(record.origin, record.kind, reason, record.key)

    def _first_claim(self, record: Record) -> int | None:
        """The earlier line of this input with the same identity on the target, if any."""
        if self._identities is None or not isinstance(record, AssetRecord | LinkRecord):
            return None
        identity = self.connector.identity(record)
        return self._identities.claim(record.kind, identity, record.origin.line)

    def _finish_duplicate(self, record: AssetRecord | LinkRecord, first: int) -> None:
        self.stats.invalid += 1
        message = f"{record.origin}: duplicate of line {first} (the same item on the target)"
        error = ErrorInfo("DuplicateItem", message)
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, record.key, "failed", error=error))

    async def intend(self, jobs: Sequence[Job]) -> None:
        state = self.options.state
        if state is not None:
            await record_intents(state, jobs)

    def _failed_dependency(self, record: Record) -> str | None:
        """A link to an asset that failed in this run is skipped: it could only fail too."""
        if not isinstance(record, LinkRecord) or not self._failed_assets:
            return None
        for end in (record.from_, record.to):
            if isinstance(end, str) and end in self._failed_assets:
                return f"dependency failed: asset '{end}' ({self._failed_assets[end]})"
        return None

    # ItemSink: where jobs leave the stage pools.
    def succeed(self, job: Job) -> None:
        state = self.options.state
        if state is not None and job.digest is not None:
            action = job.action
            result = f"succeeded ({action})" if action else "succeeded"
            state.confirm(job.record.kind, job.record.key, job.digest, job.remote_id, result)
        self._finish(job, "succeeded", remote_id=job.remote_id)

    def end(self, job: Job, outcome: Failed | Skipped, step: str) -> None:
        if isinstance(outcome, Skipped):
            if self.options.state is not None and job.intent is not None:
                self.options.state.settle(job.record.kind, job.record.key)
            self._finish(job, "skipped", reason=outcome.reason)
            return
        job.extra.update(outcome.extra)
        self._finish(job, "failed", error=outcome.error, step=step)

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
        if record.kind == "asset" and status == "failed":
            where = f"line {record.origin.line}, {step}" if step else f"line {record.origin.line}"
            self._failed_assets[record.key] = f"{where}: {error.message if error else status}"
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
            extra=job.extra if job.action is None else {**job.extra, "action": job.action},
            started_at=job.started_at,
        )
        self._live.discard(job)
        self._count_unreached(record.kind, job, status)
        state = self.options.state
        if status == "failed" and state is not None:
            what = f"{error.type}: {error.message}" if error else "failed"
            where = f" at {step}" if step else ""
            # Settled only when the push surely did not happen: otherwise the next run looks
            # the item up before creating it.
            unsure = (
                job.maybe_applied
                or job.resumed
                or (error and error.type in ("Interrupted", "TargetUnreachable"))
                or (error and error.type == "QuotaExhausted" and job.attempts > 0)
            )
            state.failed(
                record.kind,
                record.key,
                redacted_excerpt(f"failed{where}: {what}", 500),
                absent=job.absent_on_target,
                settled=job.intent is None or not unsure,
                refused=bool(error and error.http_status and 400 <= error.http_status < 500),
            )
        self._write(result)

    def _finish_internal(self, record: Record | BadRecord, exc: Exception) -> None:
        """A bug met while admitting one line: that line's failed result, and nothing else."""
        log.debug("admitting %s failed", record.origin, exc_info=True)
        for job in [j for j in self._live if j.record is record]:
            self._live.discard(job)  # its one result is the one written here
        try:
            key: str | None = record.key
        except Exception:
            key = None  # the key itself could not be computed
        what = redacted_excerpt(f"{type(exc).__name__}: {exc}", 500)
        error = ErrorInfo("InternalError", f"{record.origin}: {what}")
        self.stats.invalid += 1
        if record.kind == "asset" and key:
            self._failed_assets[key] = f"line {record.origin.line}: {what}"
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, key, "failed", error=error))

    def _finish_bad(self, record: BadRecord) -> None:
        self.stats.invalid += 1
        error = ErrorInfo(record.error_type, f"{record.origin}: {record.reason}")
        if record.kind == "asset" and record.key:
            self._failed_assets[record.key] = f"line {record.origin.line}: {record.reason}"
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, record.key, "failed", error=error))

    def _count_unreached(self, kind: Kind, job: Job | None, status: Status) -> None:
        """Count an item at every stage of its kind that did not count it, so that each stage's
        bar reaches its total: the first one as the item ended (a bad line fails at the first
        stage), the later ones as skipped, or as not applicable when the stage would have had
        nothing to do for it (an unchanged asset with no file, at the upload)."""
        stages = self._stages.get(kind, ())
        first = True
        for stage, counters in stages[job.passed if job is not None else 0 :]:
            if job is not None and not _applies(stage, job):
                counters.not_applicable += 1
            elif first and status == "failed":
                counters.failed += 1
            else:
                counters.skipped += 1
            first = False

    def _write(self, result: ItemResult) -> None:
        self.writer.write(result)
        self.stats.count(result)


def _applies(stage: Stage, job: Job) -> bool:
    try:
        return stage.applies(job)
    except Exception:
        return True  # the stage would have failed the item: it counts in its total
