"""Plan vs real: the dry run's request count against what the sandbox counted in a real run
of the same job (within 2%), for Quable v5 (assets and links, created then changed), Quable
v4, Propeller and an OCAPI batch job; and the run's first line says the same plan."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.demo import tiny_png
from bulksync.app.runner import RunOptions, RunReport, run_job_async
from bulksync.sandbox import Sandbox, SandboxSettings, running_sandbox

USER, PASSWORD = "BULKSYNC_TEST_PLAN_USER", "BULKSYNC_TEST_PLAN_PASSWORD"
CLIENT_ID, CLIENT_SECRET = "BULKSYNC_TEST_PLAN_ID", "BULKSYNC_TEST_PLAN_SECRET"
FAST = [(100_000, 1.0)]  # the documented Quable windows would pace the test at 10/s


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (USER, PASSWORD, CLIENT_ID, CLIENT_SECRET):
        monkeypatch.setenv(name, "sandbox")


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def wire_requests(before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
    """Requests the sandbox served between two snapshots: not its inspection routes, and not
    the parts of an OCAPI batch, which it counts apart (" (batch)") but are no request."""

    def api(snapshot: Mapping[str, Any]) -> int:
        return sum(
            sum(outcomes.values())
            for route, outcomes in snapshot["requests"].items()
            if " /_sandbox/" not in route and not route.endswith(" (batch)")
        )

    return api(after) - api(before)


async def plan_then_run(
    sandbox: Sandbox, config: Config, *, quiet: bool = True, full: bool = False, prune: bool = False
) -> tuple[int, int, RunReport]:
    """The dry run's planned requests, then the real run's as the sandbox counted them."""
    with anyio.fail_after(120):
        mode = {"full": full, "prune": prune, "max_delete": "100%"}
        dry = await run_job_async(config, quiet=True, options=RunOptions(dry_run=True, **mode))
        before = sandbox.state.stats.snapshot()
        report = await run_job_async(config, quiet=quiet, options=RunOptions(**mode))
        after = sandbox.state.stats.snapshot()
    assert report.exit_code == 0, report.summary
    planned = dry.summary["plan"]["requests"]["requests"]
    real = wire_requests(before, after)
    assert report.summary["requests"] == real  # the engine counts what the sandbox saw
    return planned, real, report


def assert_close(planned: int, real: int) -> None:
    assert real > 0
    assert abs(planned - real) <= 0.02 * real, (planned, real)


def quable_config(folder: Path, url: str, quable: Mapping[str, Any], assets: bool) -> Config:
    target = TargetConfig(kind="quable", base_url=url, user_env=USER, password_env=PASSWORD)
    return Config(
        target=target,
        inputs=InputsConfig(
            assets=folder / "assets.jsonl" if assets else None, links=folder / "links.jsonl"
        ),
        limits=LimitsConfig(rate=FAST, concurrency=8),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        sections={"quable": dict(quable)},
    )


def quable_assets(folder: Path, files: int, remote: int, label: str = "a") -> list[str]:
    (folder / "media").mkdir(exist_ok=True)
    items: list[dict[str, Any]] = []
    for i in range(files):
        (folder / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i % 9, 8, i))
        items.append({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": label})
    for i in range(remote):
        items.append({"id": f"remote-{i}", "remotePath": f"https://img.example.com/{label}{i}.jpg"})
    write_jsonl(folder / "assets.jsonl", items)
    return [item["id"] for item in items]


def quable_links(folder: Path, count: int, targets: list[str], sequence: int = 0) -> None:
    """``count`` distinct links from the seeded documents, 10 per (document, link type)."""
    items = []
    for i in range(count):
        origin = f"doc-{i // 20 + 1:05d}"
        target = targets[i % len(targets)] if targets else f"doc-{(i % 20) + 100:05d}"
        link_type, place = f"type-{i % 2}", i + sequence
        items.append({"from": origin, "to": target, "type": link_type, "sequence": place})
    assert len({(x["from"], x["type"], x["to"]) for x in items}) == count
    write_jsonl(folder / "links.jsonl", items)


def quable_settings() -> SandboxSettings:
    return SandboxSettings().with_overrides({"quable.seed_documents": "200"})


async def test_quable_v5_assets_and_links_created_then_changed(tmp_path: Path) -> None:
    ids = quable_assets(tmp_path, files=60, remote=40)
    quable_links(tmp_path, 300, ids)
    async with running_sandbox(quable_settings()) as sandbox:
        config = quable_config(tmp_path, sandbox.url, {}, assets=True)
        planned, real, _ = await plan_then_run(sandbox, config)
        # 60 x (upload + create) + 40 creates + 300 links + a login + the preflight
        assert planned == 60 * 2 + 40 + 300 + 2
        assert_close(planned, real)
        # Changed: every asset's classification, half the links' sequence (v5 deletes and
        # creates a changed link); the rest is skipped.
        quable_assets(tmp_path, files=60, remote=40, label="b")
        quable_links(tmp_path, 300, ids, sequence=1000)
        lines = (tmp_path / "links.jsonl").read_bytes().splitlines()
        old = [orjson.loads(x) for x in lines]
        for i, item in enumerate(old):
            if i % 2:
                item["sequence"] = i  # as first pushed: unchanged
        write_jsonl(tmp_path / "links.jsonl", old)
        planned, real, report = await plan_then_run(sandbox, config)
        assert report.summary["skipped"] == 150, report.summary
        assert_close(planned, real)
        # Pruned: 10 assets and 30 links gone from the input, a DELETE each (their ids kept).
        assets = (tmp_path / "assets.jsonl").read_bytes().splitlines()
        (tmp_path / "assets.jsonl").write_bytes(b"".join(x + b"\n" for x in assets[10:]))
        links = (tmp_path / "links.jsonl").read_bytes().splitlines()
        kept = [orjson.loads(x) for x in links[30:]]
        kept = [x for x in kept if x["to"] not in {f"asset-{i}" for i in range(10)}]
        write_jsonl(tmp_path / "links.jsonl", kept)
        planned, real, report = await plan_then_run(sandbox, config, prune=True)
        deleted = len(links) - len(kept) + 10
        assert report.summary["deleted"] == deleted, report.summary
        assert planned == deleted + 2
        assert_close(planned, real)


async def test_quable_v4_links_in_groups(tmp_path: Path) -> None:
    quable_links(tmp_path, 1000, [])
    async with running_sandbox(quable_settings()) as sandbox:
        config = quable_config(tmp_path, sandbox.url, {"links_api": "v4", "v4_batch": 7}, False)
        planned, real, _ = await plan_then_run(sandbox, config)
        # 100 groups of 10 links in batches of 7: two requests each, a login, the preflight
        assert planned == 100 * 2 + 2
        assert_close(planned, real)
        # --full, one link in every tenth group changed: each of those groups' batch holding
        # it lists the group, then replaces it; the listing's pages are counted too.
        lines = [orjson.loads(x) for x in (tmp_path / "links.jsonl").read_bytes().splitlines()]
        for i in range(0, len(lines), 100):
            lines[i]["sequence"] = 5000 + i
        write_jsonl(tmp_path / "links.jsonl", lines)
        planned, real, report = await plan_then_run(sandbox, config, full=True)
        assert report.summary["skipped"] == 990, report.summary
        assert planned == 10 * 2 + 34 + 2  # 34 pages of 30 links, a login, the preflight
        assert_close(planned, real)


async def test_propeller_chunks(tmp_path: Path) -> None:
    links = [
        {"from": {"class": "product", "id": a}, "to": {"class": "product", "id": b}}
        for a in range(1, 31)
        for b in range(1, 31)
        if a != b
    ][:850]
    for link in links:
        link["type"] = "related"
    write_jsonl(tmp_path / "links.jsonl", links)
    settings = SandboxSettings().with_overrides({"propeller.seed_products": "30"})
    async with running_sandbox(settings) as sandbox:
        config = Config(
            target=TargetConfig(
                kind="propeller",
                base_url=sandbox.propeller_url,
                client_id_env=CLIENT_ID,
                client_secret_env=CLIENT_SECRET,
            ),
            inputs=InputsConfig(links=tmp_path / "links.jsonl"),
            limits=LimitsConfig(concurrency=8),
            output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
            sections={"propeller": {"subtype": "bulksync", "chunk": 40}},
        )
        planned, real, _ = await plan_then_run(sandbox, config)
    assert planned == 22 + 2  # ceil(850 / 40) chunks, a token, the preflight
    assert_close(planned, real)


def ocapi_links(count: int) -> list[dict[str, Any]]:
    types = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
    links = []
    for i in range(count):
        k = i // len(types)
        source = {"catalog": "catalog-1", "category": f"category-{k // 40 + 1:04d}"}
        target = {"catalog": "catalog-1", "category": f"category-{k % 40 + 1:04d}"}
        links.append({"from": source, "to": target, "type": types[i % len(types)]})
    return links


async def test_ocapi_batches(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "links.jsonl", ocapi_links(1234))
    settings = SandboxSettings().with_overrides({"ocapi.seed_categories": "40"})
    async with running_sandbox(settings) as sandbox:
        target = TargetConfig(
            kind="ocapi",
            base_url=sandbox.url,
            client_id_env=CLIENT_ID,
            client_secret_env=CLIENT_SECRET,
        )
        config = Config(
            target=target,
            inputs=InputsConfig(links=tmp_path / "links.jsonl"),
            limits=LimitsConfig(concurrency=8),
            output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
            sections={"ocapi": {"token_url": "/dwsso/oauth2/access_token", "batch": True}},
        )
        planned, real, _ = await plan_then_run(sandbox, config)
    assert planned == 25 + 2  # ceil(1234 / 50) batches, a token, the preflight
    assert_close(planned, real)


async def test_a_run_says_its_plan_in_its_first_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = quable_assets(tmp_path, files=3, remote=2)
    quable_links(tmp_path, 10, ids)
    async with running_sandbox(quable_settings()) as sandbox:
        config = quable_config(tmp_path, sandbox.url, {}, assets=True)
        planned, real, _ = await plan_then_run(sandbox, config, quiet=False)
    err = capsys.readouterr().err
    first = [line for line in err.splitlines() if line.startswith("bulksync: plan:")]
    assert first == [
        "bulksync: plan: assets 5 create; links 10 create; "
        f"{planned} requests: under 1 s at 100,000 per 1 s"
    ], err
    assert planned == real == 3 * 2 + 2 + 10 + 2
