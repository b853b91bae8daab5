"""Fail fast: a target that cannot be reached or used ends the run with exit 4 and one line.

Each acceptance case runs `bulksync run` in its own process against a server this test starts
on 127.0.0.1 (or a port nobody listens on, or a `.invalid` name, RFC 6761), with the default
limits, and checks the exit code, the single stderr line and the absence of a traceback. The
wall time of each is printed (run with -s to see it); only the subprocess timeout bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, OutputConfig, TargetConfig, load_config
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.app.wiring import build_target
from bulksync.connectors.fake._fake import FakeConnector, FakeServer, FakeSettings
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine._preflight import preflight
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._errors import REFUSED, TLS, AuthError, TargetUnreachable, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import LinkRecord, Origin
from bulksync.store.results import ResultWriter, RunStats, read_results

TOKEN_ENV = "FAILFAST_TEST_QUABLE_TOKEN"
ENV = {**os.environ, TOKEN_ENV: "sandbox-token", "PYTHONUNBUFFERED": "1"}


def write_job(tmp_path: Path, base_url: str, assets: int = 5, extra: str = "") -> Path:
    lines = [
        orjson.dumps({"id": f"a{i}", "remotePath": f"https://img.example.com/{i}.jpg"}).decode()
        for i in range(assets)
    ]
    (tmp_path / "assets.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    config = tmp_path / "job.toml"
    config.write_text(
        f"""
[target]
kind = "quable"
base_url = "{base_url}"
token_env = "{TOKEN_ENV}"
[inputs]
assets = "assets.jsonl"
[output]
results = "out/results.jsonl"
progress = false
{extra}
""",
        encoding="utf-8",
    )
    return config


def run_cli(config: Path) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    return done.returncode, done.stderr.decode().splitlines(), elapsed


def assert_unreachable(config: Path, case: str, *words: str) -> None:
    code, err, elapsed = run_cli(config)
    print(f"\n{case}: exit {code} in {elapsed:.2f} s: {err}")
    assert code == 4, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert err[0].startswith("bulksync: ")
    for word in words:
        assert word in err[0], err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_a_closed_port_exits_4(tmp_path: Path) -> None:
    port = free_port()
    config = write_job(tmp_path, f"http://127.0.0.1:{port}")
    assert_unreachable(config, "closed port", "connection refused", f"127.0.0.1:{port}")
    assert (tmp_path / "out" / "results.jsonl").read_bytes() == b""  # nothing read


def test_an_unresolvable_host_exits_4(tmp_path: Path) -> None:
    config = write_job(tmp_path, "https://bulksync-test.invalid")
    assert_unreachable(config, "unresolvable host", "DNS", "bulksync-test.invalid")


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 whose certificate nobody trusts."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    def main() -> None:
        task = loop.create_task(serve())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port[0]
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


def test_a_self_signed_certificate_exits_4_without_retrying(
    tmp_path: Path, self_signed_server: int
) -> None:
    config = write_job(tmp_path, f"https://127.0.0.1:{self_signed_server}")
    assert_unreachable(config, "self-signed certificate", "TLS certificate", "SSL_CERT_FILE")


def test_a_server_that_never_answers_exits_4(tmp_path: Path) -> None:
    # The kernel completes the handshake into the backlog; nothing ever reads or writes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        config = write_job(tmp_path, f"http://127.0.0.1:{port}")
        assert_unreachable(config, "never answers", "did not serve", "no answer")


@pytest.fixture
def sandbox_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bulksync", "sandbox", "--port", "0"),
            *("--quable-rate-limit-windows", "off", "--quable-latency-fixed-ms", "20"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode().strip()
        assert first.startswith("sandbox listening on "), first
        yield first.rsplit(" ", 1)[1], process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_wrong_base_path_exits_4(
    tmp_path: Path, sandbox_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, _ = sandbox_process
    config = write_job(tmp_path, f"{url}/nope")
    assert_unreachable(config, "wrong base path", "base_url path looks wrong", "/nope/api/assets")


def test_the_sandbox_answers_the_preflight(
    tmp_path: Path, sandbox_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, _ = sandbox_process
    code, err, _ = run_cli(write_job(tmp_path, url, extra="[limits]\nrate = [[100000, 1]]"))
    assert code == 0, err
    results = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["status"] for x in results] == ["succeeded"] * 5


def test_the_target_going_away_mid_run_stops_it_with_every_read_item_answered(
    tmp_path: Path, sandbox_process: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, sandbox = sandbox_process
    total = 5000
    config = write_job(
        tmp_path, url, assets=total, extra="[limits]\nrate = [[100000, 1]]\nconcurrency = 4"
    )
    results = tmp_path / "out" / "results.jsonl"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if results.exists() and len(results.read_bytes().splitlines()) >= 100:
                break
            time.sleep(0.02)
        sandbox.send_signal(signal.SIGKILL)
        _, err_bytes = process.communicate(timeout=60)
    finally:
        process.kill()
    # The run's first line is its plan (bulksync.app.plan.announce); the stop is the next.
    err = [x for x in err_bytes.decode().splitlines() if not x.startswith("bulksync: plan:")]
    print(f"\nmid-run: exit {process.returncode} in {time.monotonic() - started:.2f} s: {err}")
    assert process.returncode == 4, err
    assert len(err) == 1 and "connection refused" in err[0], err
    lines = [orjson.loads(x) for x in results.read_bytes().splitlines()]
    numbers = sorted(r["line"] for r in lines)
    # Every line read has exactly one result; the reading stopped: a prefix of the input.
    assert numbers == list(range(1, len(numbers) + 1))
    assert 100 <= len(numbers) < total
    stopped = [r for r in lines if r["status"] != "succeeded"]
    assert stopped, "the run cannot have finished: the sandbox was killed"
    for result in stopped:
        assert result["status"] == "failed"
        assert result["error"]["type"] == "TargetUnreachable", result
        assert "target unreachable" in result["error"]["message"]
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert summary["total"] == len(lines)


@pytest.mark.anyio
async def test_legit_per_item_404s_do_not_trip_the_breaker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assets deleted behind the state's back: every PUT answers 404 and the connector creates
    again. With a breaker that trips on the first "no route" 404, the run still succeeds."""
    monkeypatch.setenv(TOKEN_ENV, "sandbox-token")
    settings = SandboxSettings().with_overrides({"quable.rate_limit.windows": "off"})
    async with running_sandbox(settings) as sandbox:
        config = write_job(
            tmp_path,
            sandbox.url,
            assets=40,
            extra="[limits]\nconcurrency = 8\nunreachable_after = 1",
        )
        first = await run_job_async(load_config(config), True, RunOptions())
        assert first.exit_code == 0
        sandbox.state.store.quable.assets.clear()
        lines = [
            orjson.dumps(
                {
                    "id": f"a{i}",
                    "remotePath": f"https://img.example.com/{i}.jpg",
                    "attributes": {"title": "changed"},
                }
            ).decode()
            for i in range(40)
        ]
        (tmp_path / "assets.jsonl").write_text("".join(x + "\n" for x in lines))
        second = await run_job_async(load_config(config), True, RunOptions())
        puts: dict[str, Any] = sandbox.state.stats.snapshot()["requests"]
    assert second.exit_code == 0, second.summary
    assert second.summary["succeeded"] == 40
    # Every PUT answered 404 (deleted behind the state's back), and each was created again.
    assert puts.get("PUT /api/assets/{id}", {}).get("404") == 40, puts


# The breaker and the stall watch in the engine itself: the fake connector, a transport that
# turns bad on cue, and small limits (EngineOptions), each run bounded by anyio.fail_after.

FAST = RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.002)


class TurningTransport:
    """The fake server for the first ``good`` requests, then ``bad`` for every request."""

    def __init__(self, good: int, bad: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.server = FakeServer(FakeSettings())
        self.good = good
        self.bad = bad
        self.sent = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent += 1
        if self.sent <= self.good:
            return await self.server.send(request)
        return await self.bad(request)

    async def aclose(self) -> None:
        pass


async def run_turning(
    tmp_path: Path, transport: TurningTransport, count: int, **options: Any
) -> tuple[BaseException | None, list[dict[str, Any]]]:
    writer = ResultWriter(tmp_path / "results.jsonl")
    engine = Engine(
        FakeConnector(),
        Target("fake://test", transport, RateBudget(), NoAuth()),
        writer,
        EngineOptions(retry=FAST, **options),
    )
    records = [
        LinkRecord(Origin("links.jsonl", i + 1), f"d{i}", f"d{i + 1}", "t", i) for i in range(count)
    ]
    error: BaseException | None = None
    try:
        with anyio.fail_after(30):
            await engine.run([("link", iter(records))])
    except TargetUnreachable as exc:
        error = exc
    writer.close()
    return error, [dict(r) for r in read_results(tmp_path / "results.jsonl")]


def assert_prefix_answered(results: list[dict[str, Any]], count: int) -> None:
    lines = sorted(int(r["line"]) for r in results)
    assert lines == list(range(1, len(lines) + 1))  # each read line once, reading stopped
    assert len(lines) < count


@pytest.mark.anyio
async def test_a_stall_mid_run_stops_it(tmp_path: Path) -> None:
    async def hang(request: HttpRequest) -> HttpResponse:
        await anyio.sleep_forever()
        raise AssertionError

    transport = TurningTransport(30, hang)
    error, results = await run_turning(tmp_path, transport, 5000, concurrency=4, stall_s=0.5)
    assert error is not None and "no answer of any kind" in str(error)
    assert_prefix_answered(results, 5000)
    stopped = [r for r in results if r["status"] != "succeeded"]
    assert stopped and all(r["error"]["type"] == "TargetUnreachable" for r in stopped)
    assert any(r["error"]["message"].startswith("not finished: ") for r in stopped)


@pytest.mark.anyio
async def test_tls_verification_failure_is_never_retried(tmp_path: Path) -> None:
    async def untrusted(request: HttpRequest) -> HttpResponse:
        raise TransportError("bad cert", maybe_applied=False, cause=TLS, host="h:443")

    transport = TurningTransport(0, untrusted)
    error, results = await run_turning(tmp_path, transport, 100, concurrency=1)
    assert error is not None and "TLS certificate of host h not trusted" in str(error)
    assert transport.sent == 1  # one request, no retry, no second item
    assert_prefix_answered(results, 100)


@pytest.mark.anyio
async def test_consecutive_no_route_404s_trip_the_breaker(tmp_path: Path) -> None:
    async def no_route(request: HttpRequest) -> HttpResponse:
        return HttpResponse(404, {"content-type": "text/html"}, b"<h1>Not Found</h1>")

    transport = TurningTransport(10, no_route)
    error, results = await run_turning(
        tmp_path, transport, 1000, concurrency=1, unreachable_after=5
    )
    assert error is not None and "answered 404 (no route)" in str(error)
    assert transport.sent == 15  # ten good, then exactly five 404s
    assert_prefix_answered(results, 1000)


@pytest.mark.anyio
async def test_an_apis_own_404s_and_interleaved_successes_do_not_trip_it(tmp_path: Path) -> None:
    async def missing(request: HttpRequest) -> HttpResponse:
        return HttpResponse(404, {"content-type": "application/json"}, b'{"error": "gone"}')

    error, results = await run_turning(
        tmp_path, TurningTransport(0, missing), 50, concurrency=2, unreachable_after=3
    )
    assert error is None
    assert len(results) == 50 and all(r["error"]["type"] == "HTTP404" for r in results)

    flip = [0]

    async def refused_every_other(request: HttpRequest) -> HttpResponse:
        flip[0] += 1
        if flip[0] % 2:
            raise TransportError("refused", maybe_applied=False, cause=REFUSED, host="h:1")
        return await server.send(request)

    turning = TurningTransport(0, refused_every_other)
    server = turning.server
    error, results = await run_turning(
        tmp_path / "x", turning, 50, concurrency=1, unreachable_after=2
    )
    assert error is None
    assert len(results) == 50 and all(r["status"] == "succeeded" for r in results)


# Each connector's preflight against the sandbox: the right address passes (a 404 of the API's
# own included), a wrong path is a TargetUnreachable naming it.


def connector_config(tmp_path: Path, kind: str, url: str, **ocapi: str) -> Config:
    if kind == "quable":
        target = TargetConfig(kind=kind, base_url=url, user_env="FF_ID", password_env="FF_SECRET")
    else:
        target = TargetConfig(
            kind=kind, base_url=url, client_id_env="FF_ID", client_secret_env="FF_SECRET"
        )
    sections = {"ocapi": {"token_url": "/dwsso/oauth2/access_token", **ocapi}}
    return Config(
        target=target,
        output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
        sections=sections if kind == "ocapi" else {},
    )


async def preflight_of(config: Config) -> RunStats:
    built = build_target(config)
    stats = RunStats()
    try:
        with anyio.fail_after(30):
            await preflight(built.connector, built.target, stats, config.target.timeout_s)
    finally:
        await built.target.transport.aclose()
    return stats


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "right", "wrong", "ocapi", "words"),
    [
        ("quable", "", "/nope", {}, "login URL looks wrong: POST /nope/api_1.php/sessions"),
        ("propeller", "/v2", "/nope", {}, "GET /nope/links/0 answered 404"),
        (
            "ocapi",
            "",
            "",
            {"data_path": "s/-/dw/data/v99_9"},
            "GET /s/-/dw/data/v99_9/catalogs/bulksync-preflight",
        ),
    ],
)
async def test_each_connectors_preflight(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    right: str,
    wrong: str,
    ocapi: dict[str, str],
    words: str,
) -> None:
    monkeypatch.setenv("FF_ID", "sandbox")
    monkeypatch.setenv("FF_SECRET", "sandbox")
    async with running_sandbox(SandboxSettings()) as sandbox:
        stats = await preflight_of(connector_config(tmp_path, kind, sandbox.url + right))
        assert stats.requests == 2  # the login and the read, counted like any request
        with pytest.raises(TargetUnreachable) as caught:
            await preflight_of(connector_config(tmp_path, kind, sandbox.url + wrong, **ocapi))
    assert words in str(caught.value)


@pytest.mark.anyio
async def test_a_refused_login_on_the_preflight_exits_3_not_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_ID", "sandbox")
    monkeypatch.setenv("FF_SECRET", "wrong")
    async with running_sandbox(SandboxSettings()) as sandbox:
        with pytest.raises(AuthError):
            await preflight_of(connector_config(tmp_path, "propeller", sandbox.url + "/v2"))


def test_the_fake_target_has_no_preflight_and_the_dry_run_sends_nothing(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens: a request would fail the run with exit 4
    config = write_job(tmp_path, f"http://127.0.0.1:{port}")
    done = subprocess.run(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config), "--dry-run"],
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert FakeConnector().preflight_request() is None


@pytest.mark.anyio
async def test_timeouts_with_retries_in_between_are_one_stall(tmp_path: Path) -> None:
    """Every request times out; between them, backoff leaves nothing in flight. That idle
    time must not restart the silence, or per-item retries would hide the hang."""

    async def times_out(request: HttpRequest) -> HttpResponse:
        await anyio.sleep(0.2)
        raise TransportError("GET timed out", maybe_applied=True, timeout=True)

    retry = RetryPolicy(max_attempts=50, base_s=0.05, cap_s=0.1)
    transport = TurningTransport(5, times_out)
    writer = ResultWriter(tmp_path / "results.jsonl")
    engine = Engine(
        FakeConnector(),
        Target("fake://test", transport, RateBudget(), NoAuth()),
        writer,
        EngineOptions(retry=retry, concurrency=1, stall_s=1.0),
    )
    records = [LinkRecord(Origin("l", i + 1), f"d{i}", f"e{i}", "t", i) for i in range(100)]
    with anyio.fail_after(30), pytest.raises(TargetUnreachable, match="no answer of any kind"):
        await engine.run([("link", iter(records))])
    writer.close()
    results = [dict(r) for r in read_results(tmp_path / "results.jsonl")]
    assert_prefix_answered(results, 100)
    assert transport.sent < 5 + 12  # about 1 s of 0.2 s timeouts, not 50 attempts per item


def test_a_dry_run_with_full_on_a_closed_port_exits_4_like_a_run(tmp_path: Path) -> None:
    port = free_port()
    config = write_job(tmp_path, f"http://127.0.0.1:{port}")
    done = subprocess.run(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config), "--dry-run", "--full"],
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    err = done.stderr.decode().splitlines()
    # It lists the target with GETs: the same dead target is the same exit 4 and cause.
    assert done.returncode == 4, err
    assert "connection refused" in err[-1] and "Traceback" not in done.stderr.decode()
