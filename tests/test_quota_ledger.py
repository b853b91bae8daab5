"""The quota across runs (issue 16): a sandbox whose 24-hour window (time-scaled) is 1,000.

Three jobs' runs share one quota through the per-user ledger: a first job uses part of it, a
second job's run sends no more than what is left and stops with exit 6 and the resume time,
an immediate rerun sends nothing, and once the window frees up the run after that completes
the job, every link on the target exactly once and every input line with one result per run.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.demo import tiny_png
from bulksync.app.runner import run_job_async
from bulksync.sandbox import SandboxSettings, running_sandbox

pytestmark = pytest.mark.slow

DAY = 86400.0
SCALE = 4320.0  # the day lasts 20 real seconds
WINDOW_S = DAY / SCALE
QUOTA = 1000
TOKEN = "BULKSYNC_TEST_QUOTA_TOKEN"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN, "sandbox-token")


def links_job(folder: Path, url: str, links: list[dict[str, Any]]) -> Config:
    folder.mkdir()
    path = folder / "links.jsonl"
    path.write_bytes(b"".join(orjson.dumps(link) + b"\n" for link in links))
    return Config(
        target=TargetConfig(kind="quable", base_url=url, token_env=TOKEN),
        inputs=InputsConfig(links=path),
        # The client's view of the server's window, paced fast so that the quota runs out.
        limits=LimitsConfig(
            rate=[(QUOTA, WINDOW_S)], pace=200.0, concurrency=8, max_quota_wait_s=2.0
        ),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
    )


def make_links(count: int, link_type: str) -> list[dict[str, Any]]:
    return [
        {
            "from": f"doc-{i // 20 + 1:05d}",
            "to": f"doc-{(i % 20) + 1:05d}",
            "type": link_type,
            "sequence": i,
        }
        for i in range(count)
    ]


def results(config: Config) -> list[dict[str, Any]]:
    raw = config.output.results.read_bytes()
    return [orjson.loads(line) for line in raw.splitlines()]


def one_result_per_line(config: Config, count: int) -> list[dict[str, Any]]:
    lines = results(config)
    assert sorted(r["line"] for r in lines) == list(range(1, count + 1))
    return lines


async def test_runs_share_the_quota_stop_with_exit_6_and_resume(tmp_path: Path) -> None:
    settings = SandboxSettings(time_scale=SCALE).with_overrides(
        {"quable.rate_limit.windows": f"{QUOTA}/{DAY:g}", "quable.seed_documents": "100"}
    )
    small, big = make_links(300, "type-a"), make_links(1500, "type-b")
    async with running_sandbox(settings) as sandbox:

        def sent() -> int:
            return int(sandbox.state.stats.snapshot()["requests_total"])

        with anyio.fail_after(120):
            # Another job to the same instance (its own state file) uses part of the quota.
            other = links_job(tmp_path / "other", sandbox.url, small)
            first = await run_job_async(other, quiet=True)
            assert first.exit_code == 0, first.summary
            used_by_other = sent()
            assert len(small) <= used_by_other < QUOTA

            job = links_job(tmp_path / "job", sandbox.url, big)
            second = await run_job_async(job, quiet=True)
            assert second.exit_code == 6, second.summary
            # No more than the other job left, and never one refused by the server.
            assert sent() <= QUOTA
            assert sandbox.state.stats.snapshot()["rate_limited"]["total"] == 0
            quota = second.summary["quota"]
            assert quota["limit"] == QUOTA and quota["used"] >= QUOTA
            assert "next request possible at" in second.summary["messages"][0]
            lines = one_result_per_line(job, len(big))
            done = [r for r in lines if r["status"] == "succeeded"]
            stopped = [r for r in lines if r["status"] == "failed"]
            assert done and stopped and len(done) + len(stopped) == len(big)
            assert {r["error"]["type"] for r in stopped} == {"QuotaExhausted"}
            assert sum(r["error"]["message"] == "not attempted: quota exhausted" for r in stopped)
            before = sent()

            # At once again: the quota is still used up, nothing goes out.
            third = await run_job_async(job, quiet=True)
            assert third.exit_code == 6, third.summary
            assert sent() == before
            lines = one_result_per_line(job, len(big))
            skipped = [r for r in lines if r["status"] == "skipped"]
            assert len(skipped) == len(done)  # what the last run pushed stays pushed
            assert all(r["error"]["type"] == "QuotaExhausted" for r in lines if r not in skipped)

            # Once the window frees up, the next run completes the job.
            resume = datetime.fromisoformat(third.summary["quota"]["resume_at"]).timestamp()
            await anyio.sleep(min(max(0.0, resume - time.time()) + 1.0, 2 * WINDOW_S))
            fourth = await run_job_async(job, quiet=True)
            assert fourth.exit_code == 0, fourth.summary
            lines = one_result_per_line(job, len(big))
            assert {r["status"] for r in lines} <= {"succeeded", "skipped"}

        store = sandbox.state.store.quable
        triples = [(x["origin"], x["linkType"], x["target"]) for x in store.links.values()]
        wanted = [(x["from"], x["type"], x["to"]) for x in small + big]
        assert sorted(triples) == sorted(wanted)  # every link once: none lost, none twice
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["duplicate_create_attempts"]["total"] == 0
        assert snapshot["rate_limited"]["total"] == 0


def media_catalogue(folder: Path, files: int, links: int) -> tuple[Path, Path, list[str]]:
    """Assets with a file (an upload, then a create) and links to them and between documents."""
    (folder / "media").mkdir(parents=True)
    assets = []
    for i in range(files):
        (folder / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i % 9, 8, i))
        assets.append({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": "dam_sort"})
    links_ = [
        {"from": f"doc-{i // 10 + 1:05d}", "to": f"asset-{i % files}", "type": "t", "sequence": i}
        for i in range(links)
    ]
    assets_path, links_path = folder / "assets.jsonl", folder / "links.jsonl"
    assets_path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in assets))
    links_path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in links_))
    return assets_path, links_path, [a["id"] for a in assets]


async def test_a_two_stage_job_resumes_across_quota_stops_with_nothing_twice(
    tmp_path: Path,
) -> None:
    quota, scale = 250, 8640.0  # the day lasts 10 real seconds
    settings = SandboxSettings(time_scale=scale).with_overrides(
        {
            "quable.rate_limit.windows": f"{quota}/{DAY:g}",
            "quable.classifications": "dam_sort",
            # The worst the docs allow: a repeat create accepted, writes applied and then
            # answered 5xx, dropped or with garbage. A stop between them must lose nothing.
            "quable.duplicate_links": "allow",
            "faults.seed": "7",
            "faults.drop_after_write_rate": "0.03",
            "faults.applied_error_rate": "0.03",
            "faults.garbage_rate": "0.02",
        }
    )
    assets, links, ids = media_catalogue(tmp_path, files=200, links=300)
    async with running_sandbox(settings) as sandbox:
        config = Config(
            target=TargetConfig(kind="quable", base_url=sandbox.url, token_env=TOKEN),
            inputs=InputsConfig(assets=assets, links=links),
            limits=LimitsConfig(
                rate=[(quota, DAY / scale)],
                pace=100.0,
                concurrency=6,
                stage_concurrency={"upload": 4},
                max_quota_wait_s=1.0,
            ),
            output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
        )
        codes: list[int] = []
        with anyio.fail_after(150):
            for _ in range(8):  # 200 uploads, 200 creates and 300 links: 3 to 4 days' worth
                report = await run_job_async(config, quiet=True)
                codes.append(report.exit_code)
                lines = results(config)
                assert len(lines) == len(ids) + 300
                assert {(r["kind"], r["line"]) for r in lines} == {
                    ("asset", i + 1) for i in range(len(ids))
                } | {("link", i + 1) for i in range(300)}
                # Each run after the wait sends: the resume time said is when the next run can go.
                assert report.summary["requests"] > 0, report.summary
                if report.exit_code != 6:
                    break
                assert {r["error"]["type"] for r in lines if r["status"] == "failed"} == {
                    "QuotaExhausted"
                }
                resume = datetime.fromisoformat(report.summary["quota"]["resume_at"]).timestamp()
                await anyio.sleep(min(max(0.0, resume - time.time()) + 0.5, 2 * DAY / scale))
        assert codes[-1] == 0 and set(codes[:-1]) == {6} and len(codes) >= 2, codes
        store = sandbox.state.store.quable
        assert sorted(store.assets) == sorted(ids)
        assert len(store.links) == 300
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["faults_injected"]["total"] >= 5, snapshot["faults_injected"]
        assert snapshot["duplicate_create_attempts"]["total"] == 0
        assert snapshot["rate_limited"]["total"] == 0
