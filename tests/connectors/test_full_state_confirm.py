"""A --full skip that could not compare everything (file bytes, remotePath) is not written to
the state as a confirmed push: the next incremental run still sees the change."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.config import load_config
from bulksync.demo import tiny_png
from bulksync.runner import RunOptions, RunReport, run_job_async
from bulksync.sandbox import Sandbox, SandboxSettings, running_sandbox

TOKEN_ENV = "REVIEW_FULL_QUABLE_TOKEN"
WRITES = ("POST", "PUT", "DELETE", "PATCH")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def routes(sandbox: Sandbox) -> dict[str, int]:
    snapshot = sandbox.state.stats.snapshot()["requests"]
    return {route: sum(by_status.values()) for route, by_status in snapshot.items()}


def writes_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {route: n - before.get(route, 0) for route, n in after.items()}
    return {r: n for r, n in changed.items() if n and r.split(" ")[0] in WRITES}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(SandboxSettings()) as running:
        yield running


@pytest.fixture
def run(tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv(TOKEN_ENV, "sandbox-token")
    config_path = tmp_path / "job.toml"
    config_path.write_text(
        f"""
[target]
kind = "quable"
base_url = "{sandbox.url}"
token_env = "{TOKEN_ENV}"
[inputs]
assets = "assets.jsonl"
[limits]
rate = [[100000, 1]]
[output]
results = "results.jsonl"
progress = false
""",
        encoding="utf-8",
    )

    async def go(**options: Any) -> tuple[RunReport, dict[str, int]]:
        before = routes(sandbox)
        report = await run_job_async(load_config(config_path), True, RunOptions(**options))
        return report, writes_between(before, routes(sandbox))

    return go


async def test_full_skip_must_not_hide_a_remote_path_change_from_the_next_incremental_run(
    tmp_path: Path, run: Any
) -> None:
    write_jsonl(
        tmp_path / "assets.jsonl", [{"id": "a1", "remotePath": "https://img.example.com/old.jpg"}]
    )
    report, writes = await run()
    assert report.exit_code == 0 and writes == {"POST /api/assets": 1}

    # The source URL changes. --full cannot see it (the listing shows no source URL): fine.
    write_jsonl(
        tmp_path / "assets.jsonl", [{"id": "a1", "remotePath": "https://img.example.com/new.jpg"}]
    )
    report, writes = await run(full=True)
    assert report.exit_code == 0 and writes == {}

    # But the next incremental run must still push it: the state never saw it pushed.
    report, writes = await run()
    assert report.exit_code == 0
    assert writes == {"PUT /api/assets/{id}": 1}, (writes, report.summary)


async def test_full_skip_must_not_hide_a_file_replaced_under_the_same_name(
    tmp_path: Path, run: Any
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    image = media / "shirt.png"
    image.write_bytes(tiny_png(4, 4, 1))
    write_jsonl(tmp_path / "assets.jsonl", [{"id": "a1", "file": "media/shirt.png"}])
    report, writes = await run()
    assert report.exit_code == 0 and writes == {"POST /api/files": 1, "POST /api/assets": 1}

    image.write_bytes(tiny_png(16, 16, 2))  # new bytes, same name
    os.utime(image, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    # README: "a file replaced under the same name is only seen by an incremental run".
    report, writes = await run(full=True)
    assert report.exit_code == 0 and writes == {}

    report, writes = await run()
    assert report.exit_code == 0
    assert writes.get("POST /api/files") == 1, (writes, report.summary)
