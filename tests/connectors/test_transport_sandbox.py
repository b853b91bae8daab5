"""The transport's promises in whole runs against servers misbehaving (the sandbox, or a
careless stand-in): every request the server sees is one bulksync counted, redirects fail
items and are never followed, file names arrive as curl sends them, and an echoed secret is
masked before any cut."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulksync.app.cli import main
from bulksync.app.config import (
    Config,
    InputsConfig,
    LimitsConfig,
    OutputConfig,
    StateConfig,
    TargetConfig,
)
from bulksync.app.demo import tiny_png
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.sandbox import SandboxState, running_sandbox

from .test_ocapi_sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    assert_all_succeeded_once,
    config_for,
    sandbox_settings,
    write_links,
)
from .test_quable_sandbox import results, write_jsonl

QUABLE_TOKEN = "BULKSYNC_TEST_QUABLE_TOKEN"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLIENT_ID, "sandbox")
    monkeypatch.setenv(CLIENT_SECRET, "sandbox")
    monkeypatch.setenv(QUABLE_TOKEN, "sandbox-token")


def server_seen(state: SandboxState) -> tuple[int, int]:
    """(HTTP requests the sandbox received, of which dropped unanswered on a closed
    connection); batch parts are not requests on the wire."""
    routes = state.stats.snapshot()["requests"]
    total = sum(
        sum(outcomes.values()) for route, outcomes in routes.items() if "(batch)" not in route
    )
    closed = sum(outcomes.get("closed", 0) for outcomes in routes.values())
    return total, closed


async def test_ocapi_requests_seen_equal_requests_counted_under_dropped_connections(
    tmp_path: Path,
) -> None:
    """5% of answers drop their keep-alive connection. The first run PUTs every link; the
    second, --full, lists them with GETs. Each run's requests, as the sandbox counts them, are
    the run's summary's."""
    links = write_links(tmp_path, 300)
    settings = sandbox_settings(
        {"faults.close_after_response_rate": "0.05", "faults.seed": "5", "faults.apis": "ocapi"}
    )
    seen_vs_counted: list[tuple[int, int]] = []
    drops: list[int] = []
    async with running_sandbox(settings) as sandbox:
        for mode in (RunOptions(), RunOptions(full=True)):
            # Small listing pages: the --full run's GETs are many, not a handful.
            config = config_for(tmp_path, sandbox.url, {"list_page_size": 2}, concurrency=8)
            config.state = StateConfig(path=tmp_path / "state.sqlite")
            sandbox.state.stats.reset()
            with anyio.fail_after(120):
                report = await run_job_async(config, quiet=True, options=mode)
            assert report.exit_code == 0, report.summary
            seen, closed = server_seen(sandbox.state)
            seen_vs_counted.append((seen, report.summary["requests"]))
            drops.append(closed)
            routes = sandbox.state.stats.snapshot()["requests"]
            if mode.full:
                assert any(route.startswith("GET ") for route in routes)
            else:
                assert_all_succeeded_once(tmp_path, links, sandbox.state)
    assert all(seen == counted for seen, counted in seen_vs_counted), seen_vs_counted
    assert all(closed >= 2 for closed in drops), (drops, seen_vs_counted)


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """Another origin, on plain http: where the redirects point. It counts what reaches it."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        return web.json_response({"id": "taken-elsewhere"}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), seen
    finally:
        await server.close()


def quable_config(folder: Path, url: str, *, assets: bool = False) -> Config:
    inputs = (
        InputsConfig(assets=folder / "assets.jsonl", media_root=folder / "media")
        if assets
        else InputsConfig(links=folder / "links.jsonl")
    )
    return Config(
        target=TargetConfig(kind="quable", base_url=url, token_env=QUABLE_TOKEN),
        inputs=inputs,
        limits=LimitsConfig(rate=[(10_000, 1.0)], concurrency=4, max_elapsed_s=30.0),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        state=StateConfig(path=folder / "state.sqlite"),
    )


async def test_a_307_to_another_origin_fails_the_item_and_is_not_followed(
    tmp_path: Path, elsewhere: tuple[str, list[str]]
) -> None:
    origin, reached = elsewhere
    links = [{"from": "doc-00001", "to": f"doc-{i:05d}", "type": "t"} for i in range(2, 12)]
    write_jsonl(tmp_path / "links.jsonl", links)
    settings = sandbox_settings(
        {"faults.redirect_rate": "1", "faults.redirect_location": origin + "/stolen"}
    )
    async with running_sandbox(settings) as sandbox:
        with anyio.fail_after(60):
            report = await run_job_async(quable_config(tmp_path, sandbox.url), quiet=True)
        assert sandbox.state.store.quable.links == {}
    lines = results(tmp_path)
    assert report.exit_code == 1 and len(lines) == len(links)
    assert {line["status"] for line in lines} == {"failed"}
    messages = {line["error"]["message"] for line in lines}
    assert messages == {f"redirected to {origin}/stolen/api/links; not followed"}
    # No retry (a redirect will not change); one more: the preflight read, redirected too.
    assert report.summary["requests"] == len(links) + 1
    assert reached == []


async def test_file_names_reach_the_target_as_curl_sends_them(tmp_path: Path) -> None:
    """The stored asset shows the local name, so --full then finds it unchanged."""
    names = ["photo été.png", 'say "cheese".png', "日本語 ファイル.png", "100% sure.png"]
    (tmp_path / "media").mkdir()
    assets: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        (tmp_path / "media" / name).write_bytes(tiny_png(8 + i, 8, i))
        assets.append({"id": f"asset-{i}", "file": name})
    write_jsonl(tmp_path / "assets.jsonl", assets)
    async with running_sandbox(sandbox_settings()) as sandbox:
        config = quable_config(tmp_path, sandbox.url, assets=True)
        with anyio.fail_after(60):
            report = await run_job_async(config, quiet=True)
        assert report.exit_code == 0, report.summary
        store = sandbox.state.store.quable
        # As a browser or curl escapes them: a double quote as %22, nothing else.
        sent = [name.replace('"', "%22") for name in names]
        assert sorted(f["name"] for f in store.files.values()) == sorted(sent)
        stored = {asset_id: a["originalFilename"] for asset_id, a in store.assets.items()}
        assert stored == {f"asset-{i}": sent[i] for i in range(len(names))}
        sandbox.state.stats.reset()
        with anyio.fail_after(60):
            again = await run_job_async(config, quiet=True, options=RunOptions(full=True))
        assert again.exit_code == 0, again.summary
        uploads = sandbox.state.stats.snapshot()["requests"].get("POST /api/files", {})
    assert uploads == {}  # each found unchanged, the quoted name too


class CarelessServer:
    """A Quable stand-in on 127.0.0.1, in a thread of its own (the CLI runs its own loop),
    answering every request 400 with a text body that echoes the bearer token: URL-encoded
    and base64-encoded first, then raw across the 300th character."""

    def __init__(self) -> None:
        self.url = ""
        self.bodies: list[str] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _handler(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        head = f"echo {quote(token, safe='')} {base64.b64encode(token.encode()).decode()} "
        body = head.ljust(300 - len(token) // 2, ".") + token + " was refused" + "!" * 200
        self.bodies.append(body)
        return web.Response(status=400, text=body)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=120)
        finally:
            await runner.cleanup()

    def __enter__(self) -> CarelessServer:
        self._thread.start()
        assert self._ready.wait(10), "the careless server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_a_secret_straddling_the_cut_appears_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "qTok/3n+Secret=Value&0123456789abcdef"
    monkeypatch.setenv(QUABLE_TOKEN, secret)
    links = [{"from": "doc-00001", "to": f"doc-{i:05d}", "type": "t"} for i in range(2, 8)]
    write_jsonl(tmp_path / "links.jsonl", links)
    with CarelessServer() as server:
        config = tmp_path / "job.toml"
        config.write_text(
            f"""
[target]
kind = "quable"
base_url = "{server.url}"
token_env = "{QUABLE_TOKEN}"
[inputs]
links = "links.jsonl"
[limits]
max_elapsed_s = 30
[output]
results = "out/results.jsonl"
progress = false
[state]
path = "out/state.sqlite"
""",
            encoding="utf-8",
        )
        code = main(["-v", "run", "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 1 and server.bodies
    # The echo really did straddle the cut: the secret's first half lies before it.
    assert server.bodies[0].index(secret) < 300 < server.bodies[0].index(secret) + len(secret)
    lines = results(tmp_path / "out")
    assert len(lines) == len(links) and all("***" in x["error"]["message"] for x in lines)
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        secret[: len(secret) // 2],  # what a cut before masking would have left
    }
    state_files = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("state.sqlite")]
    assert state_files
    outputs = {
        "stdout": captured.out,
        "stderr": captured.err,
        "results": (tmp_path / "out" / "results.jsonl").read_text(encoding="utf-8"),
        "summary": (tmp_path / "out" / "results.summary.json").read_text(encoding="utf-8"),
        **{p.name: p.read_bytes().decode("latin-1") for p in state_files},
    }
    leaks = [(name, form) for name, text in outputs.items() for form in forms if form in text]
    assert leaks == []
    assert any("*** was refused" in text for text in outputs.values())  # masked, not dropped
