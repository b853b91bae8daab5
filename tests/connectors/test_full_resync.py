"""`--full` against the sandbox: the target's own listing decides, whatever the state says."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.app.config import load_config
from bulksync.app.demo import tiny_png
from bulksync.app.runner import RunOptions, RunReport, run_job_async
from bulksync.sandbox import Sandbox, SandboxSettings, running_sandbox

TOKEN_ENV = "FULL_TEST_QUABLE_TOKEN"
WRITES = ("POST", "PUT", "DELETE", "PATCH")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def routes(sandbox: Sandbox) -> dict[str, int]:
    snapshot = sandbox.state.stats.snapshot()["requests"]
    return {route: sum(by_status.values()) for route, by_status in snapshot.items()}


def delta(
    before: dict[str, int], after: dict[str, int], methods: tuple[str, ...]
) -> dict[str, int]:
    changed = {route: n - before.get(route, 0) for route, n in after.items()}
    return {r: n for r, n in changed.items() if n and r.split(" ")[0] in methods}


def remove_state(folder: Path) -> int:
    doomed = list(folder.glob("bulksync-state.sqlite*"))
    for path in doomed:
        path.unlink()
    return len(doomed)


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
links = "links.jsonl"
[limits]
rate = [[100000, 1]]
[quable]
list_page_size = 7  # small pages, so the listings really page
[output]
results = "results.jsonl"
progress = false
""",
        encoding="utf-8",
    )

    async def go(**options: Any) -> tuple[RunReport, dict[str, int]]:
        before = routes(sandbox)
        report = await run_job_async(load_config(config_path), True, RunOptions(**options))
        return report, delta(before, routes(sandbox), WRITES)

    return go


ASSETS = [{"id": f"r{i}", "remotePath": f"https://img.example.com/{i}.jpg"} for i in range(20)]
LINKS = [{"from": "doc-00001", "to": f"r{i}", "type": "asset", "sequence": i} for i in range(20)]


async def test_full_compares_with_the_target_not_the_state(
    tmp_path: Path, sandbox: Sandbox, run: Any
) -> None:
    write_jsonl(tmp_path / "assets.jsonl", ASSETS)
    write_jsonl(tmp_path / "links.jsonl", LINKS)
    report, writes = await run()
    assert report.exit_code == 0 and sum(writes.values()) == 40
    store = sandbox.state.store.quable
    # Someone else changed the target behind bulksync's back; the state knows nothing of it.
    moved = store.find_link("doc-00001", "asset", "r3")
    assert moved is not None
    moved["sequence"] = 99
    del store.assets["r7"]
    store.remove_links_touching("r7")
    extra = store.add_link("doc-00001", "document", "doc-00002", "document", "asset", 50, {})

    report, writes = await run()  # an incremental run trusts the state: it sees nothing
    assert report.exit_code == 0 and writes == {}

    before = routes(sandbox)
    report, writes = await run(full=True, dry_run=True, prune=True)
    assert writes == {}  # only listings were read
    listed = delta(before, routes(sandbox), ("GET",))
    assert listed["GET /api/assets"] >= 3 and listed["GET /api/links"] >= 3  # several pages
    plan = report.summary["plan"]
    assert plan["asset"]["counts"] == {
        "create": 1,
        "update": 0,
        "skip": 19,
        "invalid": 0,
        "delete": 0,
    }
    assert plan["link"]["counts"] == {
        "create": 1,
        "update": 1,
        "skip": 18,
        "invalid": 0,
        "delete": 1,
    }

    report, writes = await run(full=True, prune=True, max_delete="5")
    assert report.exit_code == 0, report.summary
    assert writes == {
        "POST /api/assets": 1,  # r7 again
        "POST /api/links": 2,  # the link to r7, and the moved link created anew
        "DELETE /api/links/{id}": 2,  # the moved link's old self, and the extra link
    }
    assert sorted(store.assets) == sorted(a["id"] for a in ASSETS)
    held = {x["target"]: x["sequence"] for x in store.links.values()}
    assert held == {f"r{i}": i for i in range(20)}
    assert extra["id"] not in store.links
    summary = report.summary
    assert (summary["skipped"], summary["deleted"]) == (37, 1)

    report, writes = await run(full=True)  # the target now matches: nothing to write
    assert report.exit_code == 0 and writes == {}


async def test_full_without_a_state_still_compares(
    tmp_path: Path, sandbox: Sandbox, run: Any
) -> None:
    write_jsonl(tmp_path / "assets.jsonl", ASSETS[:5])
    write_jsonl(tmp_path / "links.jsonl", LINKS[:5])
    assert (await run())[0].exit_code == 0
    assert remove_state(tmp_path) >= 1
    report, writes = await run(full=True)
    assert report.exit_code == 0 and writes == {}
    assert report.summary["skipped"] == 10


async def test_full_prune_is_held_by_the_guard_when_the_target_holds_much_more(
    tmp_path: Path, sandbox: Sandbox, run: Any
) -> None:
    store = sandbox.state.store.quable
    for i in range(30):  # links made by someone else, of the same link type
        store.add_link("doc-00002", "document", f"doc-{i + 3:05d}", "document", "asset", i, {})
    write_jsonl(tmp_path / "assets.jsonl", ASSETS[:2])
    write_jsonl(tmp_path / "links.jsonl", LINKS[:2])
    report, _ = await run(full=True, prune=True)
    assert report.exit_code == 2
    assert "would delete 30 of 34 items" in report.summary["messages"][0]
    assert len(store.links) == 32 and len(store.assets) == 2


async def test_full_on_ocapi_puts_only_what_the_listing_shows_different(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig

    monkeypatch.setenv("FULL_TEST_OCAPI_ID", "sandbox")
    monkeypatch.setenv("FULL_TEST_OCAPI_SECRET", "sandbox")
    links = [
        {
            "from": {"catalog": "catalog-1", "category": f"category-{1 + i % 3:04d}"},
            "to": {"catalog": "catalog-1", "category": f"category-{10 + i:04d}"},
            "type": "other",
            "sequence": i + 1,
        }
        for i in range(24)
    ]
    write_jsonl(tmp_path / "links.jsonl", links)
    settings = SandboxSettings().with_overrides({"ocapi.seed_categories": "40"})
    async with running_sandbox(settings) as sandbox:
        config = Config(
            target=TargetConfig(
                kind="ocapi",
                base_url=sandbox.url,
                client_id_env="FULL_TEST_OCAPI_ID",
                client_secret_env="FULL_TEST_OCAPI_SECRET",
            ),
            inputs=InputsConfig(links=tmp_path / "links.jsonl"),
            limits=LimitsConfig(concurrency=4),
            output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
            sections={"ocapi": {"token_url": "/dwsso/oauth2/access_token", "list_page_size": 3}},
        )
        assert (await run_job_async(config, True)).exit_code == 0
        # Behind bulksync's back: one position moved, one link removed.
        targets = sandbox.state.store.ocapi.links[("catalog-1", "category-0002")]
        moved = targets[("catalog-1", "category-0011", "other")]
        moved["position"] = 77.0
        del targets[("catalog-1", "category-0014", "other")]
        before = routes(sandbox)
        report = await run_job_async(config, True, RunOptions(full=True))
        writes = delta(before, routes(sandbox), WRITES)
        reads = delta(before, routes(sandbox), ("GET",))
        final = {
            (source[1], target[1]): record["position"]
            for source, by_target in sandbox.state.store.ocapi.links.items()
            for target, record in by_target.items()
        }
    assert report.exit_code == 0
    writes.pop("POST /dwsso/oauth2/access_token", None)  # the run's login, not a write
    assert list(writes.values()) == [2]  # the moved link and the removed one, each one PUT
    assert sum(reads.values()) >= 9  # 3 categories of 8 links, pages of 3
    assert report.summary["skipped"] == 22
    assert final == {
        (f"category-{1 + i % 3:04d}", f"category-{10 + i:04d}"): float(i + 1) for i in range(24)
    }


# A --full skip that could not compare everything (file bytes, remotePath) is not written to the
# state as a confirmed push: the next incremental run still sees the change.
async def test_full_skip_must_not_hide_a_remote_path_change_from_the_next_incremental_run(
    tmp_path: Path, run: Any
) -> None:
    write_jsonl(tmp_path / "links.jsonl", [])
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
    write_jsonl(tmp_path / "links.jsonl", [])
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
