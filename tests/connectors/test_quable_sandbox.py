"""The Quable connector end to end against the sandbox, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
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
    TargetConfig,
)
from bulksync.app.demo import tiny_png
from bulksync.app.runner import RunOptions, RunReport, run_job_async
from bulksync.sandbox import SandboxSettings, running_sandbox

USER, PASSWORD = "BULKSYNC_TEST_QUABLE_USER", "BULKSYNC_TEST_QUABLE_PASSWORD"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER, "sandbox")
    monkeypatch.setenv(PASSWORD, "sandbox")
    monkeypatch.setenv("BULKSYNC_TEST_QUABLE_TOKEN", "sandbox-token")


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def catalogue(
    folder: Path, files: int, remote: int, links: int
) -> tuple[list[str], list[dict[str, Any]]]:
    (folder / "media").mkdir()
    assets: list[dict[str, Any]] = []
    for i in range(files):
        (folder / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i % 9, 8, i))
        assets.append({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": "dam_sort"})
    for i in range(remote):
        assets.append({"id": f"remote-{i}", "remotePath": f"https://img.example.com/{i}.jpg"})
    write_jsonl(folder / "assets.jsonl", assets)
    ids = [a["id"] for a in assets]
    link_items = []
    for i in range(links):
        origin = f"doc-{i // 10 + 1:05d}"
        target = ids[(i // 2) % len(ids)] if i % 2 == 0 else f"doc-{(i * 7) % 40 + 1:05d}"
        link_items.append({"from": origin, "to": target, "type": f"type-{i % 2}", "sequence": i})
    write_jsonl(folder / "links.jsonl", link_items)
    # Each input link is distinct, so "one link per input link" can be counted.
    assert len({(x["from"], x["type"], x["to"]) for x in link_items}) == len(link_items)
    return ids, link_items


def config_for(
    folder: Path,
    url: str,
    *,
    rate: list[tuple[int, float]],
    quable: Mapping[str, Any] | None = None,
    token: bool = False,
) -> Config:
    target = TargetConfig(kind="quable", base_url=url)
    if token:
        target.token_env = "BULKSYNC_TEST_QUABLE_TOKEN"
    else:
        target.user_env, target.password_env = USER, PASSWORD
    return Config(
        target=target,
        inputs=InputsConfig(assets=folder / "assets.jsonl", links=folder / "links.jsonl"),
        limits=LimitsConfig(rate=rate, concurrency=12, stage_concurrency={"upload": 6}),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        sections={"quable": dict(quable or {})},
    )


def results(folder: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (folder / "results.jsonl").read_bytes().splitlines()]


async def run(settings: SandboxSettings, folder: Path, **kwargs: Any) -> tuple[RunReport, Any]:
    async with running_sandbox(settings) as sandbox:
        with anyio.fail_after(120):
            report = await run_job_async(config_for(folder, sandbox.url, **kwargs), quiet=True)
        return report, sandbox.state


async def test_faults_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    ids, links = catalogue(tmp_path, files=120, remote=30, links=400)
    settings = SandboxSettings().with_overrides(
        {
            "quable.rate_limit.windows": "120/1",  # the server allows 120/s ...
            "quable.session_lifetime_s": "2",  # ... and sessions expire every 2 seconds
            "quable.latency.fixed_ms": "5",
            "faults.seed": "3",
            "faults.error_rate": "0.05",
            "faults.error_statuses": "503",
            "faults.disconnect_rate": "0.02",
            "faults.drop_after_write_rate": "0.02",
        }
    )
    # ... while we are told 150/s: the surplus meets 429s and must slow down, not fail.
    report, state = await run(settings, tmp_path, rate=[(150, 1.0)])
    lines = results(tmp_path)
    assert report.exit_code == 0, report.summary
    assert len(lines) == len(ids) + len(links)
    assert {(r["kind"], r["line"]) for r in lines} == {
        ("asset", i + 1) for i in range(len(ids))
    } | {("link", i + 1) for i in range(len(links))}
    assert all(r["status"] == "succeeded" for r in lines)
    stats = state.stats.snapshot()
    assert stats["faults_injected"]["total"] > 20, stats["faults_injected"]
    assert stats["faults_injected"].get("drop_after_write", 0) > 0
    assert stats["rate_limited"]["total"] > 0
    assert stats["duplicate_create_attempts"]["total"] == 0, stats["duplicate_create_attempts"]
    store = state.store.quable
    assert sorted(store.assets) == sorted(ids)
    triples = {(link["origin"], link["linkType"], link["target"]) for link in store.links.values()}
    assert len(store.links) == len(links)
    assert triples == {(item["from"], item["type"], item["to"]) for item in links}
    assert report.summary["throttled"] > 0 and report.summary["retries"] > 0


async def test_bad_items_fail_with_their_line_and_dependents_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "ok.png").write_bytes(tiny_png(4, 4, 1))
    write_jsonl(
        tmp_path / "assets.jsonl",
        [
            {"id": "ok", "file": "media/ok.png", "classification": "dam_sort"},
            {"id": "lost", "file": "media/missing.png", "classification": "dam_sort"},
            {
                "id": "refused",
                "remotePath": "https://img.example.com/r.jpg",
                "classification": "nope",
            },
        ],
    )
    write_jsonl(
        tmp_path / "links.jsonl",
        [
            {"from": "doc-00001", "to": "ok", "type": "asset_link", "sequence": 1},
            {"from": "doc-00001", "to": "lost", "type": "asset_link", "sequence": 2},
            {"from": "doc-00002", "to": "refused", "type": "asset_link", "sequence": 1},
            {"from": "no-such-doc", "to": "doc-00003", "type": "ref_refCol", "sequence": 1},
            {"from": "doc-00002", "to": "doc-00003", "type": "ref_refCol", "sequence": 2},
        ],
    )
    settings = SandboxSettings().with_overrides({"quable.classifications": "dam_sort"})
    report, state = await run(settings, tmp_path, rate=[(500, 1.0)], token=True)
    assert report.exit_code == 1
    by = {(r["kind"], r["line"]): r for r in results(tmp_path)}
    assert len(by) == 8
    assert by[("asset", 1)]["status"] == "succeeded"
    assert by[("asset", 2)]["status"] == "failed" and by[("asset", 2)]["step"] == "upload"
    assert "media file not found" in by[("asset", 2)]["error"]["message"]
    assert by[("asset", 3)]["status"] == "failed" and by[("asset", 3)]["step"] == "create"
    assert by[("asset", 3)]["error"]["http_status"] == 400
    assert by[("link", 1)]["status"] == "succeeded"
    for line, asset in ((2, "lost"), (3, "refused")):
        assert by[("link", line)]["status"] == "skipped"
        assert f"asset '{asset}'" in by[("link", line)]["reason"]
    assert by[("link", 4)]["status"] == "failed" and by[("link", 4)]["error"]["http_status"] == 400
    assert "no-such-doc" in by[("link", 4)]["error"]["message"]
    assert by[("link", 5)]["status"] == "succeeded"
    links_posted = sum(state.stats.snapshot()["requests"].get("POST /api/links", {}).values())
    assert links_posted == 3  # the two skipped links cost no request


async def test_v4_sends_one_request_per_document_and_link_type(tmp_path: Path) -> None:
    _, links = catalogue(tmp_path, files=5, remote=5, links=200)
    report, state = await run(
        SandboxSettings(), tmp_path, rate=[(1000, 1.0)], quable={"links_api": "v4"}
    )
    assert report.exit_code == 0, report.summary
    groups = {(item["from"], item["type"]) for item in links}
    requests = state.stats.snapshot()["requests"]
    v4 = sum(
        sum(v.values())
        for route, v in requests.items()
        if route.startswith("POST /api_1.php/documents")
    )
    assert v4 == len(groups)
    assert len(state.store.quable.links) == len(links)
    assert (
        sum(1 for r in results(tmp_path) if r["kind"] == "link" and r["status"] == "succeeded")
        == 200
    )


async def test_a_full_rerun_of_an_unchanged_catalogue_writes_nothing(tmp_path: Path) -> None:
    """--full ignores the state and compares with the target's listing: all in place."""
    ids, links = catalogue(tmp_path, files=5, remote=3, links=20)
    async with running_sandbox(SandboxSettings()) as sandbox:
        config = config_for(tmp_path, sandbox.url, rate=[(1000, 1.0)])
        with anyio.fail_after(60):
            first = await run_job_async(config, quiet=True)
            before = sandbox.state.stats.snapshot()["requests"]
            second = await run_job_async(config, quiet=True, options=RunOptions(full=True))
            after = sandbox.state.stats.snapshot()["requests"]
        store = sandbox.state.store.quable
        duplicates = sandbox.state.stats.snapshot()["duplicate_create_attempts"]
    assert first.exit_code == second.exit_code == 0
    sent = {
        route: sum(after[route].values()) - sum(before.get(route, {}).values()) for route in after
    }
    sent.pop("POST /api_1.php/sessions", None)  # the run's login
    assert {route for route, n in sent.items() if n} == {"GET /api/assets", "GET /api/links"}
    assert second.summary["skipped"] == len(ids) + len(links)
    assert {r.get("reason") for r in results(tmp_path)} == {"unchanged"}
    assert len(store.assets) == len(ids) and len(store.links) == len(links)
    assert duplicates["total"] == 0


async def test_a_refused_login_stops_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue(tmp_path, files=1, remote=1, links=2)
    monkeypatch.setenv(PASSWORD, "wrong-password-123")
    report, _ = await run(SandboxSettings(), tmp_path, rate=[(100, 1.0)])
    assert report.exit_code == 3
    assert "wrong-password-123" not in (tmp_path / "results.jsonl").read_text()
