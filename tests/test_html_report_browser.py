"""The HTML run report in a real headless Chromium, driven over the DevTools protocol with
aiohttp's websocket client: every chart draws, nothing is logged as an error, and the page
makes no request but for its own file:// URL, even with hostile error messages in the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from html_report_fixtures import HOSTILE, hostile_results, write_run
from sandbox_process import running_sandbox_process

from bulksync.app._html_report import CHARTS, write_report_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BOUND_S = 90.0  # the whole browser session, start to kill
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def _need_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"chromium is missing ({CHROMIUM}); .ci/run installs it")
    pytest.skip("chromium is not installed (apt-get install chromium); CI fails instead")


@dataclass
class Cdp:
    """A minimal DevTools client: calls by id, every event kept in order."""

    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next: int = 0

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None:
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        answer = await future
        assert "error" not in answer, (method, answer["error"])
        return answer.get("result", {})

    async def wait_event(self, method: str) -> dict[str, Any]:
        while not any(e["method"] == method for e in self.events):
            await asyncio.sleep(0.05)
        return next(e for e in self.events if e["method"] == method)

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", session, expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[str]:
    """A headless Chromium on a DevTools port of its own choosing; yields the browser's
    websocket URL; killed (its whole process group) whatever happens."""
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--window-size=1280,2400",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: the renderers die with it
    )
    drain: asyncio.Task[None] | None = None
    try:
        assert process.stderr is not None
        stderr = process.stderr
        url = None
        seen: list[bytes] = []
        while url is None:
            line = await stderr.readline()
            if not line:
                raise AssertionError(f"chromium exited: {b''.join(seen[-20:]).decode()}")
            seen.append(line)
            match = _LISTENING.search(line)
            url = match.group(1).decode() if match else None

        async def discard() -> None:  # a full stderr pipe would block the browser
            while await stderr.readline():
                pass

        drain = asyncio.create_task(discard())
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


CHECK = """(() => {
  const charts = [...document.querySelectorAll('[data-chart]')].map(el => {
    const canvas = el.querySelector('canvas');
    let colored = 0;
    if (canvas && canvas.width && canvas.height) {
      const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < px.length; i += 4) {
        const hi = Math.max(px[i], px[i + 1], px[i + 2]);
        const lo = Math.min(px[i], px[i + 1], px[i + 2]);
        if (px[i + 3] > 0 && hi - lo > 60) colored++;  // a series' colour, not axes or text
      }
    }
    return {name: el.dataset.chart, drawn: el.dataset.drawn || null,
            width: canvas ? canvas.width : 0, height: canvas ? canvas.height : 0, colored};
  });
  const table = document.querySelector('table.errors');
  return {charts, count: window.__reportCharts, violations: window.__reportViolations,
          pwned: typeof window.__pwned, injected: document.querySelectorAll('img').length,
          errorsText: table ? table.textContent : ''};
})()"""


async def open_report(page: Path, profile: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The page's check results and every DevTools event seen while it loaded."""
    async with (
        asyncio.timeout(BOUND_S),
        chromium(profile) as url,
        aiohttp.ClientSession() as http,
        http.ws_connect(url, max_msg_size=0) as ws,
    ):
        cdp = Cdp(ws)
        reader = asyncio.create_task(cdp.read())
        try:
            target = await cdp.call("Target.createTarget", url="about:blank")
            attached = await cdp.call(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            session = attached["sessionId"]
            for domain in ("Network", "Runtime", "Log", "Page"):
                await cdp.call(f"{domain}.enable", session)
            await cdp.call("Page.navigate", session, url=page.as_uri())
            await cdp.wait_event("Page.loadEventFired")
            while await cdp.evaluate(session, "window.__reportReady === true") is not True:
                await asyncio.sleep(0.05)
            checked = await cdp.evaluate(session, CHECK)
            return checked, list(cdp.events)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def _problems(events: list[dict[str, Any]], page: Path) -> dict[str, list[Any]]:
    requests = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    return {
        "requests": [u for u in requests if u != page.as_uri()],
        "own_request": [u for u in requests if u == page.as_uri()],
        "exceptions": [
            e["params"]["exceptionDetails"]
            for e in events
            if e["method"] == "Runtime.exceptionThrown"
        ],
        "console": [
            e["params"]
            for e in events
            if e["method"] == "Runtime.consoleAPICalled"
            and e["params"]["type"] in ("error", "assert")
        ],
        "log": [
            e["params"]["entry"]
            for e in events
            if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
        ],
    }


async def test_every_chart_renders_offline_with_no_error(tmp_path: Path) -> None:
    _need_chromium()
    run = write_run(tmp_path / "run", extra_results=hostile_results())
    page = write_report_html(run)
    with tempfile.TemporaryDirectory(prefix="bulksync-chromium-") as profile:
        checked, events = await open_report(page, Path(profile))

    problems = _problems(events, page)
    assert problems["own_request"], "the page's own load was not seen: the check saw nothing"
    assert problems["requests"] == []
    assert problems["exceptions"] == []
    assert problems["console"] == []
    assert problems["log"] == []
    assert checked["violations"] == []

    assert [c["name"] for c in checked["charts"]] == list(CHARTS)
    assert checked["count"] == len(CHARTS)
    for chart in checked["charts"]:
        assert chart["drawn"] == "1", chart
        assert chart["width"] > 0 and chart["height"] > 0, chart
        assert chart["colored"] > 200, chart  # series drawn, not only axes

    # The hostile message is shown as text; nothing of it ran or loaded.
    assert checked["pwned"] == "undefined"
    assert checked["injected"] == 0
    assert "server said: </script><script>window.__pwned=N</script><!--" in checked["errorsText"]
    assert HOSTILE[:20] in checked["errorsText"]


async def test_a_real_runs_report_renders_every_chart(tmp_path: Path) -> None:
    """The report a real run wrote at its end (against the sandbox, with failures, 503s and
    429s), not one made from synthetic files: the formats the run writes are what it reads."""
    _need_chromium()
    env = {**os.environ, "BULKSYNC_TEST_HTML_TOKEN": "sandbox-token"}
    lines = []
    for i in range(400):
        to = f"doc-{2 + i % 29:05d}" if i % 50 else f"doc-{900 + i:05d}"  # some unknown
        lines.append(json.dumps({"from": f"doc-{1 + i // 29:05d}", "to": to, "type": "t"}))
    (tmp_path / "links.jsonl").write_text("\n".join([*lines, "{not json"]) + "\n")
    config = tmp_path / "job.toml"
    config.write_text(
        """
[target]
kind = "quable"
token_env = "BULKSYNC_TEST_HTML_TOKEN"
base_url = "{url}"
[inputs]
links = "links.jsonl"
[limits]
rate = [[200, 1]]
[output]
results = "results.jsonl"
progress = false
[state]
enabled = false
""",
        encoding="utf-8",
    )
    with running_sandbox_process(
        *("--quable-seed-documents", "30", "--quable-rate-limit-windows", "120/1"),
        *("--faults-seed", "5", "--faults-error-rate", "0.05", "--faults-error-statuses", "503"),
        env=env,
    ) as url:
        config.write_text(config.read_text().replace("{url}", url))
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
            capture_output=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    page = run / "report.html"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["throttled"] > 0 and summary["retries"] > 0 and summary["failed"] > 0
    with tempfile.TemporaryDirectory(prefix="bulksync-chromium-") as profile:
        checked, events = await open_report(page, Path(profile))
    problems = _problems(events, page)
    assert problems["own_request"]
    assert problems["requests"] == problems["exceptions"] == problems["console"] == []
    assert problems["log"] == []
    assert [c["name"] for c in checked["charts"]] == list(CHARTS)
    for chart in checked["charts"]:
        assert chart["drawn"] == "1", chart
        assert chart["colored"] > 200, chart
    assert "no document or asset with the identifier" in checked["errorsText"]
    assert "links.jsonl:401: invalid JSON" in checked["errorsText"]
