"""One run per state, with real `bulksync run` processes against the sandbox: a second run
exits 2 at once naming the first; after a `kill -9` of the first the next run takes the state
over without any cleanup and the target ends with each link exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
from sandbox_helpers import call, finish_bulksync, small_settings, start_bulksync

from bulksync.sandbox import LatencySettings, QuableSettings, RateLimitSettings, running_sandbox

ROOT = Path(__file__).resolve().parents[2]
LINKS = 120


def job(tmp_path: Path, url: str) -> Path:
    lines = [
        orjson.dumps(
            {"from": f"doc-{i:05d}", "to": f"doc-{i + 1:05d}", "type": "t", "sequence": i}
        ).decode()
        for i in range(1, LINKS + 1)
    ]
    (tmp_path / "links.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tmp_path / "job.toml"
    config.write_text(
        f'[target]\nkind = "quable"\nbase_url = "{url}"\nallow_http = true\n'
        'token_env = "LOCK_TEST_TOKEN"\n'
        '[inputs]\nlinks = "links.jsonl"\n'
        "[limits]\nconcurrency = 2\nrate = [[100000, 1]]\n"
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


async def start(*args: str) -> asyncio.subprocess.Process:
    return await start_bulksync(*args, env={"LOCK_TEST_TOKEN": "sandbox-token"})


async def finish(process: asyncio.subprocess.Process, limit_s: float) -> tuple[int, str]:
    return await finish_bulksync(process, limit_s)


def result_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


async def test_second_run_exits_2_at_once_and_a_killed_run_is_taken_over(tmp_path: Path):
    settings = small_settings(
        quable=QuableSettings(
            seed_documents=LINKS + 1,
            duplicate_links="allow",  # a link pushed twice is two links: duplicates show
            latency=LatencySettings(fixed_ms=25),  # the first run is still going when killed
            rate_limit=RateLimitSettings(windows=()),
        )
    )
    async with running_sandbox(settings) as sandbox:
        config = job(tmp_path, sandbox.url)
        results = tmp_path / "results.jsonl"
        first = await start("run", "--config", str(config))
        try:
            for _ in range(400):  # at most 20 s for the first results to appear
                if result_lines(results) >= 5 or first.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert 5 <= result_lines(results) < LINKS, "the first run must be mid-way"
            # Held still mid-way (it keeps its lock, as a live run does), so that a slow start
            # of the second process on a loaded machine cannot outlast the first run.
            os.kill(first.pid, signal.SIGSTOP)

            second = await start("run", "--config", str(config))
            code, err = await finish(second, limit_s=30)
            assert code == 2, err
            assert err.count("\n") == 1, err  # one line
            assert f"in use by pid {first.pid} on host " in err, err
            assert "wait for it or use another [state] path" in err
            assert "database is locked" not in err and "Traceback" not in err
            # It stopped before opening the results file the first run is writing.
            assert result_lines(results) >= 5

            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        killed_at = result_lines(results)
        assert killed_at < LINKS
        lock = tmp_path / "bulksync-state.sqlite.lock"
        assert orjson.loads(lock.read_bytes())["pid"] == first.pid  # left as it was, stale

        third = await start("run", "--config", str(config))
        code, err = await finish(third, limit_s=60)
        assert code == 0, err
        assert "taking over" in err and str(first.pid) in err
        assert result_lines(results) == LINKS
        assert lock.read_bytes() == b""  # released cleanly this time

        async with aiohttp.ClientSession(sandbox.url) as http:
            status, export, _ = await call(http, "GET", "/_sandbox/export")
        assert status == 200
        pairs = Counter((link["origin"], link["target"]) for link in export["quable"]["links"])
        assert len(pairs) == LINKS
        assert set(pairs.values()) == {1}, [p for p, n in pairs.items() if n > 1]
