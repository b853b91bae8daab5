"""Quable user logins end to end against the sandbox, which follows the documented login
strictly: ``POST /api_1.php/sessions`` only, 201, the token under ``oauth``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from bulksync.app.runner import RunReport, run_job_async
from bulksync.sandbox import Sandbox, SandboxSettings, running_sandbox

from .test_quable_sandbox import PASSWORD, USER, catalogue, config_for, results

LOGIN = "POST /api_1.php/sessions"
REFRESH = "GET /api_1.php/sessions"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER, "sandbox")
    monkeypatch.setenv(PASSWORD, "sandbox")


def answered(sandbox: Sandbox, route: str, status: str) -> int:
    return int(sandbox.state.stats.snapshot()["requests"].get(route, {}).get(status, 0))


def all_succeeded(folder: Path, expected: int) -> None:
    lines = results(folder)
    assert len(lines) == expected
    assert {line["status"] for line in lines} == {"succeeded"}, lines[:3]


def short_sessions(**extra: str) -> SandboxSettings:
    # Sessions of 1.5 real seconds, while 10 ms per request keeps the run a few seconds long.
    knobs = {"quable.session_lifetime_s": "1.5", "quable.latency.fixed_ms": "10", **extra}
    return SandboxSettings().with_overrides(knobs)


async def run_against(sandbox: Sandbox, folder: Path, **kwargs: Any) -> RunReport:
    config = config_for(folder, sandbox.url, rate=[(150, 1.0)], **kwargs)
    with anyio.fail_after(120):
        return await run_job_async(config, quiet=True)


async def test_expiring_sessions_are_replaced_by_a_new_login(tmp_path: Path) -> None:
    ids, links = catalogue(tmp_path, files=10, remote=10, links=400)
    async with running_sandbox(short_sessions()) as sandbox:
        report = await run_against(sandbox, tmp_path)
        logins, refreshes = answered(sandbox, LOGIN, "201"), answered(sandbox, REFRESH, "200")
        refused = sandbox.state.stats.snapshot()["auth_failures"]["total"]
    assert report.exit_code == 0, report.summary
    all_succeeded(tmp_path, len(ids) + len(links))
    # The documented answer has "refresh_token": null: each renewal is a login, made before
    # the token expires (so without a single refused credential).
    assert logins >= 2 and refreshes == 0
    assert refused == 0


async def test_remember_me_refreshes_with_the_cookie(tmp_path: Path) -> None:
    ids, links = catalogue(tmp_path, files=10, remote=10, links=400)
    async with running_sandbox(short_sessions()) as sandbox:
        report = await run_against(sandbox, tmp_path, quable={"remember_me": True})
        logins, refreshes = answered(sandbox, LOGIN, "201"), answered(sandbox, REFRESH, "200")
    assert report.exit_code == 0, report.summary
    all_succeeded(tmp_path, len(ids) + len(links))
    assert logins == 1 and refreshes >= 1


@pytest.mark.parametrize("remember_me", [False, True])
async def test_a_foreign_login_mid_run_costs_no_item(tmp_path: Path, remember_me: bool) -> None:
    ids, links = catalogue(tmp_path, files=10, remote=10, links=300)
    settings = SandboxSettings().with_overrides({"quable.latency.fixed_ms": "10"})
    async with running_sandbox(settings) as sandbox:
        report: RunReport | None = None

        async def push() -> None:
            nonlocal report
            report = await run_against(sandbox, tmp_path, quable={"remember_me": remember_me})

        async def log_in_elsewhere() -> None:
            # Another job logs in as the same user once our run is under way: the docs say
            # "every authentication will remove older access token".
            with anyio.fail_after(60):
                while answered(sandbox, "POST /api/links", "201") < 50:
                    await anyio.sleep(0.01)
            signin = {"signin": {"username": "sandbox", "password": "sandbox"}}
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{sandbox.url}/api_1.php/sessions", json=signin) as answer,
            ):
                assert answer.status == 201

        async with anyio.create_task_group() as group:
            group.start_soon(push)
            group.start_soon(log_in_elsewhere)
        logins = answered(sandbox, LOGIN, "201")
        refused = sum(
            outcomes.get("401", 0)
            for outcomes in sandbox.state.stats.snapshot()["requests"].values()
        )
    assert report is not None and report.exit_code == 0, report and report.summary
    all_succeeded(tmp_path, len(ids) + len(links))
    # Ours, the foreign one, and ours again after the first 401 (a remember-me token dies with
    # the foreign login too, so the refresh falls back to a login).
    assert refused >= 1 and logins == 3


@pytest.mark.parametrize("status", [403, 405])
async def test_a_write_refused_for_permission_stops_the_run_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    catalogue(tmp_path, files=2, remote=2, links=4)
    monkeypatch.setenv("BULKSYNC_TEST_QUABLE_TOKEN", "read-token")
    settings = SandboxSettings().with_overrides(
        {"quable.read_only_tokens": "read-token", "quable.read_only_status": str(status)}
    )
    async with running_sandbox(settings) as sandbox:
        report = await run_against(sandbox, tmp_path, token=True)
        refused = answered(sandbox, "POST /api/files", str(status)) + answered(
            sandbox, "POST /api/assets", str(status)
        )
    assert report.exit_code == 3, report.summary
    # One refusal stops the run: the other items are not each sent to be refused again.
    assert 1 <= refused <= 12
    if status == 405:
        assert "does not have permission to access the resource" in report.summary["messages"][0]
