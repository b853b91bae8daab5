"""Resume after SIGKILL and resync against the sandbox: nothing lost, nothing written twice."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulksync.app.demo import tiny_png
from bulksync.engine._engine import FEED_BATCH
from bulksync.sandbox import SandboxSettings, running_sandbox

LINKS = 20_000
CONCURRENCY = 16
FLUSH_EVERY, FLUSH_INTERVAL_S = 256, 0.2  # StateStore's defaults
UPLOADERS = 4


def write_inputs(folder: Path) -> list[tuple[str, str, str]]:
    triples = []
    for i in range(LINKS):
        origin, rest = divmod(i, 300)
        target, kind = divmod(rest, 3)
        target = (origin + 1 + target) % 100
        triples.append((f"doc-{origin + 1:05d}", f"type-{kind}", f"doc-{target + 1:05d}"))
    assert len(set(triples)) == LINKS
    rows = [{"from": o, "to": t, "type": k, "sequence": 1} for o, k, t in triples]
    (folder / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return triples


def job(folder: Path, url: str) -> Path:
    config = folder / "job.toml"
    config.write_text(
        f"""
[target]
kind = "quable"
base_url = "{url}"
token_env = "RESUME_TEST_QUABLE_TOKEN"
[inputs]
links = "links.jsonl"
[limits]
rate = [[100000, 1]]
concurrency = {CONCURRENCY}
[output]
results = "results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return config


def link_posts(stats: dict[str, Any]) -> int:
    return sum(stats["requests"].get("POST /api/links", {}).values())


async def run_killed(
    config: Path, env: dict[str, str], kill_at: int | None, progress: Callable[[], int]
) -> int | None:
    """Run the job in its own process, SIGKILLed once ``progress()`` reaches ``kill_at``
    (never when None); its return code."""
    process = await anyio.open_process(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)], env=env
    )
    try:
        with anyio.fail_after(120):
            while process.returncode is None:
                if kill_at is not None and progress() >= kill_at:
                    process.send_signal(signal.SIGKILL)
                    break
                await anyio.sleep(0.005)
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode


def link_lookups(stats: dict[str, Any]) -> int:
    return sum(stats["requests"].get("GET /api/links", {}).values())


async def test_five_sigkills_lose_and_duplicate_nothing_without_the_servers_help(
    tmp_path: Path,
) -> None:
    """The sandbox accepts identical links (no 409), as the docs allow: only the state's
    intents keep a rerun from creating again what the killed run had created."""
    triples = write_inputs(tmp_path)
    settings = SandboxSettings().with_overrides(
        {
            "quable.seed_documents": "100",
            "quable.latency.fixed_ms": "2",
            "quable.rate_limit.windows": "",
            "quable.duplicate_links": "allow",
        }
    )
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    redone: list[int] = []
    window = CONCURRENCY  # what a killed run can have in flight: its workers' requests
    async with running_sandbox(settings) as sandbox:
        config = job(tmp_path, sandbox.url)
        store = sandbox.state.store.quable
        for kill_at in (2_000, 6_000, 10_000, 14_000, 18_000, None):
            links_before = len(store.links)
            before = sandbox.state.stats.snapshot()
            started = time.monotonic()
            returncode = await run_killed(config, env, kill_at, lambda: len(store.links))
            after = sandbox.state.stats.snapshot()
            created = len(store.links) - links_before
            posts = link_posts(after) - link_posts(before)
            lookups = link_lookups(after) - link_lookups(before)
            # A POST that created nothing: one the kill cut off before the server applied it.
            # With the server accepting duplicates, a create sent twice would show up below as
            # a store holding more links than the input.
            redone.append(posts - created)
            assert posts - created <= CONCURRENCY, (kill_at, posts, created)
            # This run looked up only what the killed one left unsettled: the jobs it had
            # recorded (read ahead, queued or in flight), and results not yet committed.
            assert lookups <= window, (kill_at, lookups, window)
            rate = created / max(time.monotonic() - started, 0.1)
            recorded = FEED_BATCH + 2 * CONCURRENCY + CONCURRENCY  # read ahead, queued, sent
            window = recorded + FLUSH_EVERY + math.ceil(rate * FLUSH_INTERVAL_S)
            if kill_at is None:
                assert returncode == 0
            else:
                assert returncode == -signal.SIGKILL
                assert kill_at <= len(store.links) < LINKS
        triples_in_store = [(x["origin"], x["linkType"], x["target"]) for x in store.links.values()]
    assert len(triples_in_store) == LINKS and set(triples_in_store) == set(triples)
    results = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    assert len(results) == LINKS and all(r["status"] in ("succeeded", "skipped") for r in results)


async def test_resync_writes_nothing_when_unchanged_and_only_the_changed_one_percent(
    tmp_path: Path,
) -> None:
    (tmp_path / "media").mkdir()
    assets = []
    for i in range(100):
        (tmp_path / "media" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 40)
        assets.append({"id": f"a{i}", "file": f"media/{i}.png", "attributes": {"n": i}})
    (tmp_path / "assets.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in assets))
    (tmp_path / "links.jsonl").write_bytes(
        b"".join(
            orjson.dumps({"from": "doc-00001", "to": f"a{i}", "type": "asset", "sequence": i})
            + b"\n"
            for i in range(100)
        )
    )
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = job(tmp_path, sandbox.url)
        config.write_text(
            config.read_text().replace(
                'links = "links.jsonl"', 'assets = "assets.jsonl"\nlinks = "links.jsonl"'
            )
        )
        env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}

        async def run_and_count_writes() -> int:
            before = sandbox.state.stats.snapshot()["requests"]
            with anyio.fail_after(60):
                done = await anyio.run_process(
                    [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
                    env=env,
                    check=False,
                )
            assert done.returncode == 0, done.stderr
            after = sandbox.state.stats.snapshot()["requests"]
            return sum(
                sum(after[route].values()) - sum(before.get(route, {}).values())
                for route in after
                if route.split(" ")[0] in ("POST", "PUT", "DELETE", "PATCH")
            )

        assert await run_and_count_writes() == 300  # 100 uploads, 100 creates, 100 links
        assert await run_and_count_writes() == 0
        assets[7]["attributes"] = {"n": "changed"}
        (tmp_path / "assets.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in assets))
        assert await run_and_count_writes() == 2  # the changed asset: its upload and its PUT
        assert sandbox.state.store.quable.assets["a7"]["attributes"] == {"n": "changed"}
        duplicates = sandbox.state.stats.snapshot()["duplicate_create_attempts"]["total"]
    assert duplicates == 0  # the update went straight to PUT, no 409 first


async def test_dry_run_sends_nothing_and_its_plan_is_what_the_next_run_does(tmp_path: Path) -> None:
    rows = [
        {"from": "doc-00001", "to": f"doc-{i + 2:05d}", "type": "ref", "sequence": i}
        for i in range(30)
    ]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = job(tmp_path, sandbox.url)
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(config)]
        with anyio.fail_after(60):
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
            rows.append({"from": "doc-00001", "to": "doc-00090", "type": "ref", "sequence": 99})
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            before = sandbox.state.stats.snapshot()["requests_total"]
            dry = await anyio.run_process([*command, "--dry-run"], env=env, check=False)
            assert sandbox.state.stats.snapshot()["requests_total"] == before  # not one request
            assert b"links: 1 create, 0 update, 30 skip, 0 invalid, 0 delete" in dry.stdout
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
    summary = orjson.loads((tmp_path / "results.summary.json").read_bytes())
    # One push, and the preflight read every run sends first.
    assert (summary["succeeded"], summary["skipped"], summary["requests"]) == (1, 30, 2)


async def test_prune_deletes_the_links_and_assets_that_left_the_input(tmp_path: Path) -> None:
    assets = [{"id": f"r{i}", "remotePath": f"https://img.example.com/{i}.jpg"} for i in range(40)]
    links = [
        {"from": "doc-00001", "to": f"r{i}", "type": "asset", "sequence": i} for i in range(40)
    ]

    def write(skip_assets: set[int], skip_links: set[int]) -> None:
        keep_assets = [a for i, a in enumerate(assets) if i not in skip_assets]
        keep_links = [x for i, x in enumerate(links) if i not in skip_links]
        (tmp_path / "assets.jsonl").write_bytes(
            b"".join(orjson.dumps(a) + b"\n" for a in keep_assets)
        )
        (tmp_path / "links.jsonl").write_bytes(
            b"".join(orjson.dumps(x) + b"\n" for x in keep_links)
        )

    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    write(set(), set())
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = job(tmp_path, sandbox.url)
        config.write_text(
            config.read_text().replace(
                'links = "links.jsonl"', 'assets = "assets.jsonl"\nlinks = "links.jsonl"'
            )
        )
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(config), "--prune"]
        store = sandbox.state.store.quable
        with anyio.fail_after(60):
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
            assert len(store.assets) == 40 and len(store.links) == 40
            write({39}, {3, 4, 39})  # one asset and the three links gone from the input
            done = await anyio.run_process([*command, "--max-delete", "5"], env=env, check=False)
            assert done.returncode == 0, done.stderr
            assert sorted(store.assets) == sorted(f"r{i}" for i in range(39))
            assert sorted(x["target"] for x in store.links.values()) == sorted(
                f"r{i}" for i in range(40) if i not in (3, 4, 39)
            )
            # Half the catalogue gone: the guard holds and nothing is deleted.
            write(set(range(20)) | {39}, set(range(20)) | {3, 4, 39})
            refused = await anyio.run_process(command, env=env, check=False)
            assert refused.returncode == 2 and b"would delete 38 of 76 items" in refused.stderr
            assert len(store.assets) == 39 and len(store.links) == 37


async def test_a_changed_v5_link_is_replaced_with_its_new_sequence(tmp_path: Path) -> None:
    rows = [
        {"from": "doc-00001", "to": f"doc-{i + 2:05d}", "type": "ref", "sequence": i}
        for i in range(10)
    ]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    async with running_sandbox(SandboxSettings()) as sandbox:
        command = [
            sys.executable,
            "-m",
            "bulksync",
            "run",
            "--config",
            str(job(tmp_path, sandbox.url)),
        ]
        with anyio.fail_after(60):
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
            rows[4]["sequence"] = 40
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            before = sandbox.state.stats.snapshot()["requests"]
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
            after = sandbox.state.stats.snapshot()["requests"]
        links = list(sandbox.state.store.quable.links.values())
    writes = {
        route: sum(after[route].values()) - sum(before.get(route, {}).values())
        for route in after
        if route.startswith(("POST", "DELETE"))
    }
    assert {route: n for route, n in writes.items() if n} == {
        "DELETE /api/links/{id}": 1,
        "POST /api/links": 1,
    }
    assert len(links) == 10
    assert {x["target"]: x["sequence"] for x in links}["doc-00006"] == 40
    actions = [
        orjson.loads(x).get("action")
        for x in (tmp_path / "results.jsonl").read_bytes().splitlines()
    ]
    assert actions.count("updated") == 1


async def test_prune_of_links_pushed_through_v4(tmp_path: Path) -> None:
    rows = [
        {"from": "doc-00001", "to": f"doc-{i + 2:05d}", "type": "ref", "sequence": i}
        for i in range(40)
    ]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = job(tmp_path, sandbox.url)
        config.write_text(config.read_text() + '[quable]\nlinks_api = "v4"\n')
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(config), "--prune"]
        with anyio.fail_after(60):
            assert (await anyio.run_process(command, env=env, check=False)).returncode == 0
            kept = [r for i, r in enumerate(rows) if i not in (7, 8)]
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in kept))
            done = await anyio.run_process(command, env=env, check=False)
            assert done.returncode == 0, done.stderr
        targets = sorted(x["target"] for x in sandbox.state.store.quable.links.values())
    assert targets == sorted(r["to"] for r in kept)
    summary = orjson.loads((tmp_path / "results.summary.json").read_bytes())
    assert summary["deleted"] == 2


async def test_killed_two_step_asset_runs_orphan_only_the_uploads_on_the_wire(
    tmp_path: Path,
) -> None:
    """Each upload's file id is kept with the item's intent before the create is queued, so a
    rerun creates the asset from it instead of uploading again (which would orphan the first
    file: Quable documents no way to find or delete it). What no client can save is an upload
    the kill cut off after the server stored it: its id was never received."""
    (tmp_path / "media").mkdir()
    count = 300
    assets = []
    for i in range(count):
        (tmp_path / "media" / f"photo été {i}.png").write_bytes(tiny_png(8 + i % 7, 8, i))
        assets.append({"id": f"a{i}", "file": f"media/photo été {i}.png"})
    (tmp_path / "assets.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in assets))
    (tmp_path / "links.jsonl").write_bytes(b"")
    settings = SandboxSettings().with_overrides(
        {"quable.latency.fixed_ms": "15", "quable.rate_limit.windows": ""}
    )
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    async with running_sandbox(settings) as sandbox:
        config = job(tmp_path, sandbox.url)
        config.write_text(
            config.read_text()
            .replace('links = "links.jsonl"', 'assets = "assets.jsonl"')
            .replace("[output]", f"stage_concurrency = {{ upload = {UPLOADERS} }}\n[output]")
        )
        store = sandbox.state.store.quable
        kills = (60, 140, 220)
        for kill_at in (*kills, None):
            returncode = await run_killed(config, env, kill_at, lambda: len(store.assets))
            assert returncode == (0 if kill_at is None else -signal.SIGKILL)
        files = list(store.files.values())
        created = dict(store.assets)
    assert sorted(created) == sorted(a["id"] for a in assets)
    # One upload per asset, but for those on the wire at each kill: none is orphaned between
    # its answer and its create.
    assert count <= len(files) <= count + UPLOADERS * len(kills), len(files) - count
    by_name = {f["name"]: f for f in files}
    for i in range(count):
        asset = created[f"a{i}"]
        assert asset["originalFilename"] == f"photo été {i}.png"
        data = (tmp_path / "media" / f"photo été {i}.png").read_bytes()
        assert by_name[f"photo été {i}.png"]["size"] == len(data)


async def run_once(command: list[str], env: dict[str, str]) -> int:
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, check=False)
    return done.returncode


async def test_a_changed_link_refused_after_its_delete_is_created_when_reverted(
    tmp_path: Path,
) -> None:
    """v5 has no PUT for links: a change deletes the old link, then creates the new one. If
    that create is refused for good, the target holds nothing, and the state must say so, or
    a later run back to the old content skips it as unchanged and the link stays missing."""
    row = {"from": "doc-00001", "to": "doc-00002", "type": "ref", "sequence": 1}
    links = tmp_path / "links.jsonl"
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    settings = SandboxSettings().with_overrides({"quable.max_body_bytes": "2000"})
    async with running_sandbox(settings) as sandbox:
        command = [sys.executable, "-m", "bulksync", "run", "--config"]
        command.append(str(job(tmp_path, sandbox.url)))
        store = sandbox.state.store.quable
        links.write_bytes(orjson.dumps(row) + b"\n")
        assert await run_once(command, env) == 0 and len(store.links) == 1
        # A new version too big for the server: 413 after the old link was deleted.
        links.write_bytes(orjson.dumps({**row, "attributes": {"note": "x" * 5000}}) + b"\n")
        assert await run_once(command, env) == 1 and len(store.links) == 0
        links.write_bytes(orjson.dumps(row) + b"\n")  # back to what was there before
        assert await run_once(command, env) == 0
        assert [(x["target"], x["sequence"]) for x in store.links.values()] == [("doc-00002", 1)]


async def test_an_asset_deleted_behind_our_back_is_created_again(tmp_path: Path) -> None:
    assets = tmp_path / "assets.jsonl"
    row = {"id": "r1", "remotePath": "https://img.example.com/1.jpg", "attributes": {"n": 1}}
    assets.write_bytes(orjson.dumps(row) + b"\n")
    (tmp_path / "links.jsonl").write_bytes(b"")
    env = {**os.environ, "RESUME_TEST_QUABLE_TOKEN": "sandbox-token"}
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = job(tmp_path, sandbox.url)
        config.write_text(
            config.read_text().replace('links = "links.jsonl"', 'assets = "assets.jsonl"')
        )
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(config)]
        store = sandbox.state.store.quable
        assert await run_once(command, env) == 0 and "r1" in store.assets
        del store.assets["r1"]  # someone deletes it in the PIM
        assets.write_bytes(orjson.dumps({**row, "attributes": {"n": 2}}) + b"\n")
        assert await run_once(command, env) == 0
        assert store.assets["r1"]["attributes"] == {"n": 2}
    last = orjson.loads((tmp_path / "results.jsonl").read_bytes().splitlines()[-1])
    assert (last["status"], last["action"]) == ("succeeded", "created")
