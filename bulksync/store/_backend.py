"""What the engine needs of a state store, whatever database holds it: the interface, and the
write buffering every backend shares so their semantics cannot drift apart.

Intents are made durable before a request goes out (a group commit per feed batch);
confirmations, failures and the keys seen are buffered and written in one transaction per
batch (every ``flush_every`` items or ``flush_interval_s``). A backend writes those batches and
answers the reads; the SQLite file (:mod:`.state`) and PostgreSQL (:mod:`.postgres`) do.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import anyio

from bulksync.spi._errors import ConfigError


@dataclass(frozen=True, slots=True)
class Confirmed:
    hash: str
    remote_id: str | None


@dataclass(frozen=True, slots=True)
class Intent:
    """An item on its way to the target: it may be there once its first request is sent."""

    hash: str
    file_id: str | None = None


class StateUnavailable(ConfigError):
    """The state's database failed (locked, lost, refusing): the run stops, exit 2, one line.
    Nothing is sent without its intent recorded, so no item may be admitted past this."""


Key = tuple[str, str]  # (kind, key)
IntentRow = tuple[str, str, str, str | None]  # kind, key, hash, file_id


@dataclass(frozen=True, slots=True)
class Batch:
    """One transaction's worth of buffered writes."""

    pending: dict[Key, tuple[str, str | None, str]]  # confirmed: hash, remote id, result
    failures: dict[Key, str]  # the last result, a failure
    absent: set[Key]  # no longer on the target: forget its hash and id
    seen: list[Key]  # held by this run's input
    settled: set[Key]  # intents to drop
    stale_uploads: set[Key]  # intents whose upload id must not be reused
    pushed_at: float


_UNKNOWN = object()


class StateBackend(ABC):
    """One target's confirmed items; writes are buffered and committed in batches."""

    def __init__(self, target: str, *, flush_every: int = 256, flush_interval_s: float = 0.2):
        self.target = target
        self.run_id = uuid.uuid4().hex
        self._flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        # Confirmed, not yet committed; by (kind, key) so a lookup sees them too.
        self._pending: dict[Key, tuple[str, str | None, str]] = {}
        self._failures: dict[Key, str] = {}
        self._seen: list[Key] = []
        # Only a prune reads what this run saw (and the table is emptied when the run ends): a
        # run that does not prune sets this False and saves a row write per item.
        self.keep_seen = True
        # Absent on the target now (a changed link deleted, its new version refused).
        self._absent: set[Key] = set()
        self._intents: dict[Key, Intent] = {}  # recorded, not yet committed
        self._settled: set[Key] = set()  # intents to drop with the next flush
        self._intent_commits = 0
        self._stale_uploads: set[Key] = set()
        self._last_flush = time.monotonic()
        # What earlier runs left in flight (set by the backend as it opens), and the keys with
        # an intent recorded and not settled: bounded by the in-flight windows.
        self._in_flight: dict[Key, Intent] = {}
        self._open: set[Key] = set()
        # The database failed (gone, locked): that error stops the run, once; what the engine
        # reports while it winds down is not written, so every line still gets its result
        # (the next run looks up what this one could not confirm, as after a kill).
        self.broken = False
        # Lookups answered ahead by prefetch(), each used once: the chunk being admitted.
        self._ahead: dict[Key, Confirmed | None] = {}

    # The backend's own reads and writes.
    @abstractmethod
    def _write_intents(self, rows: list[IntentRow]) -> None: ...

    @abstractmethod
    def _write_batch(self, batch: Batch) -> None: ...

    @abstractmethod
    def _lookup(self, kind: str, key: str) -> Confirmed | None: ...

    @abstractmethod
    def _lookup_many(self, kind: str, keys: list[str]) -> Iterator[tuple[str, Confirmed]]:
        """The confirmed ones among ``keys`` in one query (or a few): a resync asks per item."""

    @abstractmethod
    def _confirmed_among(self, kind: str, keys: list[str]) -> set[str]: ...

    @abstractmethod
    def last_result(self, kind: str, key: str) -> str | None: ...

    @abstractmethod
    def _delete(self, kind: str, key: str) -> None: ...

    @abstractmethod
    def unseen(self, kind: str) -> Iterator[tuple[str, str | None]]:
        """Items of this target that this run's input did not hold: prune candidates. Those
        confirmed, and those a killed run was pushing (the target may hold them too)."""

    @abstractmethod
    def keys(self, kind: str) -> Iterator[str]:
        """Every confirmed key of this kind, streamed."""

    @abstractmethod
    def count(self, kind: str) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # Shared semantics.
    def in_flight(self, kind: str, key: str) -> Intent | None:
        """An earlier run was pushing this item and never settled it: it may be on the target."""
        return self._in_flight.get((kind, key))

    def in_flight_count(self, kind: str) -> int:
        """Items earlier runs left in flight and never settled (part of a prune's scope)."""
        return sum(1 for k, _ in self._in_flight if k == kind)

    async def intend(self, intents: Mapping[Key, Intent]) -> None:
        """Make these pushes durable before their first request is sent.

        Workers calling at about the same time share one transaction: each adds its own, lets
        the others add theirs, and the first back commits them all (a group commit).
        """
        if not intents:
            return
        self._intents.update(intents)
        self._settled.difference_update(intents)
        self._open.update(intents)
        commits = self._intent_commits
        await anyio.lowlevel.checkpoint()
        if self._intent_commits == commits and self._intents:
            self._commit_intents()

    def settle(self, kind: str, key: str) -> None:
        """The item's push is over (confirmed, refused for sure, or not needed): forget it."""
        if (kind, key) not in self._open:
            return  # nothing in flight was recorded for it
        self._open.discard((kind, key))
        self._intents.pop((kind, key), None)
        self._settled.add((kind, key))

    def _commit_intents(self) -> None:
        rows = [(k, key, i.hash, i.file_id) for (k, key), i in self._intents.items()]
        self._intents.clear()
        self._intent_commits += 1
        if self.broken:  # never send an item whose intent could not be made durable
            raise StateUnavailable("the state is unavailable since its last error")
        try:
            self._write_intents(rows)
        except BaseException:
            self.broken = True
            raise

    def lookup(self, kind: str, key: str) -> Confirmed | None:
        """What was last confirmed pushed, or ``None`` when nothing ever was."""
        pending = self._pending.get((kind, key))
        if pending is not None:
            return Confirmed(pending[0], pending[1])
        ahead = self._ahead.pop((kind, key), _UNKNOWN)
        if ahead is not _UNKNOWN:
            assert ahead is None or isinstance(ahead, Confirmed)
            return ahead
        return self._lookup(kind, key)

    def prefetch(self, kind: str, keys: list[str]) -> None:
        """Lookups of these keys come next: answered all at once (a PostgreSQL lookup is a
        round trip; a SQLite one a statement), as the engine admits the chunk."""
        # The chunk before was admitted in full before the next is read: its entries go. Built
        # whole before it is used: a query that fails must not leave every key looking new.
        self._ahead = {}
        ahead: dict[Key, Confirmed | None] = dict.fromkeys(((kind, key) for key in keys), None)
        if keys:
            ahead.update(((kind, key), found) for key, found in self._lookup_many(kind, keys))
        self._ahead = ahead

    def confirmed_among(self, kind: str, keys: Collection[str]) -> set[str]:
        """Which of these keys are confirmed pushed (by this run or any other sharing the
        state): the cross-shard dependency gate asks in one query per poll."""
        mine = {key for key in keys if (kind, key) in self._pending}
        rest = [key for key in keys if key not in mine]
        return mine | (self._confirmed_among(kind, rest) if rest else set())

    def saw(self, kind: str, key: str) -> None:
        """The input of this run holds this key (what prune keeps)."""
        if not self.keep_seen:
            return
        self._seen.append((kind, key))
        self._maybe_flush()

    def confirm(
        self,
        kind: str,
        key: str,
        digest: str,
        remote_id: str | None,
        result: str = "succeeded",
    ) -> None:
        earlier = self._pending.get((kind, key))
        if remote_id is None and earlier is not None:
            remote_id = earlier[1]  # as the upsert's COALESCE does for committed rows
        self._failures.pop((kind, key), None)
        self._absent.discard((kind, key))
        self._ahead.pop((kind, key), None)  # what was asked ahead is older than this
        self._pending[(kind, key)] = (digest, remote_id, result)
        self.settle(kind, key)
        self._maybe_flush()

    def failed(
        self,
        kind: str,
        key: str,
        result: str,
        *,
        absent: bool = False,
        settled: bool = True,
        refused: bool = False,
    ) -> None:
        """The item's last result is a failure: kept, without touching what was last pushed,
        unless the target no longer holds that (``absent``: the next run creates it again).
        A push that may still have been applied is not ``settled``: the next run looks first.
        """
        self._failures[(kind, key)] = result
        self._ahead.pop((kind, key), None)
        if absent:
            self._absent.add((kind, key))
        if settled:
            self.settle(kind, key)
        elif refused and (kind, key) in self._open:
            # The target refused what was sent: a kept upload id may be why (an expired
            # file), so the next run uploads again rather than fail the same way forever.
            self._stale_uploads.add((kind, key))
        self._maybe_flush()

    def forget(self, kind: str, key: str) -> None:
        self.flush()
        self._delete(kind, key)
        self._ahead.pop((kind, key), None)
        self._in_flight.pop((kind, key), None)
        self._open.discard((kind, key))

    def _maybe_flush(self) -> None:
        if (
            len(self._pending) + len(self._seen) + len(self._failures) >= self._flush_every
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if self._intents:
            self._commit_intents()
        writes = (self._pending, self._seen, self._failures, self._settled, self._stale_uploads)
        if not any(writes):
            return
        batch = Batch(
            self._pending,
            self._failures,
            self._absent,
            self._seen,
            self._settled,
            self._stale_uploads,
            time.time(),
        )
        if not self.broken:
            try:
                self._write_batch(batch)
            except BaseException:
                self.broken = True
                raise
        for settled in self._settled:
            self._in_flight.pop(settled, None)
        self._pending = {}
        self._failures = {}
        self._absent = set()
        self._seen = []
        self._settled = set()
        self._stale_uploads = set()
