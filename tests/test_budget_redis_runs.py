"""The shared budget with real `bulksync run` processes (issue 19): one redis-server and the
sandbox, both on this machine and stopped at the end.

Four processes against a sandbox whose 10-minute window (time-scaled to 12 s) holds exactly
what each of them is configured with: each alone would take the whole window, so only a
shared budget keeps the sandbox from refusing anything. And Redis stopped mid-run: the run
stops with exit 4 and one line, every input line has its result, and the rerun completes
with every link on the target exactly once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from redis_process import RedisServer, need_redis_server, running_redis

from bulksync.sandbox import SandboxSettings, running_sandbox

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]
TOKEN = "BULKSYNC_TEST_REDIS_TOKEN"
URL_ENV = "BULKSYNC_TEST_REDIS_URL"
SCALE = 50.0  # Quable's 10 minutes last 12 real seconds (the budget remembers 1% longer)
WINDOW_S = 600.0 / SCALE
LIMIT = 240  # per 10 minutes (12 s): 20 requests/s for all the processes together


def links(first: int, count: int) -> list[dict[str, object]]:
    return [
        {"from": f"doc-{i % 50 + 1:05d}", "to": f"doc-{i // 50 + 1:05d}", "type": "t"}
        for i in range(first, first + count)
    ]


def job(folder: Path, url: str, items: list[dict[str, object]], limits: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
    path = folder / "job.toml"
    path.write_text(
        f'[target]\nkind = "quable"\nbase_url = "{url}"\nallow_http = true\ntoken_env = "{TOKEN}"\n'
        '[inputs]\nlinks = "links.jsonl"\n'
        f"[limits]\nconcurrency = 4\nrate = [[{LIMIT}, {WINDOW_S}]]\n{limits}"
        '[output]\nresults = "results.jsonl"\nprogress = false\n'
        f'[budget]\nbackend = "redis"\nurl_env = "{URL_ENV}"\ntimeout_s = 2\n',
        encoding="utf-8",
    )
    return path


async def start(config: Path, redis_url: str) -> asyncio.subprocess.Process:
    env = {**os.environ, TOKEN: "sandbox-token", URL_ENV: redis_url}
    env["PYTHONPATH"] = str(CHECKOUT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulksync",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def finish(process: asyncio.subprocess.Process, limit_s: float) -> tuple[int, str]:
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=limit_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


def results(folder: Path) -> list[dict[str, object]]:
    path = folder / "results.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def sandbox_settings(hostile: bool = False) -> SandboxSettings:
    overrides = {"quable.rate_limit.windows": f"{LIMIT}/600", "quable.seed_documents": "60"}
    if hostile:  # the worst the docs allow, for the no-loss checks
        overrides |= {
            "quable.duplicate_links": "allow",
            "faults.seed": "5",
            "faults.drop_after_write_rate": "0.03",
            "faults.applied_error_rate": "0.03",
            "faults.garbage_rate": "0.03",
        }
    return SandboxSettings(time_scale=SCALE).with_overrides(overrides)


@pytest.fixture
def redis_server(tmp_path: Path) -> object:
    need_redis_server()
    with running_redis(tmp_path / "redis") as server:
        yield server


async def test_four_processes_share_one_window_and_the_sandbox_refuses_nothing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    per_process = 70  # 280 links: more than the window, so its edge is crossed too
    async with running_sandbox(sandbox_settings()) as sandbox:
        folders = [tmp_path / f"job{n}" for n in range(4)]
        configs = [
            job(folder, sandbox.url, links(n * per_process, per_process))
            for n, folder in enumerate(folders)
        ]
        processes = [await start(config, redis_server.url) for config in configs]
        ended = [await finish(p, limit_s=180) for p in processes]
        for code, err in ended:
            assert code == 0, err
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["rate_limited"]["total"] == 0  # the window was never exceeded
        assert snapshot["requests_total"] >= 4 * per_process
        for folder in folders:
            lines = results(folder)
            assert sorted(int(str(r["line"])) for r in lines) == list(range(1, per_process + 1))
        store = sandbox.state.store.quable
        pushed = Counter((x["origin"], x["target"]) for x in store.links.values())
        wanted = {(x["from"], x["to"]) for x in links(0, 4 * per_process)}
        assert set(pushed) == wanted and set(pushed.values()) == {1}


async def test_redis_stopped_mid_run_stops_with_exit_4_and_the_rerun_resumes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    count = 240
    async with running_sandbox(sandbox_settings(hostile=True)) as sandbox:
        folder = tmp_path / "job"
        # Paced at 20/s: the run is still going when Redis stops.
        config = job(folder, sandbox.url, links(0, count), limits="pace = 20.0\n")
        process = await start(config, redis_server.url)
        try:
            for _ in range(600):  # at most 30 s for the first results
                if len(results(folder)) >= 20 or process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert 20 <= len(results(folder)) < count, "the run must be mid-way"
            redis_server.stop()
        finally:
            # The stop is bounded by the Redis timeouts (2 s a command here, 3 tries): a run
            # still going after 30 s has not stopped.
            code, err = await finish(process, limit_s=30)
        assert code == 4, err
        assert "Traceback" not in err
        stops = [line for line in err.splitlines() if "shared budget: Redis at unix://" in line]
        assert len(stops) == 1 and stops[0].startswith("bulksync: "), err
        # Every line read has its result, once; reading stopped (the rerun reads the rest).
        lines = results(folder)
        read = sorted(int(str(r["line"])) for r in lines)
        assert read == list(range(1, len(read) + 1)) and len(read) < count
        stopped = [r for r in lines if r["status"] != "succeeded"]
        assert stopped and all(r["error"]["type"] == "TargetUnreachable" for r in stopped)

        redis_server.start()  # an empty Redis: no persistence in the test
        rerun = await start(config, redis_server.url)
        code, err = await finish(rerun, limit_s=120)
        assert code == 0, err
        lines = results(folder)
        assert {r["status"] for r in lines} <= {"succeeded", "skipped"}
        store = sandbox.state.store.quable
        pushed = Counter((x["origin"], x["target"]) for x in store.links.values())
        assert set(pushed) == {(x["from"], x["to"]) for x in links(0, count)}
        assert set(pushed.values()) == {1}  # nothing lost, nothing twice
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["duplicate_create_attempts"]["total"] == 0
        assert snapshot["faults_injected"]["total"] >= 3, snapshot["faults_injected"]


def fake_job(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(20)]
    (folder / "links.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    path = folder / "job.toml"
    path.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n'
        f'[budget]\nbackend = "redis"\nurl_env = "{URL_ENV}"\ntimeout_s = 2\n',
        encoding="utf-8",
    )
    return path


async def test_redis_unreachable_at_start_is_exit_4_in_one_line(tmp_path: Path) -> None:
    config = fake_job(tmp_path / "job")
    gone = f"unix://{tmp_path / 'no-redis.sock'}"
    code, err = await finish(await start(config, gone), limit_s=60)
    assert code == 4, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "shared budget" in line] == [
        line for line in err.splitlines() if line.startswith("bulksync: shared budget: Redis at")
    ]
    assert err.count("shared budget: Redis at") == 1


async def test_a_refused_password_is_exit_4_and_never_shown(tmp_path: Path) -> None:
    need_redis_server()
    secret = "correct-horse-battery"
    with running_redis(tmp_path / "redis", tcp=True, password=secret) as server:
        config = fake_job(tmp_path / "job")
        wrong = f"redis://:wrong-staple-{secret[:5]}x@127.0.0.1:{server.port}/0"
        code, err = await finish(await start(config, wrong), limit_s=60)
        assert code == 4, err
        assert "wrong-staple" not in err and "shared budget: Redis at redis://127.0.0.1" in err
        right = f"redis://:{secret}@127.0.0.1:{server.port}/0"
        code, err = await finish(await start(config, right), limit_s=60)
        assert code == 0, err
        assert secret not in err
        assert secret not in (tmp_path / "job" / "results.jsonl").read_text(encoding="utf-8")
