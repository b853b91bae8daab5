"""``python -m bulksync.sandbox`` as a subprocess: first line, serving, signals, exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from sandbox_helpers import QUABLE, call

from bulksync.sandbox import main

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "sandbox listening on http://127.0.0.1:"


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulksync.sandbox",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert line.startswith(PREFIX) and line.endswith("\n"), line
    return process, line.removeprefix("sandbox listening on ").strip()


async def stop(process: asyncio.subprocess.Process, signum: int) -> int:
    process.send_signal(signum)
    try:
        return await asyncio.wait_for(process.wait(), timeout=2.0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_then_stops_within_two_seconds(signum):
    process, url = await start("--quable-seed-documents", "3")
    async with aiohttp.ClientSession(url) as http:
        assert (await call(http, "GET", "/api/documents/doc-00003", headers=QUABLE))[0] == 200
        assert (await call(http, "GET", "/api/documents/doc-00004", headers=QUABLE))[0] == 404
        # an idle keep-alive connection must not hold the shutdown up
        assert (await call(http, "GET", "/_sandbox/stats"))[0] == 200
        assert await stop(process, signum) == 0


async def test_config_file_and_flags(tmp_path: Path):
    config = tmp_path / "sandbox.toml"
    config.write_text('[quable]\ntokens = ["from-file"]\nseed_documents = 1\n', encoding="utf-8")
    process, url = await start("--config", str(config), "--quable-seed-documents", "2")
    async with aiohttp.ClientSession(url) as http:
        token = {"Authorization": "Bearer from-file"}
        assert (await call(http, "GET", "/api/documents/doc-00002", headers=token))[0] == 200
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 401
    assert await stop(process, signal.SIGTERM) == 0


def test_bad_settings_exit_2(capsys, tmp_path: Path):
    assert main(["--faults-error-rate", "2"]) == 2
    assert "fault rates" in capsys.readouterr().err
    assert main(["--quable-seed-documents", "many"]) == 2
    assert "quable.seed_documents" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[quable]\nnope = 1\n", encoding="utf-8")
    assert main(["--config", str(bad)]) == 2
    assert "unknown knob quable.'nope'" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--quable-rate-limit-windows" in out and "--faults-seed" in out
