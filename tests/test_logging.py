"""-v, -vv, --log-file and --log-format: the log tells what a run did, and its counts are the
summary's (every retry line is one request re-sent, every 429 line one 429)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest

from bulksync.app._logging import JsonFormatter, TextFormatter
from bulksync.app.cli import main
from bulksync.app.demo import tiny_png
from bulksync.connectors.fake._fake import FakeServer
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi import BaseConnector
from bulksync.spi._connector import BaseStage, Client, Done, Failed, Job, Outcome
from bulksync.spi._errors import ErrorInfo
from bulksync.spi._records import LinkRecord, Origin
from bulksync.spi._redact import MASK
from bulksync.store.results import ResultWriter

USER, PASSWORD, TOKEN = (
    "BULKSYNC_TEST_LOG_USER",
    "BULKSYNC_TEST_LOG_PASSWORD",
    "BULKSYNC_TEST_LOG_TOKEN",
)
SECRET_PASSWORD = "pw-9f8e7d6c5b4a-never-in-a-log"
SECRET_TOKEN = "tok-0a1b2c3d4e5f-never-in-a-log"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S"
)

# The server allows 120/s while we are told 150/s: the surplus meets 429s; sessions expire
# every 2 s; one request in eleven fails transiently.
FAULTS = {
    "quable.rate_limit.windows": "120/1",
    "quable.session_lifetime_s": "2",
    "quable.latency.fixed_ms": "5",
    "quable.password": SECRET_PASSWORD,
    "quable.tokens": SECRET_TOKEN,
    "faults.seed": "5",
    "faults.error_rate": "0.05",
    "faults.error_statuses": "503",
    "faults.disconnect_rate": "0.02",
    "faults.drop_after_write_rate": "0.02",
}


@contextlib.contextmanager
def sandbox_in_a_thread(settings: SandboxSettings) -> Iterator[str]:
    """The sandbox on its own event loop, since main() runs one of its own in this thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    urls: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_sandbox(settings) as sandbox:
            urls.append(sandbox.url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def catalogue(folder: Path, files: int = 120, links: int = 400) -> None:
    (folder / "media").mkdir()
    assets = []
    for i in range(files):
        (folder / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i % 9, 8, i))
        assets.append({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": "c"})
    (folder / "assets.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in assets))
    items = []
    for i in range(links):
        target = f"asset-{(i // 2) % files}" if i % 2 == 0 else f"doc-{(i * 7) % 40 + 1:05d}"
        items.append({"from": f"doc-{i // 10 + 1:05d}", "to": target, "type": f"t{i % 2}"})
    (folder / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))


def job(folder: Path, url: str, *, token: bool = False) -> Path:
    credentials = (
        f'token_env = "{TOKEN}"' if token else f'user_env = "{USER}"\npassword_env = "{PASSWORD}"'
    )
    path = folder / "job.toml"
    path.write_text(
        f"""
[target]
kind = "quable"
base_url = "{url}"
{credentials}
[inputs]
assets = "assets.jsonl"
links = "links.jsonl"
[limits]
rate = [[150, 1]]
concurrency = 12
stage_concurrency = {{ upload = 6 }}
max_elapsed_s = 60
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER, "sandbox")
    monkeypatch.setenv(PASSWORD, SECRET_PASSWORD)
    monkeypatch.setenv(TOKEN, SECRET_TOKEN)


def faulty_run(tmp_path: Path, *flags: str, token: bool = False) -> tuple[int, dict[str, Any]]:
    catalogue(tmp_path)
    settings = SandboxSettings().with_overrides(FAULTS)
    with sandbox_in_a_thread(settings) as url:
        code = main([*flags, "run", "--config", str(job(tmp_path, url, token=token))])
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    return code, summary


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_v_logs_every_retry_and_every_429_as_the_summary_counts_them(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code, summary = faulty_run(tmp_path, "-v", "--log-format", "json", "--log-file", str(log))
    assert code == 0, summary
    entries = json_lines(log)
    events = Counter(entry.get("event") for entry in entries)
    # The run met what the faults make, or the equalities below would prove nothing.
    assert summary["retries"] > 5 and summary["throttled"] > 0, summary
    assert events["retry"] == summary["retries"]
    assert events["throttled"] == summary["throttled"]
    assert events["login"] + events["token_refresh"] >= 2  # the first login, then renewals
    assert events["request"] == 0  # -vv only
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry)
        assert entry["ts"].endswith("Z")
        assert entry["logger"].startswith("bulksync.") or entry["level"] != "INFO"
    retries = [e for e in entries if e.get("event") == "retry"]
    assert all(e["logger"] == "bulksync.retry" for e in retries)
    assert all(isinstance(e["delay"], float | int) and e["delay"] >= 0 for e in retries)
    assert all(e["cause"] for e in retries)
    assert {e["cause"].split(":")[0] for e in retries} & {
        "HTTP 503",
        "HttpError",
        "ConnectionError",
    }
    throttled = [e for e in entries if e.get("event") == "throttled"]
    assert all(e["logger"] == "bulksync.budget" and "HTTP 429" in e["message"] for e in throttled)
    assert SECRET_PASSWORD not in log.read_text()


def test_vv_logs_every_request_and_never_a_header_or_a_secret(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code, summary = faulty_run(
        tmp_path, "-vv", "--log-format", "json", "--log-file", str(log), token=True
    )
    assert code == 0, summary
    text = log.read_text()
    requests = [e for e in json_lines(log) if e.get("event") == "request"]
    assert len(requests) == summary["requests"] > 500
    for entry in requests:
        assert entry["level"] == "DEBUG" and entry["logger"] == "bulksync.http"
        assert entry["method"] in ("GET", "POST", "PUT", "PATCH", "DELETE")
        assert entry["path"].startswith("/") and "?" not in entry["path"]
        assert isinstance(entry["status"], int) or entry["status"].endswith("Error")
        assert entry["ms"] >= 0
    statuses = Counter(e["status"] for e in requests)
    assert statuses[429] == summary["throttled"] and statuses[503] > 0
    # Never logged at all, not merely masked: no mask shows either.
    assert SECRET_TOKEN not in text and MASK not in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()
    assert "Using selector" not in text


def test_text_format_is_one_line_per_event(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code, summary = faulty_run(tmp_path, "-v", "--log-file", str(log))
    assert code == 0, summary
    lines = log.read_text().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines[:5]
    retries = [line for line in lines if " INFO bulksync.retry: retry " in line]
    throttled = [line for line in lines if " INFO bulksync.budget: HTTP 429" in line]
    assert len(retries) == summary["retries"] > 5
    assert len(throttled) == summary["throttled"] > 0


def record(message: str, **fields: Any) -> logging.LogRecord:
    entry = logging.LogRecord("bulksync.retry", logging.INFO, __file__, 1, message, None, None)
    entry.__dict__.update(fields)
    return entry


def test_a_message_with_newlines_stays_one_line_in_both_formats() -> None:
    entry = record("retry x in 1.00 s: HTTP 503: line one\nline two\r\n", event="retry", delay=1)
    text = TextFormatter().format(entry)
    assert "\n" not in text and TEXT_LINE.match(text) and "line one\\nline two" in text
    (line,) = JsonFormatter().format(entry).splitlines()
    parsed = orjson.loads(line)
    assert parsed["event"] == "retry" and parsed["delay"] == 1 and parsed["level"] == "INFO"


def test_a_secret_in_a_structured_field_is_masked_in_json(tmp_path: Path) -> None:
    from bulksync.spi._redact import register_secret

    register_secret(SECRET_TOKEN)
    line = JsonFormatter().format(record("retry", cause=f"echoed {SECRET_TOKEN}"))
    assert SECRET_TOKEN not in line and orjson.loads(line)["cause"] == f"echoed {MASK}"


def fake_job(tmp_path: Path, n: int = 30) -> Path:
    (tmp_path / "links.jsonl").write_bytes(
        b"".join(orjson.dumps({"from": "a", "to": f"b{i}", "type": "t"}) + b"\n" for i in range(n))
    )
    path = tmp_path / "job.toml"
    path.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "out/results.jsonl"\nprogress = false\n'
        "[fake]\ntransient_rate = 0.3\nseed = 4\n",
        encoding="utf-8",
    )
    return path


def test_vv_after_the_command_logs_requests_to_stderr_without_asyncio_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-vv", "--config", str(fake_job(tmp_path))]) == 0
    err = capfd.readouterr().err
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert "Using selector" not in err and "asyncio" not in err
    assert err.count(" DEBUG bulksync.http: ") == summary["requests"] > 0
    assert err.count(" INFO bulksync.retry: retry ") == summary["retries"] > 0


def test_without_v_nothing_but_warnings_reaches_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(fake_job(tmp_path))]) == 0
    err = capfd.readouterr().err
    assert "bulksync.retry" not in err and "bulksync.http" not in err


def test_with_a_log_file_stderr_keeps_only_warnings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs" / "run.log"  # its folder is made
    assert main(["-v", "--log-file", str(log), "run", "--config", str(fake_job(tmp_path))]) == 0
    assert "bulksync.retry" not in capfd.readouterr().err
    assert " INFO bulksync.retry: retry " in log.read_text()
    # main() leaves logging as it found it: nothing of ours stays on the root logger.
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_bulksync", False)]


def test_an_unwritable_log_file_is_one_line_exit_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    code = main(["--log-file", str(tmp_path / "file" / "run.log"), "run", "--kind", "fake"])
    err = capfd.readouterr().err
    assert code == 2 and err.startswith("bulksync: --log-file ") and len(err.splitlines()) == 1


# --- retries are requests re-sent, not items ---------------------------------------------------


class BusyOnceBatch(BaseStage):
    """A batch stage whose first call answers every item "busy, try again"."""

    name = "link"
    batch_size = 8

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        await anyio.lowlevel.checkpoint()
        self.calls.append(len(jobs))
        if len(self.calls) == 1:
            return [Failed(ErrorInfo("Busy", "try later"), retryable=True)] * len(jobs)
        return [Done() for _ in jobs]


class OneStage(BaseConnector):
    name = "one"

    def __init__(self, stage: BaseStage) -> None:
        self._stage = stage

    def stages(self, kind: str) -> list[Any]:
        return [self._stage]


async def test_a_batch_retried_together_is_one_retry_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stage = BusyOnceBatch()
    records = [LinkRecord(Origin("l.jsonl", i + 1), "a", f"t{i}", "x") for i in range(8)]
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    retry = RetryPolicy(max_attempts=4, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)
    options = EngineOptions(concurrency=1, retry=retry, batch_linger_s=0.5)
    engine = Engine(OneStage(stage), target, writer, options)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="bulksync"), anyio.fail_after(10):
        await engine.run([("link", iter(records))])
    writer.close()
    assert stage.calls == [8, 8]
    assert engine.stats.succeeded == 8 and engine.stats.retries == 1  # it was 8, one per item
    (line,) = [r for r in caplog.records if r.name == "bulksync.retry"]
    assert line.getMessage().startswith("retry links: create (8 items) in ")
    assert line.__dict__["cause"] == "Busy: try later" and line.__dict__["items"] == 8


def test_the_stderr_handler_writes_to_stderr_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live display swaps sys.stderr for a proxy that prints above its bars: a handler
    holding the stream it was made with would write through them."""
    import io

    from bulksync.app._logging import StderrHandler

    handler = StderrHandler()
    handler.setFormatter(TextFormatter())
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    handler.emit(record("retry a in 1.00 s: HTTP503"))
    assert swapped.getvalue().endswith(" INFO bulksync.retry: retry a in 1.00 s: HTTP503\n")


def test_each_429_is_one_line_saying_what_the_budget_did(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    budget = RateBudget([(100, 1.0)], clock=lambda: now[0])
    for _ in range(51):  # 51 requests in the last second, 50 taken: the pace the 429 met
        budget._grant(now[0])
    with caplog.at_level(logging.INFO, logger="bulksync.budget"):
        budget.on_throttled(None)
        now[0] += 0.2
        for _ in range(5):  # sent before the pace dropped, and taken: above what it had learned
            budget._grant(now[0])
        budget.on_throttled(None)  # the same burst: no second decrease
        budget.on_throttled(1.0)
        now[0] += 1000  # recovered by the next grant's check (probing gently: minutes)
        budget._recover(now[0])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "HTTP 429: pace 100.0 -> 35.0 req/s",
        "HTTP 429: pace unchanged; lowered less than 1 s ago: one burst of 429s is one signal",
        "HTTP 429 (Retry-After 1 s): pausing every request for 1.0 s",
        "pace back to 100.0 req/s, the configured rate",
    ]
    assert [r.__dict__.get("event") for r in caplog.records].count("throttled") == 3
    assert caplog.records[0].__dict__["pace_from"] == 100.0


def test_the_breaker_logs_counting_closing_and_opening(caplog: pytest.LogCaptureFixture) -> None:
    from bulksync.engine._breaker import CircuitBreaker
    from bulksync.spi._errors import REFUSED, TargetUnreachable, TransportError
    from bulksync.spi._http import HttpRequest, HttpResponse

    breaker = CircuitBreaker(threshold=3)
    refused = TransportError("refused", maybe_applied=False, cause=REFUSED, host="h:1")
    with caplog.at_level(logging.INFO, logger="bulksync.breaker"):
        for _ in range(2):
            breaker.sent()
            breaker.failed(refused)
        breaker.sent()
        breaker.answered(HttpRequest("GET", "http://h:1/x"), HttpResponse(200, {}, b"{}"))
        with pytest.raises(TargetUnreachable):
            for _ in range(3):
                breaker.sent()
                breaker.failed(refused)
    events = [r.__dict__["event"] for r in caplog.records]
    assert events == ["breaker_counting", "breaker_closed", "breaker_counting", "breaker_open"]
    assert "2 request(s) in a row failed" in caplog.records[1].getMessage()
