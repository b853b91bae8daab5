"""`--full`: what the target holds, kept on disk, not in memory.

A full resync compares every input item with the target itself rather than with the state
store. The listing (paged by :mod:`bulksync.engine.listing`) can run to millions of objects,
so it goes into a throwaway SQLite file (one transaction per page); the engine looks each
input item up there, marks it seen, and prune reads back what the input did not hold.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from bulksync.spi._connector import RemoteItem
from bulksync.spi._records import Kind

_SCHEMA = """
CREATE TABLE remote (
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    remote_id TEXT,
    fields    BLOB NOT NULL,
    seen      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


class RemoteIndex:
    """The items a listing found, by kind and key; deleted with its directory on close."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None and not directory.is_dir():
            directory = None  # a dry run makes no results folder: the system's temp then
        self._dir = Path(tempfile.mkdtemp(prefix="bulksync-remote-", dir=directory))
        # Private and disposable: durability buys nothing here, speed does.
        self._db = sqlite3.connect(self._dir / "remote.sqlite3", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._seen: list[tuple[str, str]] = []

    def add(self, items: Sequence[RemoteItem]) -> None:
        """One page of a listing; an object listed twice (pages shifting) is kept once."""
        rows = [
            (item.kind, item.key, item.remote_id, orjson.dumps(dict(item.fields))) for item in items
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO remote (kind, key, remote_id, fields) VALUES (?, ?, ?, ?)",
                rows,
            )

    def lookup(self, kind: str, key: str) -> RemoteItem | None:
        row = self._db.execute(
            "SELECT remote_id, fields FROM remote WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        if row is None:
            return None
        return RemoteItem(_kind(kind), key, row[0], orjson.loads(row[1]))

    def saw(self, kind: str, key: str) -> None:
        """The input holds this key: prune keeps it."""
        self._seen.append((kind, key))
        if len(self._seen) >= 1024:
            self._flush_seen()

    def unseen(self, kind: str) -> Iterator[RemoteItem]:
        """Listed objects the input did not hold: what `--full --prune` deletes."""
        self._flush_seen()
        rows = self._db.execute(
            "SELECT key, remote_id FROM remote WHERE kind = ? AND seen = 0 ORDER BY key", (kind,)
        ).fetchall()
        for key, remote_id in rows:
            yield RemoteItem(_kind(kind), key, remote_id)

    def has(self, kind: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM remote WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return row is not None

    def count(self, kind: str) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM remote WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _flush_seen(self) -> None:
        if not self._seen:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE remote SET seen = 1 WHERE kind = ? AND key = ?", self._seen
            )
        self._seen.clear()


def _kind(kind: str) -> Kind:
    return "asset" if kind == "asset" else "link"
