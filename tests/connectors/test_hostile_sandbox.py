"""No loss, no duplicate, no false success against a sandbox that misbehaves the ways the
vendor docs do not rule out: writes applied then answered 5xx or never answered, identical v5
links accepted without a 409, and 200s whose body is not the API's."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.runner import RunReport, run_job_async
from bulksync.sandbox import SandboxSettings, SandboxState, running_sandbox

from .test_quable_sandbox import catalogue, config_for, results, write_jsonl

ENV = {
    "BULKSYNC_TEST_QUABLE_USER": "sandbox",
    "BULKSYNC_TEST_QUABLE_PASSWORD": "sandbox",
    "BULKSYNC_TEST_QUABLE_TOKEN": "sandbox-token",
    "BULKSYNC_TEST_ID": "sandbox",
    "BULKSYNC_TEST_SECRET": "sandbox",
}
# Garbage on every answer but the logins: nothing can be evidence of anything.
ALL_GARBAGE = {"faults.seed": "1", "faults.garbage_rate": "1.0"}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


async def run_against(
    settings: SandboxSettings, config_of: Any, *, limit_s: float = 120
) -> tuple[RunReport, SandboxState]:
    async with running_sandbox(settings) as sandbox:
        with anyio.fail_after(limit_s):
            report = await run_job_async(config_of(sandbox.url), quiet=True)
        return report, sandbox.state


def quable_settings(overrides: Mapping[str, str]) -> SandboxSettings:
    return SandboxSettings().with_overrides(
        {
            "quable.rate_limit.windows": "off",
            "quable.seed_documents": "300",
            "quable.duplicate_links": "allow",  # the docs never promise a 409 for a repeat
            "quable.latency.fixed_ms": "1",
            **overrides,
        }
    )


def assert_exactly_once(
    folder: Path, state: SandboxState, ids: list[str], links: list[dict[str, Any]]
) -> None:
    store = state.store.quable
    held = Counter((x["origin"], x["linkType"], x["target"]) for x in store.links.values())
    assert [triple for triple, n in held.items() if n > 1] == []  # no duplicate
    assert set(held) == {(x["from"], x["type"], x["to"]) for x in links}  # none missing
    assert sorted(store.assets) == sorted(ids)
    for asset_id in ids:
        asset = store.assets[asset_id]
        if not asset_id.startswith("asset-"):
            continue
        name = f"a{asset_id.removeprefix('asset-')}.png"
        media = (folder / "media" / name).read_bytes()
        held_file = store.files[asset["file"]]
        assert held_file["sha256"] == hashlib.sha256(media).hexdigest(), asset_id
        assert asset["originalFilename"] == name


def assert_one_success_per_line(folder: Path, assets: int, links: int) -> None:
    lines = results(folder)
    assert sorted((r["kind"], r["line"]) for r in lines) == sorted(
        [("asset", i + 1) for i in range(assets)] + [("link", i + 1) for i in range(links)]
    )
    assert Counter(r["status"] for r in lines) == {"succeeded": assets + links}


@pytest.mark.slow
async def test_writes_applied_then_lost_or_failed_are_neither_lost_nor_duplicated(
    tmp_path: Path,
) -> None:
    ids, links = catalogue(tmp_path, files=300, remote=0, links=3000)
    settings = quable_settings(
        {
            "faults.seed": "12",
            "faults.applied_error_rate": "0.02",
            "faults.drop_after_write_rate": "0.02",
            # Every other hostile behaviour at once: dropped keep-alive, garbage 200s.
            "faults.close_after_response_rate": "0.02",
            "faults.garbage_rate": "0.02",
            "faults.apis": "quable",
        }
    )
    report, state = await run_against(
        settings, lambda url: config_for(tmp_path, url, rate=[(5000, 1.0)], token=True)
    )
    assert report.exit_code == 0, report.summary
    assert_one_success_per_line(tmp_path, len(ids), len(links))
    faults = state.stats.snapshot()["faults_injected"]
    assert faults.get("applied_error", 0) > 50 and faults.get("drop_after_write", 0) > 50
    assert faults.get("close_after_response", 0) > 20 and faults.get("garbage", 0) > 20, faults
    assert_exactly_once(tmp_path, state, ids, links)
    # Every ambiguous create was looked up first: none was sent again blindly.
    assert state.stats.snapshot()["duplicate_create_attempts"]["total"] == 0


async def test_garbage_answers_to_some_writes_are_verified_not_trusted(tmp_path: Path) -> None:
    ids, links = catalogue(tmp_path, files=40, remote=20, links=300)
    settings = quable_settings(
        {"faults.seed": "4", "faults.garbage_rate": "0.15", "faults.apis": "quable"}
    )
    report, state = await run_against(
        settings, lambda url: config_for(tmp_path, url, rate=[(5000, 1.0)], token=True)
    )
    assert report.exit_code == 0, report.summary
    assert state.stats.snapshot()["faults_injected"]["garbage"] > 20
    assert_one_success_per_line(tmp_path, len(ids), len(links))
    assert_exactly_once(tmp_path, state, ids, links)


def assert_no_success(
    folder: Path, count: int, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """One line per item, none succeeded, each failure one line naming the bad answer."""
    lines = results(folder)
    assert len(lines) == count
    statuses = Counter(r["status"] for r in lines)
    assert statuses["succeeded"] == 0 and statuses["failed"] > 0, statuses
    for line in lines:
        if line["status"] == "skipped":  # a link to an asset that failed
            assert "asset" in line["reason"], line
            continue
        message = line["error"]["message"]
        # A batch answered with an HTML page fails as a whole: BadBatchResponse.
        assert line["error"]["type"] in ("BadResponse", "BadBatchResponse"), line
        assert "HTTP 200 with " in message and "\n" not in message
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in capsys.readouterr().err
    return lines


async def test_quable_garbage_on_every_answer_is_no_success(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    ids, links = catalogue(tmp_path, files=6, remote=6, links=20)
    settings = quable_settings({**ALL_GARBAGE, "faults.garbage_applies_writes": "false"})

    def config_of(url: str) -> Config:
        config = config_for(tmp_path, url, rate=[(5000, 1.0)], token=True)
        config.limits.max_attempts = 3
        return config

    report, state = await run_against(settings, config_of)
    assert report.exit_code == 1
    lines = assert_no_success(tmp_path, len(ids) + len(links), caplog, capsys)
    assert {r["kind"] for r in lines if r["status"] == "failed"} == {"asset", "link"}
    assert state.store.quable.assets == {}  # nothing was applied, nothing claimed


def ocapi_config(folder: Path, url: str, batch: bool) -> Config:
    links = [
        {
            "from": {"catalog": "catalog-1", "category": f"category-{i % 3 + 1:04d}"},
            "to": {"catalog": "catalog-2", "category": f"category-{i + 1:04d}"},
            "type": "other",
            "sequence": i,
        }
        for i in range(12)
    ]
    write_jsonl(folder / "links.jsonl", links)
    return Config(
        target=TargetConfig(
            kind="ocapi",
            base_url=url,
            client_id_env="BULKSYNC_TEST_ID",
            client_secret_env="BULKSYNC_TEST_SECRET",
        ),
        inputs=InputsConfig(links=folder / "links.jsonl"),
        limits=LimitsConfig(concurrency=4, max_attempts=3),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        sections={"ocapi": {"token_url": "/dw/oauth2/access_token", "batch": batch}},
    )


@pytest.mark.parametrize("batch", [False, True], ids=["put", "batch"])
async def test_ocapi_garbage_on_every_answer_is_no_success(
    batch: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    settings = SandboxSettings().with_overrides({**ALL_GARBAGE, "ocapi.seed_categories": "20"})
    report, _ = await run_against(settings, lambda url: ocapi_config(tmp_path, url, batch))
    assert report.exit_code == 1
    assert_no_success(tmp_path, 12, caplog, capsys)
