"""One input item per identity on the target: a later line with the same identity fails as a
duplicate of the first and costs no request, in runs and in dry runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.demo import DemoOptions, write_catalogue
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.sandbox import SandboxSettings, running_sandbox

from .test_propeller import _credentials, product, sandbox_config
from .test_quable_sandbox import config_for, results, write_jsonl

__all__ = ["_credentials"]  # the Propeller credentials fixture, used here too


def lines_of(folder: Path) -> dict[int, dict[str, Any]]:
    return {line["line"]: line for line in results(folder)}


async def test_two_propeller_links_of_one_pair_are_one_link(tmp_path: Path) -> None:
    links = [
        {"from": product(1), "to": product(2), "type": "related"},
        {"from": product(1), "to": product(2), "type": "accessories"},  # the same pair
        {"from": product(3), "to": product(4), "type": "related"},
    ]
    async with running_sandbox(SandboxSettings()) as sandbox:
        with anyio.fail_after(60):
            config = sandbox_config(tmp_path, sandbox.propeller_url, links)
            report = await run_job_async(config, quiet=True)
        held = sandbox.state.store.propeller.links
    by_line = lines_of(tmp_path)
    assert report.exit_code == 1  # one failed item
    assert by_line[1]["status"] == by_line[3]["status"] == "succeeded"
    assert by_line[2]["status"] == "failed"
    message = by_line[2]["error"]["message"]
    assert "duplicate of line 1" in message and "links.jsonl:2" in message
    assert report.summary["succeeded"] == 2 and report.summary["failed"] == 1
    assert len(held) == 2


async def test_a_repeated_quable_link_fails_and_resync_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKSYNC_TEST_QUABLE_TOKEN", "sandbox-token")
    write_jsonl(tmp_path / "assets.jsonl", [])
    rows = [
        {"from": "doc-00001", "to": "doc-00002", "type": "ref", "sequence": 1},
        {"from": "doc-00001", "to": "doc-00003", "type": "ref", "sequence": 2},
        {"from": "doc-00001", "to": "doc-00002", "type": "ref", "sequence": 9},  # line 1 again
    ]
    write_jsonl(tmp_path / "links.jsonl", rows)
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = config_for(tmp_path, sandbox.url, rate=[(1000, 1.0)], token=True)
        config.state.path = tmp_path / "state.sqlite"
        with anyio.fail_after(60):
            first = await run_job_async(config, quiet=True)
            requests_after_first = sandbox.state.stats.snapshot()["requests_total"]
            second = await run_job_async(config, quiet=True)
            requests_after_second = sandbox.state.stats.snapshot()["requests_total"]
            plan = await run_job_async(config, quiet=True, options=RunOptions(dry_run=True))
        links = list(sandbox.state.store.quable.links.values())
    assert first.exit_code == second.exit_code == 1
    assert sorted((x["target"], x["sequence"]) for x in links) == [
        ("doc-00002", 1),
        ("doc-00003", 2),
    ]
    assert "duplicate of line 1" in lines_of(tmp_path)[3]["error"]["message"]
    # The preflight read and two pushes: the duplicate cost no request.
    assert requests_after_first == 3
    assert requests_after_second == requests_after_first + 1  # the preflight, no flip-flop
    assert plan.summary["plan"]["link"]["counts"]["invalid"] == 1
    assert plan.summary["plan"]["link"]["counts"]["skip"] == 2


def test_the_demo_catalogue_has_one_line_per_link(tmp_path: Path) -> None:
    _, links = write_catalogue(tmp_path, DemoOptions(links=10_000))
    rows = [orjson.loads(line) for line in links.read_bytes().splitlines()]
    assert len(rows) == 10_000
    assert len({(r["from"], r["type"], r["to"]) for r in rows}) == 10_000
