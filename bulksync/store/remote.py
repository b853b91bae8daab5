"""`--full`: what the target holds, listed through its paging and kept on disk, not in memory.

A full resync compares every input item with the target itself rather than with the state
store. The listing can run to millions of objects, so it goes into a throwaway SQLite file
(one transaction per page); the engine looks each input item up there, marks it seen, and
prune reads back what the input did not hold.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import anyio
import orjson

from bulksync.engine.client import EngineClient
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import RemoteItem, RemoteLister, RemotePage, RequestFailed
from bulksync.spi._errors import AuthError, ErrorClass, FatalTargetError, TransportError
from bulksync.spi._http import HttpRequest
from bulksync.spi._records import Kind

log = logging.getLogger("bulksync.store.remote")

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

MAX_PAGES = 10_000_000  # a bound on one scope's paging, far above any real catalogue


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


async def list_remote(
    client: EngineClient,
    lister: RemoteLister,
    kind: Kind,
    first_pages: Iterable[HttpRequest],
    index: RemoteIndex,
    retry: RetryPolicy,
) -> tuple[int, int]:
    """Page through every scope into ``index``; returns (pages, items) read.

    A page that keeps failing stops the run: a full resync that could not see part of the
    target would create what exists or, with prune, delete what it should keep.
    """
    pages = items = 0
    for first in first_pages:
        request: HttpRequest | None = first
        seen_urls: set[str] = set()
        while request is not None:
            if request.url in seen_urls or len(seen_urls) >= MAX_PAGES:
                raise FatalTargetError(f"listing {kind}s: the paging of {first.url} loops")
            seen_urls.add(request.url)
            page = await _read_page(client, lister, kind, request, retry)
            index.add(page.items)
            pages += 1
            items += len(page.items)
            request = page.next
    return pages, items


async def _read_page(
    client: EngineClient,
    lister: RemoteLister,
    kind: Kind,
    request: HttpRequest,
    retry: RetryPolicy,
) -> RemotePage:
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            response = await client.send(request)
            return lister.read_page(kind, request, response)
        except RequestFailed as exc:
            if exc.error_class is ErrorClass.AUTH:
                raise AuthError(exc.error.message) from None
            if exc.error_class is not ErrorClass.RETRYABLE:
                raise FatalTargetError(f"listing {kind}s failed: {exc.error.message}") from None
            failure, retry_after = exc.error.message, exc.retry_after
        except TransportError as exc:
            failure = str(exc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FatalTargetError(
                f"listing {kind}s: unreadable answer to {request.url}: {exc}"
            ) from None
        delay = retry.delay(attempt, retry_after)
        if not retry.allows(attempt, time.monotonic() - started, delay):
            raise FatalTargetError(f"listing {kind}s failed after {attempt} attempts: {failure}")
        log.info("listing page %s failed (%s); retrying in %.1f s", request.url, failure, delay)
        await anyio.sleep(delay)
