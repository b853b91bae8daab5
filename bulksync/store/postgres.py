"""The state in PostgreSQL: one state shared by the shards of a job on many machines.

Same semantics as the SQLite file (:mod:`.state`, through :class:`._backend.StateBackend`):
intents durable before the first request, confirmations and failures in batched
transactions, prune candidates from the keys seen. It uses psycopg 3's synchronous API on one
connection per process: the store's reads sit on the engine's admit path as SQLite's do, and
its batches go out as one pipelined ``executemany`` per table.

The DSN is a secret: it is read from the environment variable ``[state] dsn_env`` names,
registered with the redactor, and never put in a message; a failing connection is reported
with PostgreSQL's own reason only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bulksync.spi._errors import ConfigError
from bulksync.spi._redact import redact, register_secret
from bulksync.store._backend import (
    Batch,
    Confirmed,
    Intent,
    IntentRow,
    StateBackend,
    StateUnavailable,
)
from bulksync.store._pg_schema import application_name, migrate, take_run_lock

CONNECT_TIMEOUT_S = 10
# Keys looked up by the batch: one primary-key probe each, whatever the statistics say. The
# LIMIT keeps the planner from flattening the probe into a join, which with statistics older
# than the rows (a resync just after the first run) scans the target's rows once per key.
_AMONG = (
    "FROM unnest(%s::bytea[]) AS k(key) CROSS JOIN LATERAL (SELECT hash, remote_id "
    "FROM bulksync_items WHERE target = %s AND kind = %s AND key = k.key AND hash != '' "
    "LIMIT 1) AS i"
)


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _s(raw: bytes | memoryview | None) -> str | None:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


def _text(result: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates; a result is for people to read.
    return result.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")


def _many(cur: Any, sql: str, rows: list[Any]) -> None:
    if rows:  # an empty executemany still costs psycopg a pipeline sync, a round trip
        cur.executemany(sql, rows)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as columns, for unnest(): one array parameter per column."""
    return [[row[i] for row in rows] for i in range(width)]


def connect(dsn: str) -> Any:
    """An autocommit connection, or a :class:`ConfigError` naming the reason, never the DSN."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            '[state] backend = "postgres" needs psycopg: pip install "bulksync[postgres]"'
        ) from None
    register_secret(dsn)
    # psycopg warns as it tears down a pipeline cut by a lost connection: the same failure
    # the run reports in its one line, said again with a timestamp.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        raise ConfigError("the PostgreSQL DSN in [state] dsn_env is not valid") from None
    password = info.get("password")
    if isinstance(password, str) and password:
        register_secret(password)
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application_name(),
        )
        # The run lock lives as long as the server believes the session does: a host that
        # dies without closing its TCP connection must not keep it for the kernel's two hours.
        # (A unix socket ignores these; a killed process's socket closes at once anyway.)
        conn.execute(
            "SELECT set_config('tcp_keepalives_idle', '30', false), "
            "set_config('tcp_keepalives_interval', '10', false), "
            "set_config('tcp_keepalives_count', '3', false)"
        )
        return conn
    except psycopg.Error as exc:
        raise ConfigError(f"cannot open the PostgreSQL state: {reason(exc)}") from None


def reason(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(first)


class PostgresStateStore(StateBackend):
    """One target's items in PostgreSQL; ``shard`` ("I/N") names this run's part of a job."""

    def __init__(
        self,
        dsn: str,
        target: str,
        *,
        shard: str | None = None,
        exclusive: bool = False,
        flush_every: int = 256,
        flush_interval_s: float = 0.2,
    ) -> None:
        super().__init__(target, flush_every=flush_every, flush_interval_s=flush_interval_s)
        self.path = "PostgreSQL"  # what messages call it (never the DSN)
        self._conn = connect(dsn)
        try:
            with self._guard():
                migrate(self._conn)
                if exclusive:
                    take_run_lock(self._conn, target, shard)
                rows = self._conn.execute(
                    "SELECT kind, key, hash, file_id FROM bulksync_intents WHERE target = %s",
                    (target,),
                ).fetchall()
        except BaseException:
            self._conn.close()
            raise
        self._in_flight = {
            (kind, _s(key) or ""): Intent(digest, _s(file_id))
            for kind, key, digest, file_id in rows
        }
        self._open = set(self._in_flight)

    def _write_intents(self, rows: list[IntentRow]) -> None:
        kinds, keys, digests, files = _columns(rows, 4)
        # One statement, so its own transaction in autocommit: no BEGIN and COMMIT round trips.
        with self._guard():
            self._conn.execute(
                "INSERT INTO bulksync_intents (target, kind, key, hash, file_id, run_id) "
                "SELECT %s, k, y, h, f, %s "
                "FROM unnest(%s::text[], %s::bytea[], %s::text[], %s::bytea[]) AS t(k, y, h, f) "
                "ON CONFLICT (target, kind, key) DO UPDATE SET "
                "hash = excluded.hash, file_id = excluded.file_id, run_id = excluded.run_id",
                (
                    self.target,
                    self.run_id,
                    kinds,
                    [_b(k) for k in keys],
                    digests,
                    [_b(f) for f in files],
                ),
            )

    def _lookup_many(self, kind: str, keys: list[str]) -> Iterator[tuple[str, Confirmed]]:
        with self._guard():
            rows = self._conn.execute(
                "SELECT k.key, i.hash, i.remote_id " + _AMONG,
                ([_b(key) for key in keys], self.target, kind),
            ).fetchall()
        for key, digest, remote_id in rows:
            yield _s(key) or "", Confirmed(digest, _s(remote_id))

    def _lookup(self, kind: str, key: str) -> Confirmed | None:
        with self._guard():
            row = self._conn.execute(
                "SELECT hash, remote_id FROM bulksync_items "
                "WHERE target = %s AND kind = %s AND key = %s AND hash != ''",
                (self.target, kind, _b(key)),
            ).fetchone()
        return None if row is None else Confirmed(row[0], _s(row[1]))

    def _confirmed_among(self, kind: str, keys: list[str]) -> set[str]:
        with self._guard():
            rows = self._conn.execute(
                "SELECT k.key " + _AMONG,
                ([_b(key) for key in keys], self.target, kind),
            ).fetchall()
        return {_s(key) or "" for (key,) in rows}

    def last_result(self, kind: str, key: str) -> str | None:
        self.flush()
        with self._guard():
            row = self._conn.execute(
                "SELECT result FROM bulksync_items WHERE target = %s AND kind = %s AND key = %s",
                (self.target, kind, _b(key)),
            ).fetchone()
        return None if row is None else row[0]

    def _delete(self, kind: str, key: str) -> None:
        with self._guard(), self._conn.transaction():
            for table in ("bulksync_items", "bulksync_intents"):
                self._conn.execute(
                    f"DELETE FROM {table} WHERE target = %s AND kind = %s AND key = %s",
                    (self.target, kind, _b(key)),
                )

    def _write_batch(self, batch: Batch) -> None:
        """One statement per kind of write, its rows as arrays: a batch costs the server a
        handful of statements, not one per row."""
        target, run, now = self.target, self.run_id, batch.pushed_at
        pending = [
            (kind, _b(key), digest, _b(remote_id), _text(result))
            for (kind, key), (digest, remote_id, result) in batch.pending.items()
        ]
        failures = [
            (kind, _b(key), _text(result)) for (kind, key), result in batch.failures.items()
        ]
        # Pipelined: the transaction's statements go out together, one round trip in all.
        with (
            self._guard(),
            self._conn.pipeline(),
            self._conn.transaction(),
            self._conn.cursor() as cur,
        ):
            if pending:
                cur.execute(
                    "INSERT INTO bulksync_items (target, kind, key, hash, remote_id, run_id, "
                    "pushed_at, result) SELECT %s, k, y, h, r, %s, %s, res FROM unnest(%s::text[], "
                    "%s::bytea[], %s::text[], %s::bytea[], %s::text[]) AS t(k, y, h, r, res) "
                    "ON CONFLICT (target, kind, key) DO UPDATE SET hash = excluded.hash, "
                    "remote_id = COALESCE(excluded.remote_id, bulksync_items.remote_id), "
                    "run_id = excluded.run_id, pushed_at = excluded.pushed_at, "
                    "result = excluded.result",
                    (target, run, now, *_columns(pending, 5)),
                )
            if failures:
                # A failure keeps the hash and id of the last push (see the SQLite store).
                cur.execute(
                    "INSERT INTO bulksync_items (target, kind, key, hash, remote_id, run_id, "
                    "pushed_at, result) SELECT %s, k, y, '', NULL, %s, 0, res "
                    "FROM unnest(%s::text[], %s::bytea[], %s::text[]) AS t(k, y, res) "
                    "ON CONFLICT (target, kind, key) DO UPDATE SET result = excluded.result",
                    (target, run, *_columns(failures, 3)),
                )
            _many(
                cur,
                "UPDATE bulksync_items SET hash = '', remote_id = NULL "
                "WHERE target = %s AND kind = %s AND key = %s",
                [(target, kind, _b(key)) for kind, key in batch.absent],
            )
            if batch.seen:
                kinds, keys = _columns(batch.seen, 2)
                cur.execute(
                    "INSERT INTO bulksync_seen (run_id, kind, key) SELECT %s, k, y "
                    "FROM unnest(%s::text[], %s::bytea[]) AS t(k, y) ON CONFLICT DO NOTHING",
                    (run, kinds, [_b(k) for k in keys]),
                )
            if batch.settled:
                kinds, keys = _columns(list(batch.settled), 2)
                cur.execute(
                    "DELETE FROM bulksync_intents n USING unnest(%s::text[], %s::bytea[]) "
                    "AS t(k, y) WHERE n.target = %s AND n.kind = t.k AND n.key = t.y",
                    (kinds, [_b(k) for k in keys], target),
                )
            _many(
                cur,
                "UPDATE bulksync_intents SET file_id = NULL "
                "WHERE target = %s AND kind = %s AND key = %s",
                [(target, kind, _b(key)) for kind, key in batch.stale_uploads],
            )

    def unseen(self, kind: str) -> Iterator[tuple[str, str | None]]:
        self.flush()
        with self._guard():
            rows = self._conn.execute(
                "SELECT i.key, i.remote_id FROM bulksync_items i "
                "WHERE i.target = %(t)s AND i.kind = %(k)s AND i.hash != '' "
                "AND NOT EXISTS (SELECT 1 FROM bulksync_seen s "
                "WHERE s.run_id = %(r)s AND s.kind = i.kind AND s.key = i.key) "
                "UNION ALL "
                "SELECT n.key, NULL FROM bulksync_intents n "
                "WHERE n.target = %(t)s AND n.kind = %(k)s "
                "AND NOT EXISTS (SELECT 1 FROM bulksync_seen s "
                "WHERE s.run_id = %(r)s AND s.kind = n.kind AND s.key = n.key) "
                "AND NOT EXISTS (SELECT 1 FROM bulksync_items i WHERE i.target = n.target "
                "AND i.kind = n.kind AND i.key = n.key AND i.hash != '')",
                {"t": self.target, "k": kind, "r": self.run_id},
            ).fetchall()
        for key, remote_id in rows:
            yield _s(key) or "", _s(remote_id)

    def keys(self, kind: str) -> Iterator[str]:
        self.flush()
        with self._guard(), self._conn.cursor(name=None) as cur:
            cur.execute(
                "SELECT key FROM bulksync_items WHERE target = %s AND kind = %s AND hash != ''",
                (self.target, kind),
            )
            for (key,) in cur:
                yield _s(key) or ""

    def count(self, kind: str) -> int:
        self.flush()
        with self._guard():
            row = self._conn.execute(
                "SELECT count(*) FROM bulksync_items "
                "WHERE target = %s AND kind = %s AND hash != ''",
                (self.target, kind),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        try:
            self.flush()
            if not self.broken:  # else the error that broke it was said already
                with self._guard():
                    self._conn.execute(
                        "DELETE FROM bulksync_seen WHERE run_id = %s", (self.run_id,)
                    )
        finally:
            self._conn.close()  # the session's advisory locks go with it

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A lost or refusing database stops the run with one line, not a traceback."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            self.broken = True
            raise StateUnavailable(f"PostgreSQL state: {reason(exc)}") from None
