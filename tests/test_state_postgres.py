"""The PostgreSQL state (issue 19) on a real PostgreSQL 15 started for this module: the SQLite
store's semantics, the versioned schema, the per-job and per-shard run lock, and the DSN kept
secret."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pg_server import new_database, running_postgres

from bulksync.app.cli import main
from bulksync.store._backend import Confirmed, Intent
from bulksync.store._pg_schema import SCHEMA_VERSION
from bulksync.store._state_lock import StateInUse
from bulksync.store.postgres import PostgresStateStore

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_postgres() as dsn:
        yield dsn


@pytest.fixture
def dsn(server: str) -> str:
    return new_database(server, f"t{next(_names)}")


HOSTILE = "a\0b\udcff c'\"; DROP TABLE x; --"  # NUL and a lone surrogate: not PostgreSQL text


async def test_confirmations_intents_and_failures_round_trip(dsn: str) -> None:
    store = PostgresStateStore(dsn, "t", exclusive=True)
    await store.intend({("asset", "a1"): Intent("h1", "file-1"), ("link", HOSTILE): Intent("h2")})
    store.confirm("asset", "a1", "h1", "remote-1", "succeeded (created)")
    store.failed("link", "l2", "failed: HTTP422: bad", settled=True)
    store.saw("asset", "a1")
    store.close()  # a killed run's intent on HOSTILE stays: the next run looks it up

    again = PostgresStateStore(dsn, "t", exclusive=True)
    assert again.in_flight("link", HOSTILE) == Intent("h2", None)
    assert again.in_flight("asset", "a1") is None  # confirmed: settled
    known = again.lookup("asset", "a1")
    assert known is not None and (known.hash, known.remote_id) == ("h1", "remote-1")
    assert again.lookup("link", "l2") is None  # a failure never pushed: no hash
    assert again.last_result("link", "l2") == "failed: HTTP422: bad"
    assert again.count("asset") == 1 and list(again.keys("asset")) == ["a1"]
    again.confirm("link", HOSTILE, "h2", "r\0id")
    assert again.confirmed_among("link", [HOSTILE, "nope"]) == {HOSTILE}  # pending
    again.flush()
    assert again.confirmed_among("link", [HOSTILE, "nope"]) == {HOSTILE}  # committed
    again.saw("link", HOSTILE)
    # Prune candidates: what this run's input did not hold.
    assert sorted(again.unseen("asset")) == [("a1", "remote-1")]
    assert list(again.unseen("link")) == []
    again.forget("asset", "a1")
    assert again.lookup("asset", "a1") is None
    again.close()
    third = PostgresStateStore(dsn, "t")
    found = third.lookup("link", HOSTILE)
    assert found is not None and found.remote_id == "r\0id"
    assert third.in_flight("link", HOSTILE) is None
    third.close()


def test_one_run_per_job_or_per_shard(dsn: str) -> None:
    first = PostgresStateStore(dsn, "t", exclusive=True)
    with pytest.raises(StateInUse, match="in use by bulksync pid"):
        PostgresStateStore(dsn, "t", exclusive=True)
    with pytest.raises(StateInUse):
        PostgresStateStore(dsn, "t", shard="0/2", exclusive=True)  # a shard beside the whole
    other_target = PostgresStateStore(dsn, "u", exclusive=True)
    first.close()
    other_target.close()
    shards = [PostgresStateStore(dsn, "t", shard=f"{i}/2", exclusive=True) for i in range(2)]
    with pytest.raises(StateInUse, match="shard 1/2"):
        PostgresStateStore(dsn, "t", shard="1/2", exclusive=True)
    with pytest.raises(StateInUse):
        PostgresStateStore(dsn, "t", exclusive=True)
    reader = PostgresStateStore(dsn, "t")  # a dry run reads beside them
    reader.close()
    for shard in shards:
        shard.close()
    PostgresStateStore(dsn, "t", exclusive=True).close()  # released with the connections


def test_a_killed_holder_releases_the_lock(dsn: str) -> None:
    code = (
        "import sys, time\n"
        "from bulksync.store.postgres import PostgresStateStore\n"
        "s = PostgresStateStore(sys.argv[1], 't', shard='0/4', exclusive=True)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, dsn], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(StateInUse):
            PostgresStateStore(dsn, "t", shard="0/4", exclusive=True)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # The server notices the closed socket at once on a unix socket; bounded retries anyway.
    for attempt in range(50):
        try:
            PostgresStateStore(dsn, "t", shard="0/4", exclusive=True).close()
            break
        except StateInUse:
            if attempt == 49:
                raise
            import time

            time.sleep(0.1)


def job(tmp_path: Path, links: int) -> Path:
    lines = [orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(links)]
    (tmp_path / "links.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    path = tmp_path / "job.toml"
    path.write_text(
        """
[target]
kind = "fake"
[inputs]
links = "links.jsonl"
[state]
backend = "postgres"
dsn_env = "BULKSYNC_TEST_PG_DSN"
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return path


def test_migrate_then_run_and_resync_with_the_dsn_never_shown(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_dsn = dsn + " password=s3cr3t-pw"  # trust auth ignores it; it must show nowhere
    monkeypatch.setenv("BULKSYNC_TEST_PG_DSN", secret_dsn)
    config = job(tmp_path, 40)
    assert main(["state", "migrate", "--config", str(config)]) == 0
    assert main(["state", "migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"PostgreSQL state: schema migrated from version 0 to {SCHEMA_VERSION}",
        f"PostgreSQL state: schema at version {SCHEMA_VERSION}, up to date",
    ]
    assert main(["run", "--config", str(config)]) == 0
    assert main(["run", "--config", str(config)]) == 0
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert summary["skipped"] == 40 and summary["requests"] == 0, summary
    written = capsys.readouterr()
    everything = written.out + written.err
    everything += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert "s3cr3t-pw" not in everything and secret_dsn not in everything


def test_an_unreachable_database_is_one_line_without_the_dsn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    socket_dir = tmp_path / "nothing-listens-here"
    socket_dir.mkdir()
    monkeypatch.setenv(
        "BULKSYNC_TEST_PG_DSN", f"host={socket_dir} user=u password=s3cr3t-pw dbname=x"
    )
    assert main(["run", "--config", str(job(tmp_path, 3))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bulksync: cannot open the PostgreSQL state: "), err
    assert "s3cr3t-pw" not in err[0]


def test_shard_needs_the_shared_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = job(tmp_path, 3)
    config.write_text(config.read_text().replace('backend = "postgres"', ""), encoding="utf-8")
    assert main(["run", "--config", str(config), "--shard", "0/2"]) == 2
    assert 'backend = "postgres"' in capsys.readouterr().err
    assert main(["run", "--config", str(config), "--shard", "2/2"]) == 2
    assert main(["run", "--config", str(config), "--shard", "0/2", "--prune"]) == 2


def test_two_shards_of_a_fake_job_write_one_result_per_line_between_them(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKSYNC_TEST_PG_DSN", dsn)
    config = job(tmp_path, 50)
    with (tmp_path / "links.jsonl").open("ab") as extra:
        extra.write(b'{"from": "doc", "to": \n')  # line 51: unreadable, shard 0 reports it
    for shard in ("1/2", "0/2"):  # one after the other; the plan line reads its shard only
        assert main(["run", "--config", str(config), "--shard", shard]) in (0, 1)
    seen: list[int] = []
    for index in (0, 1):
        name = f"results.shard-{index}-of-2.jsonl"
        rows = [orjson.loads(x) for x in (tmp_path / "out" / name).read_bytes().splitlines()]
        seen += [r["line"] for r in rows]
        assert 10 < len(rows) < 42
        summary = orjson.loads(
            (tmp_path / "out" / name.replace(".jsonl", ".summary.json")).read_bytes()
        )
        assert summary["shard"] == {"index": index, "count": 2}
    assert sorted(seen) == list(range(1, 52))
    assert not (tmp_path / "out" / "results.jsonl").exists()  # no shard writes the plain one


def test_a_prefetched_chunk_is_looked_up_without_a_query_each(dsn: str) -> None:
    import psycopg

    store = PostgresStateStore(dsn, "t")
    for i in range(5):
        store.confirm("link", f"k{i}", f"h{i}", f"r{i}")
    store.close()
    store = PostgresStateStore(dsn, "t")
    store.prefetch("link", ["k0", "k1", "missing"])
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("DELETE FROM bulksync_items")  # what follows can only come from the chunk
    assert store.lookup("link", "k0") == Confirmed("h0", "r0")
    assert store.lookup("link", "k1") == Confirmed("h1", "r1")
    assert store.lookup("link", "missing") is None
    assert store.lookup("link", "k0") is None  # used once: asked again, the database answers
    assert store.lookup("link", "k2") is None  # not prefetched: asked of the database
    store.close()


def test_a_database_lost_mid_run_stops_the_run_with_one_line(tmp_path: Path) -> None:
    import os
    import signal
    import time

    with running_postgres() as own_server:  # its own server: this test kills it
        dsn = new_database(own_server, "lost")
        config = job(tmp_path, 20_000)
        text = config.read_text().replace(
            'kind = "fake"', 'kind = "fake"\n[fake]\nlatency_s = 0.01'
        )
        config.write_text(text, encoding="utf-8")
        env = {**os.environ, "BULKSYNC_TEST_PG_DSN": dsn}
        run = subprocess.Popen(
            [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        results = tmp_path / "out" / "results.jsonl"
        for _ in range(600):
            if results.exists() and results.read_bytes().count(b"\n") >= 200:
                break
            time.sleep(0.05)
        socket_dir = Path(dsn.split("host=")[1].split()[0])
        postmaster = (socket_dir.parent / "data" / "postmaster.pid").read_text().split()[0]
        os.kill(int(postmaster), signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    assert run.returncode == 2, err
    lines = [x for x in err.decode().splitlines() if not x.startswith("bulksync: plan: ")]
    assert len(lines) == 1 and lines[0].startswith("bulksync: PostgreSQL state: "), lines
    rows = [orjson.loads(x) for x in results.read_bytes().splitlines()]
    assert 200 <= len(rows) < 20_000
    assert sorted(r["line"] for r in rows) == list(range(1, len(rows) + 1))  # each read line once
