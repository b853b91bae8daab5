"""Failing tests for bugs found in review. Each test states the promise it checks."""

from __future__ import annotations

import io
import logging
import os
import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from bulksync.app import runner as runner_mod
from bulksync.app.cli import main
from bulksync.app.runner import max_delete_limit
from bulksync.app.wiring import BuiltTarget, build_target
from bulksync.connectors.fake._fake import FakeConnector, FakeServer
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.spi import BaseConnector
from bulksync.spi._connector import BaseStage, Client, Done, Failed, Job, Outcome
from bulksync.spi._errors import BulksyncError, ErrorInfo
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import LinkRecord, Origin
from bulksync.spi._redact import RedactingFilter, register_secret
from bulksync.store.results import ItemResult, ResultWriter, read_results

# --------------------------------------------------------------------------------------------
# helpers


def write_links(path: Path, count: int, skip: set[int] | None = None) -> None:
    rows = [
        {"from": f"d{i % 7}", "to": f"t{i}", "type": "x", "sequence": i}
        for i in range(count)
        if i not in (skip or set())
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def job_config(tmp_path: Path, fake: str = "") -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        "[limits]\nconcurrency = 4\nmax_elapsed_s = 30\n"
        f'[output]\nresults = "results.jsonl"\nprogress = false\n[fake]\n{fake}\n',
        encoding="utf-8",
    )
    return config


def summary_of(tmp_path: Path, name: str = "results") -> dict[str, object]:
    return orjson.loads((tmp_path / f"{name}.summary.json").read_bytes())  # type: ignore[no-any-return]


def results_of(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def links(count: int) -> list[LinkRecord]:
    return [
        LinkRecord(Origin("links.jsonl", i + 1), f"doc-{i}", f"doc-{i + 1}", "t", i)
        for i in range(count)
    ]


class OneStageConnector(BaseConnector):
    name = "one"

    def __init__(self, stage: object) -> None:
        self._stage = stage

    def stages(self, kind: str) -> list[object]:
        return [self._stage]

    def delete_stages(self, kind: str) -> list[object]:
        return [self._stage]


# --------------------------------------------------------------------------------------------
# 1. runner._prune + retry-failed: prune deletes items that are still in the input


def test_retry_failed_with_prune_deletes_items_still_in_the_input(tmp_path: Path) -> None:
    """`retry-failed --prune` feeds only the failed lines to the engine, so every other line
    of the same input is "unseen" and pruned, although it is still in the input file."""
    write_links(tmp_path / "links.jsonl", 60)
    config = job_config(tmp_path, "permanent_rate = 0.2\nseed = 4")
    assert main(["run", "--config", str(config)]) == 1
    failed = [r for r in results_of(tmp_path / "results.jsonl") if r["status"] == "failed"]
    assert 0 < len(failed) < 60
    config.write_text(config.read_text().replace("permanent_rate = 0.2", ""), encoding="utf-8")
    code = main(
        [
            "retry-failed",
            str(tmp_path / "results.jsonl"),
            "--config",
            str(config),
            "--prune",
            "--max-delete",
            "100%",
        ]
    )
    # Refused before anything runs: every other line would look gone and be deleted.
    assert code == 2
    assert not (tmp_path / "results.retry.jsonl").exists()


# --------------------------------------------------------------------------------------------
# 2. runner._prune: failed deletions are not counted in the summary nor the exit code


class FailingDelete(BaseStage):
    name = "delete"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        return [Failed(ErrorInfo("HTTP403", "delete refused"))]


class FakeWithFailingDeletes(FakeConnector):
    def delete_stages(self, kind):  # type: ignore[no-untyped-def]
        return [FailingDelete()]


def test_failed_prune_deletions_count_in_the_summary_and_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_links(tmp_path / "links.jsonl", 100)
    config = job_config(tmp_path)
    assert main(["run", "--config", str(config)]) == 0
    write_links(tmp_path / "links.jsonl", 100, skip={10, 20, 30})

    def build(cfg):  # type: ignore[no-untyped-def]
        built = build_target(cfg)
        return BuiltTarget(FakeWithFailingDeletes(), built.target)

    monkeypatch.setattr(runner_mod, "build_target", build)
    code = main(["run", "--config", str(config), "--prune"])
    lines = results_of(tmp_path / "results.jsonl")
    failed_lines = [r for r in lines if r["status"] == "failed"]
    assert len(failed_lines) == 3  # the three deletions failed, in the results file ...
    summary = summary_of(tmp_path)
    # ... but the summary and the exit code say everything went fine.
    assert summary["total"] == len(lines), summary
    assert summary["failed"] == 3, summary
    assert code == 1


# --------------------------------------------------------------------------------------------
# 3. plan.make_plan: --dry-run --full --prune plans to delete every item


def test_dry_run_with_full_and_prune_plans_what_the_real_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_links(tmp_path / "links.jsonl", 20)
    config = job_config(tmp_path)
    assert main(["run", "--config", str(config)]) == 0
    capsys.readouterr()
    args = ["run", "--config", str(config), "--full", "--prune", "--max-delete", "100%"]
    # The fake cannot be listed: the dry run refuses --full exactly as the real run does.
    assert main([*args, "--dry-run"]) == 2
    planned = capsys.readouterr().err
    assert main(args) == 2
    assert capsys.readouterr().err == planned and "--full is not supported" in planned
    assert summary_of(tmp_path)["succeeded"] == 20  # still the first run's: nothing ran since


# --------------------------------------------------------------------------------------------
# 4. budget/client: a huge Retry-After pauses the shared budget (and the run) for days


RA = "86400"


class OneThrottle:
    """A transport: the first request gets 429 Retry-After one day, the rest succeed."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.calls == 1:
            return HttpResponse(429, {"retry-after": RA}, b"{}")
        return HttpResponse(201, {}, b'{"id": "x"}')

    async def aclose(self) -> None:
        return None


async def test_a_huge_retry_after_does_not_stall_the_run(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path / "r.jsonl")
    budget = RateBudget(max_pause_s=0.5)  # the runner sets it to max_elapsed_s
    target = Target("fake://t", OneThrottle(), budget, NoAuth())  # type: ignore[arg-type]
    retry = RetryPolicy(max_attempts=3, max_elapsed_s=5, base_s=0.001, cap_s=0.01)
    engine = Engine(FakeConnector(), target, writer, EngineOptions(concurrency=1, retry=retry))
    # The first item gives up at once (the wait is beyond max_elapsed_s); the second item
    # should then go through. Instead every worker sleeps in budget.acquire() for a day.
    with anyio.fail_after(3):
        await engine.run([("link", iter(links(2)))])
    writer.close()
    statuses = [r["status"] for r in read_results(tmp_path / "r.jsonl")]
    assert sorted(statuses) == ["failed", "succeeded"]


# --------------------------------------------------------------------------------------------
# 5. results._masked: a secret JSON escapes differently is not masked


def test_a_secret_with_a_quote_or_backslash_is_masked_in_results(tmp_path: Path) -> None:
    secret = 'pa"ss\\w0rd-xyz'
    register_secret(secret)
    writer = ResultWriter(tmp_path / "r.jsonl")
    error = ErrorInfo("HTTP400", f"invalid credentials: password={secret}", 400)
    writer.write(ItemResult("link", Origin("l.jsonl", 1), "k", "failed", error=error))
    writer.close()
    (result,) = read_results(tmp_path / "r.jsonl")
    assert secret not in result["error"]["message"]  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# 6. _stages._attempt: log.exception's traceback is not masked by RedactingFilter


class LeakyStage(BaseStage):
    name = "link"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        raise ValueError("could not parse answer: {'Authorization': 'Bearer tok-SECRET-123'}")


async def test_a_connector_exception_does_not_leak_a_secret_into_the_log(tmp_path: Path) -> None:
    register_secret("tok-SECRET-123")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("bulksync")
    logger.addHandler(handler)
    try:
        writer = ResultWriter(tmp_path / "r.jsonl")
        target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
        engine = Engine(OneStageConnector(LeakyStage()), target, writer)  # type: ignore[arg-type]
        with anyio.fail_after(5):
            await engine.run([("link", iter(links(1)))])
        writer.close()
    finally:
        logger.removeHandler(handler)
    assert "tok-SECRET-123" not in (tmp_path / "r.jsonl").read_text()  # results: masked
    assert "tok-SECRET-123" not in stream.getvalue()  # the logged traceback: not masked


# --------------------------------------------------------------------------------------------
# 7. engine/_stages: a connector exception outside Stage.run escapes as an ExceptionGroup


class BadGroupKey(BaseStage):
    name = "link"
    grouped = True
    batch_size = 10

    def group_key(self, job: Job) -> object:
        raise KeyError("from")

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        return [Done()] * len(jobs)


class BadApplies(BaseStage):
    name = "link"

    def applies(self, job: Job) -> bool:
        raise AttributeError("no such field")

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        return [Done()]


@pytest.mark.parametrize("stage", [BadGroupKey, BadApplies])
async def test_a_connector_exception_outside_run_is_an_item_error_not_a_crash(
    tmp_path: Path, stage: type[BaseStage]
) -> None:
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    engine = Engine(OneStageConnector(stage()), target, writer)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(5):
            await engine.run([("link", iter(links(3)))])
    except BulksyncError:
        pass  # a one-line stop would be acceptable too
    except BaseExceptionGroup as group:  # what happens: a raw group, a traceback in the CLI
        pytest.fail(f"escaped as {group!r}")
    finally:
        writer.close()


# --------------------------------------------------------------------------------------------
# 8. state: a locked/unwritable state database is a traceback, not a one-line error


def test_a_locked_state_database_gives_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = sqlite3.connect
    # Only to keep the test fast: sqlite's busy timeout is 5 s by default.
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **k: real_connect(*a, **{"timeout": 0.1, **k})
    )
    write_links(tmp_path / "links.jsonl", 5)
    config = job_config(tmp_path)
    assert main(["run", "--config", str(config)]) == 0
    capsys.readouterr()  # the first run's own lines
    write_links(tmp_path / "links.jsonl", 300)  # new items, confirmations must be written
    # Another bulksync run (or a sqlite shell) holds the write lock on the state.
    other = sqlite3.connect(tmp_path / "bulksync-state.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        code = main(["run", "--config", str(config)])
    except BaseException as exc:
        pytest.fail(f"bulksync crashed with {type(exc).__name__}: {exc}")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert code == 2
    # The run's plan line may come first (it is printed before the first write); the error
    # itself is one line, no traceback.
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if "bulksync: plan:" not in x]
    assert len(lines) == 1 and "database is locked" in lines[0], lines


# --------------------------------------------------------------------------------------------
# 9. runner.max_delete_limit: "inf%" is an OverflowError traceback


def test_max_delete_inf_percent_is_a_config_error() -> None:
    from bulksync.spi._errors import ConfigError

    with pytest.raises(ConfigError):
        max_delete_limit("inf%", 10)


# --------------------------------------------------------------------------------------------
# 10. state: confirmations wait for the next item instead of "every 0.2 s"


class GateAfterFirst(BaseStage):
    name = "link"

    def __init__(self) -> None:
        self.gate = anyio.Event()

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        if jobs[0].record.origin.line != 1:
            await self.gate.wait()
        return [Done(remote_id="r")]


async def test_a_confirmed_item_is_committed_within_the_flush_interval(tmp_path: Path) -> None:
    from bulksync.store.state import StateStore

    path = tmp_path / "s.sqlite"
    state = StateStore(path, "t", flush_interval_s=0.2)
    stage = GateAfterFirst()
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    options = EngineOptions(concurrency=2, state=state)
    engine = Engine(OneStageConnector(stage), target, writer, options)  # type: ignore[arg-type]
    committed = -1
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(engine.run, [("link", iter(links(2)))])
            while engine.stats.succeeded < 1:
                await anyio.sleep(0.01)
            await anyio.sleep(0.6)  # three flush intervals; item 2 is still in flight
            other = sqlite3.connect(path)
            committed = other.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            other.close()
            stage.gate.set()
    writer.close()
    state.close()
    # A SIGKILL now would redo item 1, which is not in flight.
    assert committed == 1


# --------------------------------------------------------------------------------------------
# 11. runner: Ctrl-C during prune: no summary written (and no state.forget for deleted items)


class InterruptingDelete(BaseStage):
    name = "delete"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        os.kill(os.getpid(), signal.SIGINT)
        await anyio.sleep(5)
        return [Done()]


class FakeWithInterruptingDeletes(FakeConnector):
    def delete_stages(self, kind):  # type: ignore[no-untyped-def]
        return [InterruptingDelete()]


def test_ctrl_c_during_prune_writes_the_summary_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_links(tmp_path / "links.jsonl", 100)
    config = job_config(tmp_path)
    assert main(["run", "--config", str(config)]) == 0
    write_links(tmp_path / "links.jsonl", 100, skip={10})
    (tmp_path / "results.summary.json").unlink()

    def build(cfg):  # type: ignore[no-untyped-def]
        built = build_target(cfg)
        return BuiltTarget(FakeWithInterruptingDeletes(), built.target)

    monkeypatch.setattr(runner_mod, "build_target", build)
    code = main(["run", "--config", str(config), "--prune"])
    assert code == 130
    assert (tmp_path / "results.summary.json").exists()


# --------------------------------------------------------------------------------------------
# SessionAuth: an expiry already past must not turn every request into a login


async def test_a_token_with_expires_in_zero_is_not_renewed_before_every_request() -> None:
    from bulksync.engine.auth import SessionAuth
    from bulksync.spi._auth import Token
    from bulksync.spi._http import HttpRequest, HttpResponse

    class ZeroLifetime:
        def login_request(self) -> HttpRequest:
            return HttpRequest("POST", "token", authenticated=False)

        def refresh_request(self, token: Token) -> HttpRequest | None:
            return None

        def parse_token(self, response: HttpResponse, now: float) -> Token:
            return Token("zero-lifetime-token", now + 0.0)

        def auth_headers(self, token: Token) -> dict[str, str]:
            return {"Authorization": f"Bearer {token.value}"}

    async def send(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, {}, b"{}")

    auth = SessionAuth(ZeroLifetime())
    for _ in range(5):
        await auth.headers(send)
    assert auth.logins == 1
