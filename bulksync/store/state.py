"""What bulksync last confirmed on a target: the memory behind resume, resync and prune.

An embedded SQLite database (WAL) keyed by target, kind and item key holds the content hash of
what was last pushed, the id the target gave it, the run that last saw it and the item's last
result, failures included. Confirmations are written in small batched transactions: often
enough that a crash repeats at most a few hundred milliseconds of work, never one commit per
item.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from bulksync.spi._errors import ConfigError
from bulksync.spi._records import AssetRecord, LinkRecord, Record, canonical_form
from bulksync.store._backend import (
    Batch,
    Confirmed,
    Intent,
    IntentRow,
    StateBackend,
    StateUnavailable,
)
from bulksync.store._state_lock import StateLock

__all__ = ["Confirmed", "Intent", "StateBackend", "StateStore", "content_hash"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    target    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    hash      TEXT NOT NULL,  -- of what was last pushed; '' while nothing ever was
    remote_id TEXT,
    run_id    TEXT NOT NULL,
    pushed_at REAL NOT NULL,
    result    TEXT,  -- the last result: "succeeded (created)", "failed: HTTP422: ..."
    PRIMARY KEY (target, kind, key)
) WITHOUT ROWID;
-- Items a run was pushing and has not settled: written before the first request is sent,
-- so after a crash the next run knows the target may hold them whatever the results file says.
CREATE TABLE IF NOT EXISTS intents (
    target  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    key     TEXT NOT NULL,
    hash    TEXT NOT NULL,  -- of what was being pushed
    file_id TEXT,           -- an upload already made for it, reused on resume
    run_id  TEXT NOT NULL,
    PRIMARY KEY (target, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    run_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (run_id, kind, key)
) WITHOUT ROWID;
"""


def content_hash(record: Record) -> str:
    """A hash of what would be pushed for this record (not where it was read from).

    For a file, its path, size and modification time stand for its bytes: hashing every file
    of a large catalogue on each resync would cost more than the resync saves.
    """
    assert isinstance(record, AssetRecord | LinkRecord)
    doc = canonical_form(record, _file_stamp)
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _file_stamp(path: Path) -> object:
    try:
        info = path.stat()
        return [str(path), info.st_size, info.st_mtime_ns]
    except (OSError, ValueError):  # ValueError: a path no system call takes (NUL)
        return [str(path), None, None]


class StateStore(StateBackend):
    """One target's confirmed items in a SQLite file; one run at a time (the lock file)."""

    def __init__(
        self,
        path: Path,
        target: str,
        *,
        flush_every: int = 256,
        flush_interval_s: float = 0.2,
        exclusive: bool = False,
    ) -> None:
        """``exclusive``: hold the state for this run alone (see :mod:`._state_lock`); a
        second run then stops at once. Off for readers (a dry run) and for tests that reopen
        a store to play a crash."""
        super().__init__(target, flush_every=flush_every, flush_interval_s=flush_interval_s)
        self.path = path
        self._lock: StateLock | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot open the state database {path}: {exc}") from None
        if exclusive:
            self._lock = StateLock.acquire(path)  # before SQLite: no run writes beside another
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
            if "result" not in columns:  # a database made before results were kept
                self._db.execute("ALTER TABLE items ADD COLUMN result TEXT")
            # What earlier runs left in flight: small (at most their in-flight windows).
            self._in_flight = {
                (kind, key): Intent(digest, file_id)
                for kind, key, digest, file_id in self._db.execute(
                    "SELECT kind, key, hash, file_id FROM intents WHERE target = ?", (target,)
                )
            }
        except sqlite3.Error as exc:
            if self._lock is not None:
                self._lock.release()
            raise ConfigError(f"cannot open the state database {path}: {exc}") from None
        self._open = set(self._in_flight)

    def _write_intents(self, rows: list[IntentRow]) -> None:
        with self._guard(), self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO intents (target, kind, key, hash, file_id, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target, kind, key) DO UPDATE SET "
                "hash = excluded.hash, file_id = excluded.file_id, run_id = excluded.run_id",
                [(self.target, *row, self.run_id) for row in rows],
            )

    def _lookup(self, kind: str, key: str) -> Confirmed | None:
        with self._guard():
            row = self._db.execute(
                "SELECT hash, remote_id FROM items "
                "WHERE target = ? AND kind = ? AND key = ? AND hash != ''",
                (self.target, kind, key),
            ).fetchone()
        return None if row is None else Confirmed(row[0], row[1])

    def _lookup_many(self, kind: str, keys: list[str]) -> Iterator[tuple[str, Confirmed]]:
        with self._guard():
            for i in range(0, len(keys), 500):  # under SQLite's limit of bound parameters
                chunk = keys[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, hash, remote_id FROM items WHERE target = ? AND kind = ? "
                    f"AND hash != '' AND key IN ({marks})",
                    (self.target, kind, *chunk),
                ).fetchall()
                for key, digest, remote_id in rows:
                    yield key, Confirmed(digest, remote_id)

    def _confirmed_among(self, kind: str, keys: list[str]) -> set[str]:
        found: set[str] = set()
        with self._guard():
            for i in range(0, len(keys), 500):  # under SQLite's limit of bound parameters
                chunk = keys[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                found.update(
                    key
                    for (key,) in self._db.execute(
                        "SELECT key FROM items WHERE target = ? AND kind = ? AND hash != '' "
                        f"AND key IN ({marks})",
                        (self.target, kind, *chunk),
                    )
                )
        return found

    def last_result(self, kind: str, key: str) -> str | None:
        self.flush()
        with self._guard():
            row = self._db.execute(
                "SELECT result FROM items WHERE target = ? AND kind = ? AND key = ?",
                (self.target, kind, key),
            ).fetchone()
        return None if row is None else row[0]

    def _delete(self, kind: str, key: str) -> None:
        with self._guard(), self._db:
            self._db.execute("BEGIN")
            for table in ("items", "intents"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE target = ? AND kind = ? AND key = ?",
                    (self.target, kind, key),
                )

    def _write_batch(self, batch: Batch) -> None:
        now = batch.pushed_at
        with self._guard(), self._db:  # one transaction for the whole batch
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO items (target, kind, key, hash, remote_id, run_id, pushed_at, "
                "result) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, kind, key) DO "
                "UPDATE SET hash = excluded.hash, "
                "remote_id = COALESCE(excluded.remote_id, items.remote_id), "
                "run_id = excluded.run_id, pushed_at = excluded.pushed_at, "
                "result = excluded.result",
                [
                    (self.target, kind, key, digest, remote_id, self.run_id, now, result)
                    for (kind, key), (digest, remote_id, result) in batch.pending.items()
                ],
            )
            # A failure keeps the hash and id of the last push: the next run compares with
            # those. An item never pushed gets a row with an empty hash, which lookups skip.
            self._db.executemany(
                "INSERT INTO items (target, kind, key, hash, remote_id, run_id, pushed_at, "
                "result) VALUES (?, ?, ?, '', NULL, ?, 0, ?) ON CONFLICT (target, kind, key) "
                "DO UPDATE SET result = excluded.result",
                [
                    (self.target, kind, key, self.run_id, result)
                    for (kind, key), result in batch.failures.items()
                ],
            )
            self._db.executemany(
                "UPDATE items SET hash = '', remote_id = NULL "
                "WHERE target = ? AND kind = ? AND key = ?",
                [(self.target, kind, key) for kind, key in batch.absent],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO seen (run_id, kind, key) VALUES (?, ?, ?)",
                [(self.run_id, kind, key) for kind, key in batch.seen],
            )
            self._db.executemany(
                "DELETE FROM intents WHERE target = ? AND kind = ? AND key = ?",
                [(self.target, kind, key) for kind, key in batch.settled],
            )
            self._db.executemany(
                "UPDATE intents SET file_id = NULL WHERE target = ? AND kind = ? AND key = ?",
                [(self.target, kind, key) for kind, key in batch.stale_uploads],
            )

    def unseen(self, kind: str) -> Iterator[tuple[str, str | None]]:
        """Items of this target that this run's input did not hold: prune candidates. Those
        confirmed, and those a killed run was pushing (the target may hold them too)."""
        self.flush()
        with self._guard():
            rows = self._db.execute(
                "SELECT i.key, i.remote_id FROM items i WHERE i.target = ? AND i.kind = ? "
                "AND i.hash != '' "
                "AND NOT EXISTS (SELECT 1 FROM seen s "
                "WHERE s.run_id = ? AND s.kind = i.kind AND s.key = i.key) "
                "UNION ALL "
                "SELECT n.key, NULL FROM intents n WHERE n.target = ? AND n.kind = ? "
                "AND NOT EXISTS (SELECT 1 FROM seen s "
                "WHERE s.run_id = ? AND s.kind = n.kind AND s.key = n.key) "
                "AND NOT EXISTS (SELECT 1 FROM items i WHERE i.target = n.target "
                "AND i.kind = n.kind AND i.key = n.key AND i.hash != '')",
                (self.target, kind, self.run_id, self.target, kind, self.run_id),
            ).fetchall()
        yield from rows

    def keys(self, kind: str) -> Iterator[str]:
        """Every confirmed key of this kind, streamed."""
        self.flush()
        with self._guard():
            cursor = self._db.execute(
                "SELECT key FROM items WHERE target = ? AND kind = ? AND hash != ''",
                (self.target, kind),
            )
            for (key,) in cursor:
                yield key

    def count(self, kind: str) -> int:
        self.flush()
        with self._guard():
            row = self._db.execute(
                "SELECT COUNT(*) FROM items WHERE target = ? AND kind = ? AND hash != ''",
                (self.target, kind),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        try:
            self.flush()
            if not self.broken:  # else the error that broke it was said already
                with self._guard():
                    self._db.execute("DELETE FROM seen WHERE run_id = ?", (self.run_id,))
        finally:
            self._db.close()
            if self._lock is not None:
                self._lock.release()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A locked or broken state database stops the run with one line, not a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            self.broken = True
            raise StateUnavailable(f"state database {self.path}: {exc}") from None
