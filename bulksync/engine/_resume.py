"""What earlier runs left decides how an item is pushed now: skipped when the state (or the
``--full`` listing) shows it unchanged on the target, updated when it changed, and looked up
before any create when a run that stopped was pushing it (its intent is still in flight).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from bulksync.spi._connector import Job
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Record
from bulksync.store._backend import Intent, StateBackend
from bulksync.store.verdict import Judge, Verdict

# Lookups of the state asked for at once, ahead of admitting the records.
PREFETCH = 256


class ResumeGate:
    """The engine's judgement of each admitted job against the state and the listing."""

    def __init__(self, judge: Judge, state: StateBackend | None, full: bool) -> None:
        self._judge = judge
        self._state = state
        self._full = full

    def unchanged(self, job: Job) -> bool:
        """Whether this exact item is on the target already (resume, resync, --full)."""
        record = job.record
        if not isinstance(record, AssetRecord | LinkRecord):
            return False
        verdict = self._resumed_verdict(self._judge.judge(record), job)
        if verdict.digest is not None:
            job.digest = verdict.digest
        if verdict.action == "create":
            if verdict.absent:
                # Not the default opposite of True: a stage may tell "created" from "updated"
                # only with evidence, and a missing key means there was none.
                job.exists = False
            return False
        if verdict.action == "skip":
            state = self._state
            digest = verdict.digest
            if self._full and verdict.confirmable and state is not None and digest is not None:
                # The listing showed it in place: the state learns so, for the next resync.
                place = "in place (--full)"
                state.confirm(record.kind, record.key, digest, verdict.remote_id, place)
            return True
        # Changed since its last push: the target has it, so a connector can update directly.
        job.exists = True
        job.remote_id = verdict.remote_id
        return False

    def _resumed_verdict(self, verdict: Verdict, job: Job) -> Verdict:
        """An item an earlier run left in flight may be on the target already: look first.

        A killed run that was pushing other content than the state confirmed may have left
        that content on the target, so the item is updated even though it matches the state.
        """
        state = self._state
        intent = None if state is None else state.in_flight(job.record.kind, job.record.key)
        if intent is None or state is None:
            return verdict
        if verdict.action == "skip":
            if intent.hash == verdict.digest:
                state.settle(job.record.kind, job.record.key)  # what it pushed is confirmed
                return verdict
            verdict = Verdict("update", verdict.digest, verdict.remote_id)
        job.resumed = job.maybe_applied = True
        if intent.file_id is not None and intent.hash == verdict.digest:
            job.file_id = intent.file_id  # the same content: its upload is reused
        return verdict


async def record_intents(state: StateBackend, jobs: Sequence[Job]) -> None:
    """Make the jobs' pushes durable in one transaction before a request of theirs is sent."""
    intents: dict[tuple[str, str], Intent] = {}
    for job in jobs:
        digest = job.digest
        if digest is None:
            continue
        wanted = (digest, job.file_id)
        if job.intent != wanted:  # once per job, and again when a stage adds a file id
            job.intent = wanted
            intents[(job.record.kind, job.record.key)] = Intent(*wanted)
    await state.intend(intents)


def prefetching(
    state: StateBackend, kind: str, records: Iterable[Record | BadRecord], size: int
) -> Iterator[Record | BadRecord]:
    """The records as they come, the state asked ahead for each chunk's lookups in one query
    (a PostgreSQL state's lookup is a round trip; a resync makes one per item otherwise)."""
    stream = iter(records)
    while chunk := list(itertools.islice(stream, size)):
        keys = []
        for record in chunk:
            if isinstance(record, AssetRecord | LinkRecord):
                try:
                    keys.append(record.key)
                except Exception:  # admitting the record reports it
                    continue
        state.prefetch(kind, keys)
        yield from chunk
