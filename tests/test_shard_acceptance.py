"""Sharded jobs on the PostgreSQL state (issue 19), as real `bulksync run --shard I/N`
processes against the sandbox with its hostile behaviours on (repeat creates accepted, writes
applied then answered 5xx, dropped, or answered with garbage):

- one 20,000-link job split 0/4 ... 3/4: every link on the sandbox exactly once, one shard
  killed with SIGKILL mid-run and run again: nothing lost, nothing twice; a resync of all four
  shards writes nothing;
- assets and links split across shards: no link is sent before its asset exists, whether the
  asset's shard is late (the link waits) or never comes (the link ends "skipped: dependency
  not yet pushed" and the next run pushes it).
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.abc import Process
from pg_server import new_database, running_postgres

from bulksync.app.demo import tiny_png
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.store.shard import Shard

pytestmark = pytest.mark.slow

TOKEN = "BULKSYNC_TEST_SHARD_TOKEN"
DSN_ENV = "BULKSYNC_TEST_SHARD_PG_DSN"
SHARDS = 4
HOSTILE = {
    "quable.duplicate_links": "allow",  # a repeat create makes a second link: it would show
    "faults.seed": "19",
    "faults.drop_after_write_rate": "0.01",
    "faults.applied_error_rate": "0.01",
    "faults.garbage_rate": "0.01",
}
_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_postgres() as dsn:
        yield dsn


@pytest.fixture
def dsn(server: str) -> str:
    return new_database(server, f"shards{next(_names)}")


def write_job(folder: Path, url: str, *, assets: bool, wait_s: float = 60.0) -> Path:
    config = folder / "job.toml"
    inputs = 'links = "links.jsonl"' + ('\nassets = "assets.jsonl"' if assets else "")
    config.write_text(
        f"""
[target]
kind = "quable"
base_url = "{url}"
token_env = "{TOKEN}"
[quable]
[inputs]
{inputs}
[limits]
rate = [[10000000, 600]]
pace = 5000.0
concurrency = 8
[state]
backend = "postgres"
dsn_env = "{DSN_ENV}"
dependency_wait_s = {wait_s}
[output]
results = "out/results.jsonl"
progress = false
stats_interval = 0
plan = false
""",
        encoding="utf-8",
    )
    return config


def write_lines(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


async def start(config: Path, shard: int, dsn: str) -> Process:
    env = {**os.environ, TOKEN: "sandbox-token", DSN_ENV: dsn}
    return await anyio.open_process(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config), "--shard", f"{shard}/4"],
        stdout=None,
        stderr=None,
        env=env,
    )


async def run_shards(config: Path, shards: Sequence[int], dsn: str) -> list[int]:
    processes = [await start(config, shard, dsn) for shard in shards]
    return [await process.wait() for process in processes]


def shard_results(folder: Path, shard: int) -> list[dict[str, Any]]:
    raw = (folder / "out" / f"results.shard-{shard}-of-4.jsonl").read_bytes()
    return [orjson.loads(line) for line in raw.splitlines()]


def all_results(folder: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every shard's results by (kind, line): each line once, from exactly one shard."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for shard in range(SHARDS):
        for row in shard_results(folder, shard):
            where = (row["kind"], row["line"])
            assert where not in merged, f"{where} has a result from two shards"
            merged[where] = row
    return merged


def link_triples(sandbox: Any) -> list[tuple[str, str, str]]:
    links = sandbox.state.store.quable.links.values()
    return [(x["origin"], x["linkType"], x["target"]) for x in links]


async def test_a_20000_link_job_in_4_shards_survives_a_sigkill_and_resyncs_with_no_write(
    tmp_path: Path, dsn: str
) -> None:
    settings = SandboxSettings().with_overrides(
        {"quable.rate_limit.windows": "10000000/600", "quable.seed_documents": "300", **HOSTILE}
    )
    links = [
        {"from": f"doc-{i // 100 + 1:05d}", "to": f"doc-{i % 100 + 201:05d}", "type": "t"}
        for i in range(20_000)
    ]
    write_lines(tmp_path / "links.jsonl", links)
    wanted = sorted((x["from"], x["type"], x["to"]) for x in links)
    mine = [sum(Shard(i, SHARDS).holds(_key(x)) for x in links) for i in range(SHARDS)]
    assert min(mine) > 4000  # the hash spreads the job evenly enough

    async with running_sandbox(settings) as sandbox:
        config = write_job(tmp_path, sandbox.url, assets=False)
        with anyio.fail_after(600):
            processes = [await start(config, shard, dsn) for shard in range(SHARDS)]
            # Kill shard 2 once it has pushed part of its links, without warning.
            victim = processes[2]
            results_2 = tmp_path / "out" / "results.shard-2-of-4.jsonl"
            for _ in range(6000):
                if results_2.exists() and results_2.read_bytes().count(b"\n") >= 1500:
                    break
                if victim.returncode is not None:
                    break
                await anyio.sleep(0.05)
            assert victim.returncode is None, "shard 2 ended before it could be killed"
            victim.send_signal(signal.SIGKILL)
            codes = [await process.wait() for process in processes]
            assert codes[2] == -signal.SIGKILL
            assert [c for i, c in enumerate(codes) if i != 2] == [0, 0, 0], codes
            killed_lines = len(shard_results(tmp_path, 2))
            assert killed_lines < mine[2]  # it was cut off mid-run

            assert await run_shards(config, [2], dsn) == [0]
        results = all_results(tmp_path)
        assert sorted(results) == [("link", i + 1) for i in range(20_000)]
        assert {r["status"] for r in results.values()} <= {"succeeded", "skipped"}
        assert sorted(link_triples(sandbox)) == wanted  # every link once: none lost, none twice
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["faults_injected"]["total"] >= 50, snapshot["faults_injected"]
        assert snapshot["duplicate_create_attempts"]["total"] == 0

        writes = snapshot["writes_applied"]["total"]
        with anyio.fail_after(300):
            assert await run_shards(config, range(SHARDS), dsn) == [0] * SHARDS
        after = sandbox.state.stats.snapshot()
        assert after["writes_applied"]["total"] == writes  # the resync wrote nothing
        resync = all_results(tmp_path)
        assert {r["status"] for r in resync.values()} == {"skipped"}
        assert len(resync) == 20_000


def _key(link: dict[str, Any]) -> str:
    from bulksync.spi._records import link_key

    return link_key(link["from"], link["to"], link["type"])


def media_job(folder: Path, assets: int, links: int) -> list[dict[str, Any]]:
    (folder / "media").mkdir(parents=True)
    rows = []
    for i in range(assets):
        (folder / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i % 9, 8, i))
        rows.append({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": "dam_sort"})
    write_lines(folder / "assets.jsonl", rows)
    link_rows = [
        {"from": f"doc-{i // 10 + 1:05d}", "to": f"asset-{i % assets}", "type": "t", "sequence": i}
        for i in range(links)
    ]
    write_lines(folder / "links.jsonl", link_rows)
    return link_rows


def refused_links(sandbox: Any) -> int:
    """Link creates the sandbox refused for a missing origin or target (its 400)."""
    outcomes = sandbox.state.stats.snapshot()["requests"].get("POST /api/links", {})
    return sum(n for outcome, n in outcomes.items() if outcome.endswith("400"))


def link_sent_to_foreign_asset(links: list[dict[str, Any]]) -> int:
    return sum(Shard(0, SHARDS).of(_key(x)) != Shard(0, SHARDS).of(x["to"]) for x in links)


async def test_a_link_waits_for_its_asset_pushed_by_a_late_shard(tmp_path: Path, dsn: str) -> None:
    settings = SandboxSettings().with_overrides(
        {
            "quable.rate_limit.windows": "10000000/600",
            "quable.classifications": "dam_sort",
            **HOSTILE,
        }
    )
    links = media_job(tmp_path, assets=120, links=400)
    assert link_sent_to_foreign_asset(links) > 200  # most links cross shards
    async with running_sandbox(settings) as sandbox:
        config = write_job(tmp_path, sandbox.url, assets=True, wait_s=120.0)
        with anyio.fail_after(300):
            early = [await start(config, shard, dsn) for shard in (0, 1, 3)]
            await anyio.sleep(3)  # shard 2's assets come late: links to them must wait
            late = await start(config, 2, dsn)
            codes = [await p.wait() for p in [*early, late]]
        assert codes == [0] * SHARDS, codes
        results = all_results(tmp_path)
        assert len(results) == 120 + 400
        assert {r["status"] for r in results.values()} == {"succeeded"}
        assert refused_links(sandbox) == 0  # no link went before its asset existed
        assert len(link_triples(sandbox)) == 400
        assert sandbox.state.stats.snapshot()["duplicate_create_attempts"]["total"] == 0


async def test_a_link_whose_asset_shard_never_ran_is_skipped_then_pushed_by_the_next_run(
    tmp_path: Path, dsn: str
) -> None:
    settings = SandboxSettings().with_overrides(
        {"quable.rate_limit.windows": "10000000/600", "quable.classifications": "dam_sort"}
    )
    links = media_job(tmp_path, assets=60, links=200)
    async with running_sandbox(settings) as sandbox:
        # Long enough for the shards that run to push their assets, which the links of the
        # others wait for; a link to an asset of shard 2, which does not run, waits it all.
        config = write_job(tmp_path, sandbox.url, assets=True, wait_s=15.0)
        with anyio.fail_after(300):
            assert await run_shards(config, (0, 1, 3), dsn) == [0, 0, 0]
            waiting = [
                r
                for shard in (0, 1, 3)
                for r in shard_results(tmp_path, shard)
                if r["status"] == "skipped"
            ]
            held = [x for x in links if Shard(2, SHARDS).holds(x["to"])]
            held = [x for x in held if not Shard(2, SHARDS).holds(_key(x))]
            assert len(waiting) == len(held) > 0
            for row in waiting:
                assert row["reason"].startswith("dependency not yet pushed: asset 'asset-")
                assert row["reason"].endswith("(shard 2/4)")
            assert refused_links(sandbox) == 0
            assert await run_shards(config, (2,), dsn) == [0]
            assert await run_shards(config, (0, 1, 3), dsn) == [0, 0, 0]
        results = all_results(tmp_path)
        assert {r["status"] for r in results.values()} <= {"succeeded", "skipped"}
        assert not [r for r in results.values() if "dependency" in str(r.get("reason"))]
        assert refused_links(sandbox) == 0
        assert sorted(link_triples(sandbox)) == sorted((x["from"], "t", x["to"]) for x in links)
