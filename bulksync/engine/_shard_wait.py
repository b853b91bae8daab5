"""The cross-shard asset -> link gate: a sharded run's link to an asset that another shard
pushes is held back until the shared state shows that asset confirmed (so it exists on the
target), for :attr:`ShardGate.wait_s` at most after the last link is read; then it ends
``skipped: dependency not yet pushed``, unconfirmed, and the next run pushes it.

Held links wait beside the flow, not in it: the links that can go keep going, and held ones
are sent as soon as a poll (twice a second, one query for all the assets still awaited)
finds their assets. They are kept in memory meanwhile, a job each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from bulksync.spi._connector import Job
from bulksync.spi._records import LinkRecord
from bulksync.store._backend import StateBackend
from bulksync.store.shard import ShardGate

POLL_S = 0.5

Release = Callable[[Sequence[Job]], Awaitable[None]]


class CrossShardWait:
    def __init__(self, gate: ShardGate, state: StateBackend) -> None:
        self._gate = gate
        self._state = state
        self._confirmed: set[str] = set()  # foreign assets seen confirmed: they stay pushed
        # Seen not confirmed at the last poll: not asked again before the next one, so the
        # state is asked at most once per asset per poll, not once per link.
        self._missing: set[str] = set()
        self._held: dict[Job, set[str]] = {}
        self._next_poll = 0.0

    def hold(self, job: Job) -> bool:
        """Whether this link must wait for an asset of another shard (then it is kept here)."""
        record = job.record
        if not isinstance(record, LinkRecord):
            return False
        ends = {
            end
            for end in (record.from_, record.to)
            if isinstance(end, str) and self._gate.is_foreign_asset(end)
        }
        ends -= self._confirmed
        unknown = ends - self._missing
        if unknown:
            found = self._state.confirmed_among("asset", unknown)
            self._confirmed |= found
            self._missing |= unknown - found
            ends -= found
        if not ends:
            return False
        self._held[job] = ends
        return True

    def due(self) -> list[Job]:
        """Held links whose assets have appeared, polled at most every POLL_S: the feed sends
        them between its batches, so a link waits no longer than its asset does."""
        now = anyio.current_time()
        if not self._held or now < self._next_poll:
            return []
        self._next_poll = now + POLL_S
        return self._poll()

    def _poll(self) -> list[Job]:
        awaited = set().union(*self._held.values()) - self._confirmed
        if awaited:
            found = self._state.confirmed_among("asset", awaited)
            self._confirmed |= found
            self._missing = awaited - found
        free = [job for job, ends in self._held.items() if ends <= self._confirmed]
        for job in free:
            del self._held[job]
        return free

    async def release(
        self, send: Release, skip: Callable[[Job, str], None], stop: anyio.Event, batch: int
    ) -> None:
        """Send the held links as their assets appear; skip what is still waiting at the end."""
        deadline = anyio.current_time() + self._gate.wait_s
        while self._held and not stop.is_set():
            free = self._poll()
            for i in range(0, len(free), batch):
                await send(free[i : i + batch])
            left = deadline - anyio.current_time()
            if not self._held or left <= 0:
                break
            await anyio.sleep(min(POLL_S, left))
        if stop.is_set():
            return  # the held links are still live: the stop reports them interrupted
        for job, ends in self._held.items():
            asset = min(ends - self._confirmed)
            skip(
                job,
                f"dependency not yet pushed: asset '{asset}' (shard {self._gate.owner(asset)})",
            )
        self._held.clear()
