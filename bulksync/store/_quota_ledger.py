"""The quota ledger: requests sent to each target instance, remembered across runs.

A daily quota (Quable's 300,000 a day) is the target's, not one run's: a run started an hour
after another that used 200,000 has 100,000 left. The ledger keeps, per instance (the target
kind and its normalised base URL, never a credential), request counts in fixed buckets over the
longest window, and the next run's budget starts from it. It is an SQLite file of its own, per
user by default, so runs of different jobs (different state files) to the same instance on one
machine share it; concurrent runs add to it in short WAL transactions, never overwriting one
another's counts.

Space is constant: a bucket is 1/1440 of the longest window (a minute for a day, at least a
second), so an instance holds about 1,440 buckets per bucket width in use; finer buckets another
job left are folded into the coarsest in use once they are older than this run's window, and
buckets older than the longest window any job declared for the instance are deleted.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bulksync.spi._errors import ConfigError

MAX_BUCKETS = 1440
# How much longer than a window a request is remembered (as the budget's WINDOW_MARGIN).
MARGIN = 0.01

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_buckets (
    instance TEXT NOT NULL,     -- "quable https://acme.quable.com": kind and base URL
    width    INTEGER NOT NULL,  -- seconds
    start    INTEGER NOT NULL,  -- UTC epoch seconds, a multiple of width
    count    INTEGER NOT NULL,  -- requests sent in [start, start + width)
    PRIMARY KEY (instance, width, start)
) WITHOUT ROWID;
-- The longest window any job declared for the instance, and the bucket width it uses: how
-- long buckets are kept, and what finer ones are folded into.
CREATE TABLE IF NOT EXISTS quota_instances (
    instance  TEXT PRIMARY KEY,
    horizon_s REAL NOT NULL,
    width     INTEGER NOT NULL
) WITHOUT ROWID;
"""

_ADD = (
    "INSERT INTO quota_buckets (instance, width, start, count) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (instance, width, start) DO UPDATE SET count = count + excluded.count"
)
# A fine bucket goes into the coarse bucket holding its last second, whose end is never
# earlier than its own: folded requests are remembered longer, never shorter.
_FOLD = (
    "INSERT INTO quota_buckets (instance, width, start, count) "
    "SELECT instance, :coarse, ((start + width - 1) / :coarse) * :coarse AS folded, SUM(count) "
    "FROM quota_buckets WHERE instance = :instance AND width < :coarse AND start + width < :cut "
    "GROUP BY folded "
    "ON CONFLICT (instance, width, start) DO UPDATE SET count = count + excluded.count"
)


def default_ledger_path() -> Path:
    """``$XDG_STATE_HOME/bulksync/quota-ledger.sqlite`` (``~/.local/state`` without it)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bulksync" / "quota-ledger.sqlite"


def bucket_width(longest_s: float) -> int:
    """Whole seconds, so that at most MAX_BUCKETS cover the longest window."""
    return max(1, math.ceil(longest_s / MAX_BUCKETS))


class QuotaLedger:
    """One instance's request counts: :meth:`history` to seed a budget, :meth:`add` as
    requests go (buffered), :meth:`flush` now and then (one short transaction)."""

    def __init__(
        self,
        path: Path,
        instance: str,
        longest_s: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.instance = instance
        self.width = bucket_width(longest_s)
        self.horizon_s = longest_s * (1 + MARGIN) + self.width
        self._clock = clock
        self._pending: dict[int, int] = {}  # bucket start -> requests not yet written
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")  # another run mid-flush
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._declare()  # from the start: a run with a shorter window keeps ours
                self._forget_the_past()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the quota ledger {path}: {exc}") from None

    def history(self) -> list[tuple[float, int]]:
        """``(bucket end, requests)`` over this run's longest window, oldest first, every
        width merged (several jobs may have written with different widths)."""
        cut = self._clock() - self.horizon_s
        rows = self._query(
            "SELECT start + width AS stop, SUM(count) FROM quota_buckets "
            "WHERE instance = ? AND start + width > ? GROUP BY stop ORDER BY stop",
            (self.instance, cut),
        )
        return [(float(stop), int(count)) for stop, count in rows]

    def add(self, count: int, at: float | None = None) -> None:
        """``count`` requests sent at (or just before) ``at``, for the next :meth:`flush`."""
        if count <= 0:
            return
        when = self._clock() if at is None else at
        start = math.floor(when / self.width) * self.width
        self._pending[start] = self._pending.get(start, 0) + count

    def flush(self) -> None:
        """Write what was added, fold and prune: one transaction, however many buckets."""
        pending, self._pending = self._pending, {}
        now = self._clock()
        rows = [(self.instance, self.width, start, n) for start, n in pending.items()]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_ADD, rows)
                horizon, coarse = self._declare()
                own_cut = math.floor(now - self.horizon_s)
                self._db.execute(
                    _FOLD, {"instance": self.instance, "coarse": coarse, "cut": own_cut}
                )
                self._db.execute(
                    "DELETE FROM quota_buckets WHERE instance = ? AND width < ? "
                    "AND start + width < ?",
                    (self.instance, coarse, own_cut),
                )
                self._db.execute(
                    "DELETE FROM quota_buckets WHERE instance = ? AND start + width < ?",
                    (self.instance, now - horizon),
                )
        except sqlite3.Error as exc:
            # Kept for the next flush: a busy ledger must not lose the count.
            for start, n in pending.items():
                self._pending[start] = self._pending.get(start, 0) + n
            raise ConfigError(f"quota ledger {self.path}: {exc}") from None

    def _declare(self) -> tuple[float, int]:
        """Record this run's window for the instance; the longest horizon and widest bucket
        any job declared, which decide what is kept."""
        self._db.execute(
            "INSERT INTO quota_instances (instance, horizon_s, width) VALUES (?, ?, ?) "
            "ON CONFLICT (instance) DO UPDATE SET "
            "horizon_s = MAX(horizon_s, excluded.horizon_s), width = MAX(width, excluded.width)",
            (self.instance, self.horizon_s, self.width),
        )
        row = self._db.execute(
            "SELECT horizon_s, width FROM quota_instances WHERE instance = ?", (self.instance,)
        ).fetchone()
        return float(row[0]), int(row[1])

    def _forget_the_past(self) -> None:
        """Every instance's buckets past its horizon, and instances with none left: those no
        run writes again (a sandbox on a random port, a retired target) would stay forever."""
        self._db.execute(
            "DELETE FROM quota_buckets WHERE start + width < ? - (SELECT i.horizon_s FROM "
            "quota_instances i WHERE i.instance = quota_buckets.instance)",
            (self._clock(),),
        )
        self._db.execute(
            "DELETE FROM quota_instances WHERE instance != ? AND NOT EXISTS "
            "(SELECT 1 FROM quota_buckets b WHERE b.instance = quota_instances.instance)",
            (self.instance,),
        )

    def rows(self) -> int:
        """Buckets kept for this instance (what the constant-space promise is about)."""
        found = self._query(
            "SELECT COUNT(*) FROM quota_buckets WHERE instance = ?", (self.instance,)
        )
        return int(found[0][0])

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"quota ledger {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the file; what was added and not flushed is lost (flush first)."""
        self._db.close()
