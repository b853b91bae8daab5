"""Per-group serialisation: a stage that declares ``serial_groups`` never has two batches of
one group in flight at once.

Such a stage does a read-modify-write of a whole group (Quable v4 links: list the group, lay
the batch over it, send the whole group back with mode ``replace``). A write computed from a
stale read undoes another batch's work, and the engine runs several batches of one group at
once when the group is larger than a batch or arrives in pieces. Concurrency is the engine's
to limit, so the lock is held here, around each attempt, not inside the connector: between
attempts (a retry's backoff) other batches of the group may go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from bulksync.spi._connector import Client, Job, Outcome, Stage


@dataclass(slots=True)
class _Entry:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0  # holders and waiters: the entry goes when the last one leaves


class GroupLocks:
    """One lock per group key, kept only while someone holds or waits for it.

    A run may touch millions of groups: keeping one lock per group ever seen would grow
    without bound, so each entry is counted and dropped when its last user leaves.
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            # Also reached when cancelled while waiting, so a cancelled waiter never leaks.
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


class SerialGroups:
    """Runs a stage's batches, one batch per group at a time when the stage asks for it."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        # Only a grouped stage's batches hold one group each; another's mix any keys.
        serial = stage.grouped and stage.serial_groups
        self.locks: GroupLocks | None = GroupLocks() if serial else None

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        key = self._key(jobs)
        if self.locks is None or key is None:
            return await self.stage.run(jobs, client)
        async with self.locks.hold(key):
            return await self.stage.run(jobs, client)

    def _key(self, jobs: Sequence[Job]) -> Hashable | None:
        if self.locks is None or not jobs:
            return None
        try:
            return self.stage.group_key(jobs[0])
        except Exception:
            # group_jobs made it a group of its own: nothing else can share its key.
            return None
