"""--full with Quable v4 links does not compare attributes v4 never writes, and --dry-run
--full works before the results folder exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import (
    Config,
    InputsConfig,
    LimitsConfig,
    OutputConfig,
    StateConfig,
    TargetConfig,
)
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.sandbox import SandboxSettings, running_sandbox

TOKEN_ENV = "REVIEW_FULL_V4_TOKEN"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def write_links(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def writes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    counts = {
        route: sum(after[route].values()) - sum(before.get(route, {}).values())
        for route in after
        if route.split(" ")[0] in WRITES
    }
    return {route: n for route, n in counts.items() if n}


def config(folder: Path, url: str, results: Path, links_api: str = "v4") -> Config:
    return Config(
        target=TargetConfig(kind="quable", base_url=url, token_env=TOKEN_ENV),
        inputs=InputsConfig(links=folder / "links.jsonl"),
        limits=LimitsConfig(rate=[(100_000, 1.0)], concurrency=4),
        output=OutputConfig(results=results, progress=False),
        sections={"quable": {"links_api": links_api}},
    )


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "sandbox-token")


async def test_full_on_v4_links_with_attributes_converges(tmp_path: Path) -> None:
    """v4 items carry only target_code and sequence, so the attributes of an input link are
    never on the target; --full compares them anyway, finds a difference on every run and
    replaces the group each time ("updated"), although nothing it can send differs."""
    rows = [
        {
            "from": "doc-00001",
            "to": f"doc-{10 + t:05d}",
            "type": "asset",
            "sequence": t + 1,
            "attributes": {"note": "x"},
        }
        for t in range(3)
    ]
    write_links(tmp_path / "links.jsonl", rows)
    async with running_sandbox(SandboxSettings()) as sandbox:
        cfg = config(tmp_path, sandbox.url, tmp_path / "results.jsonl")
        with anyio.fail_after(60):
            assert (await run_job_async(cfg, quiet=True)).exit_code == 0
            assert (
                await run_job_async(cfg, quiet=True, options=RunOptions(full=True))
            ).exit_code == 0
            before = sandbox.state.stats.snapshot()["requests"]
            report = await run_job_async(cfg, quiet=True, options=RunOptions(full=True))
            after = sandbox.state.stats.snapshot()["requests"]
    assert report.exit_code == 0
    # A second --full of an unchanged catalogue on an unchanged target must write nothing.
    assert writes(before, after) == {}, (writes(before, after), report.summary)
    assert report.summary["skipped"] == 3


async def test_dry_run_full_with_a_results_folder_not_made_yet(tmp_path: Path) -> None:
    """The real run makes the results folder (ResultWriter) before the RemoteIndex goes in
    it; the dry run makes no ResultWriter, so mkdtemp(dir=missing folder) raises
    FileNotFoundError (a traceback, not a one-line error)."""
    write_links(
        tmp_path / "links.jsonl", [{"from": "doc-00001", "to": "doc-00010", "type": "asset"}]
    )
    async with running_sandbox(SandboxSettings()) as sandbox:
        cfg = config(tmp_path, sandbox.url, tmp_path / "out" / "results.jsonl", links_api="v5")
        # The state elsewhere (as a config file's default: beside the config), or none at all.
        cfg.state = StateConfig(enabled=False)
        with anyio.fail_after(60):
            report = await run_job_async(
                cfg, quiet=True, options=RunOptions(full=True, dry_run=True)
            )
    assert report.summary["plan"]["link"]["counts"]["create"] == 1
