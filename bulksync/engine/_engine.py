"""The engine: records flow from streaming readers through pools of stage workers to results.

Each stage is a pool of workers reading a bounded memory stream, so memory stays flat whatever
the input size and a slow stage pushes back on the one before it. Inputs run one after the
other in the order given (assets before the links that may point at them). Every item read
leaves the engine through exactly one result line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Iterable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulksync.engine._breaker import CircuitBreaker, no_route_of
from bulksync.engine._finishing import Finisher
from bulksync.engine._identities import IdentityIndex
from bulksync.engine._options import EngineOptions
from bulksync.engine._pull import PULL_AHEAD, Wait, pulled_records
from bulksync.engine._resume import PREFETCH, ResumeGate, prefetching, record_intents
from bulksync.engine._shard_wait import CrossShardWait
from bulksync.engine._stages import StageCounters, StagePool, group_jobs, quota_failed
from bulksync.engine.client import EngineClient, Target
from bulksync.spi._connector import (
    Connector,
    Job,
    Stage,
)
from bulksync.spi._errors import ErrorInfo, QuotaExhausted, first_bulksync_error
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Origin, Record
from bulksync.store._backend import StateBackend, StateUnavailable
from bulksync.store.results import ResultSink, RunStats
from bulksync.store.verdict import Judge

log = logging.getLogger("bulksync.engine._engine")

Input = tuple[Kind, Iterable[Record | BadRecord]]
# A file's records, or a caller's async ones (the Python API's stream).
InputRecords = Iterable[Record | BadRecord] | AsyncIterable[Record | BadRecord]
AnyInput = tuple[Kind, InputRecords]
# At most this many jobs are read ahead and recorded in one transaction before the first of
# them is sent (fewer when the first stage's queue is smaller).
FEED_BATCH = 64
# Lines finished without a request (a resync's skips) between two turns given to the other
# tasks: a checkpoint costs more than judging a line, and 64 take well under a millisecond.
QUIET_LINES = 64
MAX_HELD_JOBS = 10_000  # a grouped stage's open groups hold at most so many jobs together

# The stages a kind's records go through: the connector's own unless a flow names others.
StagesOf = Callable[[Kind], Sequence[Stage]]

__all__ = ["AnyInput", "Engine", "EngineOptions", "Input", "StageCounters", "StagesOf"]


class Engine(Finisher):
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
        self._looked_up: set[Kind] = set()  # kinds whose items the state is asked about
        self.unreadable = 0  # input lines the reader could not turn into a record
        self.first_unreadable: Origin | None = None

    async def run(
        self, inputs: Sequence[AnyInput], *, stages_of: StagesOf | None = None
    ) -> RunStats:
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
                self._looked_up = {k for k, _ in inputs} - judge.empty_kinds
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

    def held_at_most(self, kind: Kind) -> int:
        """The most items of ``kind`` in the engine at once with no result yet: what a caller
        that meters its input against results taken must let it read ahead, or both wait."""
        # A batch being read, the record in hand, those pulled ahead of an async source.
        options, held = self.options, FEED_BATCH + 1 + PULL_AHEAD
        for stage in self.connector.stages(kind):
            workers = options.stage_concurrency.get(stage.name, options.concurrency)
            in_hand = workers * stage.batch_size
            held += (options.queue_size or 2 * in_hand) + in_hand  # as _run_flow sizes it
            if stage.grouped:
                held += MAX_HELD_JOBS + 1 + in_hand  # group_jobs's, and its groups' stream
        return held

    def request_stop(self) -> None:
        """Stop taking new items; in-flight ones get ``grace_s`` to finish."""
        self.stop.set()

    def cancel_now(self) -> None:
        """Stop at once: in-flight items are reported as interrupted."""
        self.stop.set()
        self._pipeline.cancel()

    async def _flush_state(self, state: StateBackend) -> None:
        """Commit confirmations on time even while no item finishes (a slow stretch)."""
        while True:
            await anyio.sleep(state.flush_interval_s)
            state.flush()

    async def _cancel_after_grace(self) -> None:
        await self.stop.wait()
        await anyio.sleep(self.options.grace_s)
        self._pipeline.cancel()

    async def _run_flow(self, kind: Kind, records: InputRecords, stages: Sequence[Stage]) -> None:
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
                        group_jobs,
                        stage,
                        receive,
                        groups_send,
                        options.max_open_groups,
                        MAX_HELD_JOBS,
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
        self, kind: Kind, records: InputRecords, send: MemoryObjectSendStream[Job]
    ) -> None:
        # Never more read ahead than the first queue holds: backpressure stays what it was.
        batch = max(1, min(FEED_BATCH, int(send.statistics().max_buffer_size)))
        ready: list[Job] = []
        if isinstance(records, AsyncIterable):  # the Python API's stream: not sharded
            async with send:
                await self._feed_pulled(kind, records, send, batch, ready)
            return
        waiting = self._cross_shard_wait()
        state = self.options.state
        if state is not None and not self.options.full and kind in self._looked_up:
            records = prefetching(state, kind, records, PREFETCH)
        quiet = 0
        async with send:
            for record in records:
                if self.stop.is_set():
                    break  # no more reading; what was read still goes, within the grace
                self.read[kind] += 1
                job = self._admit(record)
                if waiting is not None:
                    ready += waiting.due()  # held links whose assets appeared (a clock check)
                if job is None or (waiting is not None and waiting.hold(job)):
                    quiet += 1
                    if quiet >= QUIET_LINES:  # nothing sent for a while: let the others run
                        quiet = 0
                        await anyio.lowlevel.checkpoint()
                else:
                    ready.append(job)
                if len(ready) >= batch:
                    await self._send_batch(ready, send)
                    ready = []
            await self._send_batch(ready, send)
            if waiting is not None:

                async def release(jobs: Sequence[Job]) -> None:
                    await self._send_batch(jobs, send)

                def skip(job: Job, reason: str) -> None:
                    self._finish(job, "skipped", reason=reason)

                await waiting.release(release, skip, self.stop, batch)

    def _cross_shard_wait(self) -> CrossShardWait | None:
        gate, state = self.options.shard, self.options.state
        return None if gate is None or state is None else CrossShardWait(gate, state)

    async def _feed_pulled(
        self,
        kind: Kind,
        records: AsyncIterable[Record | BadRecord],
        send: MemoryObjectSendStream[Job],
        batch: int,
        ready: list[Job],
    ) -> None:
        """:meth:`_feed` from a caller's async records: a batch goes as soon as no record is
        ready, so a source that waits (on its consumer, or its database) never holds one back."""
        async with pulled_records(records) as pulled:
            while True:
                record = pulled.ready()
                if isinstance(record, Wait):
                    await self._send_batch(ready, send)
                    ready.clear()
                    record = await pulled.next(self.stop)
                if self.stop.is_set():
                    self._abandon(kind, [] if record is None else [record, *pulled.drain()])
                    break
                if record is None:
                    break
                self.read[kind] += 1
                job = self._admit(record)
                if job is None:
                    await anyio.lowlevel.checkpoint()
                    continue
                ready.append(job)
                if len(ready) >= batch:
                    await self._send_batch(ready, send)
                    ready.clear()
        if self.stop.is_set():
            self._abandon(kind, pulled.leftover)
        await self._send_batch(ready, send)

    def _abandon(self, kind: Kind, records: Sequence[Record | BadRecord]) -> None:
        """What a caller's source handed over before the stop still gets its result (the
        run's end writes "Interrupted"): it is gone from the caller's iterator."""
        for record in records:
            self.read[kind] += 1
            if isinstance(record, BadRecord):
                self._admit(record)
            else:
                self._live.add(Job(record))

    def _admit(self, record: Record | BadRecord) -> Job | None:
        """The job to push for this input line, or None when its result is already written.

        A bug while judging one line (its identity, its hash, the state) fails that line
        alone: the try costs nothing on the way through, and the run goes on.
        """
        try:
            return self._admit_one(record)
        except StateUnavailable:
            raise  # the state's database, not this line: the run stops
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
        if not jobs:
            return
        if self.quota is not None:
            for job in jobs:  # read before the quota ran out: they go nowhere now
                self._finish(job, "failed", error=quota_failed(job).error)
            return
        # One transaction makes the whole batch's intents durable before any of it is sent:
        # a commit per item would cost more than the rest of the engine's work on it.
        await self.intend(jobs)
        for job in jobs:
            try:
                # Straight into the queue while it has room: send() yields to the event loop
                # for every item, the feeder's one hop per item.
                send.send_nowait(job)
            except anyio.WouldBlock:
                await send.send(job)  # the first stage is behind: wait for it (backpressure)

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
