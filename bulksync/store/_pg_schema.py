"""The PostgreSQL state's schema, versioned, and the run lock as advisory locks.

``bulksync state migrate`` (and every run, as it opens the state) applies the migrations the
database lacks, inside one transaction holding a transaction-level advisory lock: N shards
starting at once migrate once, the others wait a moment and find it done. A database at a
newer version than this bulksync knows is refused rather than written with an old layout.

Keys, remote ids and upload ids are stored as ``bytea`` (UTF-8, lone surrogates kept): an
item key may hold characters PostgreSQL's ``text`` refuses (NUL), and ids must round-trip
byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from bulksync.spi._errors import ConfigError

# Each entry takes the schema from the version before it to its own number (its index + 1).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS bulksync_items (
        target    text NOT NULL,
        kind      text NOT NULL,
        key       bytea NOT NULL,
        hash      text NOT NULL,  -- of what was last pushed; '' while nothing ever was
        remote_id bytea,
        run_id    text NOT NULL,
        pushed_at double precision NOT NULL,
        result    text,
        PRIMARY KEY (target, kind, key)
    );
    CREATE TABLE IF NOT EXISTS bulksync_intents (
        target  text NOT NULL,
        kind    text NOT NULL,
        key     bytea NOT NULL,
        hash    text NOT NULL,
        file_id bytea,
        run_id  text NOT NULL,
        PRIMARY KEY (target, kind, key)
    );
    CREATE TABLE IF NOT EXISTS bulksync_seen (
        run_id text NOT NULL,
        kind   text NOT NULL,
        key    bytea NOT NULL,
        PRIMARY KEY (run_id, kind, key)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_MIGRATE_LOCK = "bulksync state migrate"


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key from text (stable across processes and hosts)."""
    raw = "\0".join(("bulksync", *parts)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def migrate(conn: Any) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; (version before, version after)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(_MIGRATE_LOCK),))
        conn.execute("CREATE TABLE IF NOT EXISTS bulksync_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM bulksync_schema").fetchone()
        before = int(row[0]) if row and row[0] is not None else 0
        if before > SCHEMA_VERSION:
            raise ConfigError(
                f"the PostgreSQL state is at schema version {before}, newer than this "
                f"bulksync knows ({SCHEMA_VERSION}): upgrade bulksync"
            )
        for version in range(before + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO bulksync_schema (version) VALUES (%s)", (version,))
    return before, SCHEMA_VERSION


def application_name() -> str:
    """What a second run's message names as the holder (pg_stat_activity)."""
    return f"bulksync pid {os.getpid()} on {socket.gethostname()}"[:63]


def take_run_lock(conn: Any, target: str, shard: str | None) -> None:
    """One run per job, or per shard of a job: session advisory locks, which PostgreSQL drops
    when the connection ends (a killed run's too, once the server sees its socket close).

    An unsharded run holds the target's lock exclusively; each shard holds it shared, plus
    its own shard's lock exclusively: two runs of one shard, or a whole run beside shards,
    are refused, while the N shards of one job run side by side."""
    whole = lock_key("state", target)
    if shard is None:
        wanted = [("pg_try_advisory_lock", whole, "this job")]
    else:
        own = lock_key("state", target, "shard", shard)
        wanted = [
            ("pg_try_advisory_lock_shared", whole, "this job"),
            ("pg_try_advisory_lock", own, f"shard {shard} of this job"),
        ]
    for function, key, what in wanted:
        (got,) = conn.execute(f"SELECT {function}(%s)", (key,)).fetchone()
        if not got:
            from bulksync.store._state_lock import StateInUse

            holder = _holder(conn, key)
            raise StateInUse(
                f"the PostgreSQL state of {what} is in use by {holder} (another bulksync "
                "run); wait for it, or give each process its own --shard"
            )


def _holder(conn: Any, key: int) -> str:
    # classid and objid are the key's high and low 32 bits; the shift wraps as the key's sign.
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
        (key,),
    ).fetchone()
    return str(row[0]) if row and row[0] else "another session"
