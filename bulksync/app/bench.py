"""`bulksync bench`: how much a target API takes before it slows down, in a staged ramp.

Each stage offers a rate (5, 10, 20, 40 ... req/s by default) for a while through the run's
own client and budget; the ramp stops at the first stage whose p95 latency or whose share of
errors and 429s passes its threshold, or at the ceiling. The knee is the highest stage that
held. Reads only by default (the target's documented GET, from its spec); ``--writes``
creates and deletes synthetic objects under a dedicated id prefix instead, and deletes every
one it may have created at the end, after Ctrl-C too.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulksync.app import _loop
from bulksync.app._bench_load import Ledger, clean_up, run_stage, workers_for
from bulksync.app._bench_ramp import (
    RampOptions,
    StageTally,
    format_table,
    judge,
    knee,
    knee_line,
    p95_limit,
    stage_rates,
)
from bulksync.app._bench_record import bench_summary, snapshot, write_record
from bulksync.app._bench_sandbox import TOKEN_ENV as SANDBOX_TOKEN_ENV
from bulksync.app._bench_sandbox import leftovers, sandbox_config, sandbox_settings
from bulksync.app._run_folder import RunFolder, new_run_folder
from bulksync.app._run_record import runs_dir_of
from bulksync.app._timeline import Timeline
from bulksync.app.config import Config
from bulksync.app.progress import note
from bulksync.app.registry import target_spec
from bulksync.app.wiring import SPARE_CONNECTIONS, BuiltTarget, build_target
from bulksync.engine._breaker import CircuitBreaker, no_route_of
from bulksync.engine._preflight import preflight
from bulksync.engine.client import EngineClient
from bulksync.engine.retry import RetryPolicy
from bulksync.sandbox import Sandbox, running_sandbox
from bulksync.spi._bench import BenchRead, BenchWrite
from bulksync.spi._errors import BulksyncError, ConfigError, first_bulksync_error
from bulksync.spi._redact import redact
from bulksync.store.results import RunStats

__all__ = ["SANDBOX_TOKEN_ENV", "BenchOptions", "BenchReport", "run_bench"]

EXIT_OK, EXIT_LEFTOVERS, EXIT_INTERRUPTED = 0, 1, 130
CLEANUP_MAX_S = 120.0  # the cleanup after Ctrl-C is bounded too


@dataclass(slots=True)
class BenchOptions:
    ramp: RampOptions = field(default_factory=RampOptions)
    writes: bool = False
    prefix: str = "bulksync-bench-"
    json: bool = False
    runs_dir: Path | None = None  # None: the job's [output] runs_dir (./runs with --sandbox)
    sandbox: bool = False
    sandbox_latency_ms: float = 20.0
    sandbox_degrade_above: float = 0.0  # 0: the sandbox never slows down
    sandbox_set: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BenchReport:
    exit_code: int
    result: dict[str, Any]  # what --json prints; the summary's "bench"


def run_bench(config: Config | None, options: BenchOptions) -> BenchReport:
    """Run the bench (against ``config``'s target, or the embedded sandbox); print the table
    and the knee, write the run folder, and return the exit code."""
    options.ramp.check()
    if options.sandbox == (config is not None):
        raise ConfigError("bench needs a target: --config JOB.toml, or --sandbox (not both)")
    if options.writes and not options.prefix.strip():
        raise ConfigError("--prefix cannot be empty with --writes: it marks the bench's objects")
    return _loop.run(_bench_anywhere, config, options)


@asynccontextmanager
async def _sandboxed(options: BenchOptions) -> AsyncIterator[Sandbox]:
    settings = sandbox_settings(
        options.sandbox_latency_ms, options.sandbox_degrade_above, options.sandbox_set
    )
    async with running_sandbox(settings) as sandbox:
        if not options.json:
            note(f"bulksync: sandbox listening on {sandbox.url}")
        yield sandbox


async def _bench_anywhere(config: Config | None, options: BenchOptions) -> BenchReport:
    async with AsyncExitStack() as stack:
        sandbox = None
        if config is None:
            sandbox = await stack.enter_async_context(_sandboxed(options))
            config = sandbox_config(sandbox.url, options.runs_dir or Path("runs"))
        return await _bench(config, options, sandbox)
    raise AssertionError("unreachable")  # pragma: no cover - the block returns


def _requests(config: Config, writes: bool) -> tuple[BenchRead | None, BenchWrite | None]:
    spec = target_spec(config.target.kind)
    settings = config.settings(spec.name, spec.options)
    name = spec.title or spec.name
    if writes:
        if spec.bench_write is None:
            raise ConfigError(f"{name} declares no synthetic object: bench --writes cannot run")
        return None, spec.bench_write(settings)
    if spec.bench_read is None:
        raise ConfigError(f"{name} declares no read to benchmark: bench cannot run")
    return spec.bench_read(settings), None


@dataclass(slots=True)
class _Run:
    """One bench's moving parts."""

    config: Config
    options: BenchOptions
    built: BuiltTarget
    stats: RunStats
    client: EngineClient
    read: BenchRead | None
    write: BenchWrite | None
    ledger: Ledger
    stages: list[StageTally] = field(default_factory=list)
    limit_ms: float | None = None
    interrupted: bool = False


async def _bench(config: Config, options: BenchOptions, sandbox: Sandbox | None) -> BenchReport:
    read, write = _requests(config, options.writes)
    rates = stage_rates(options.ramp)
    built = build_target(config, workers_for(max(rates)) + SPARE_CONNECTIONS)
    try:
        folder = new_run_folder(options.runs_dir or runs_dir_of(config))
    except BulksyncError:
        await built.target.transport.aclose()
        raise
    stats = RunStats()
    breaker = CircuitBreaker(config.limits.unreachable_after, no_route_of(built.connector))
    # The client retries only logins (a request of the bench is never sent twice): with the
    # job's own limits, so a session renewed mid-ramp survives a 503 as a sync's would.
    limits = config.limits
    logins = RetryPolicy(max_attempts=limits.max_attempts, max_elapsed_s=limits.max_elapsed_s)
    client = EngineClient(built.target, stats, logins, breaker)
    run = _Run(config, options, built, stats, client, read, write, Ledger(options.prefix))
    run.limit_ms = options.ramp.max_p95_ms
    started = time.monotonic()
    sample = partial(snapshot, client, stats, started, run.stages)
    timeline = Timeline(folder.timeline, sample, stats.take_recent_latency)
    failure: BulksyncError | None = None
    try:
        async with anyio.create_task_group() as group:
            ramp_scope = anyio.CancelScope()

            def stop() -> None:
                run.interrupted = True
                ramp_scope.cancel()

            group.start_soon(_watch_signals, stop, options.writes)
            group.start_soon(timeline.watch)
            try:
                with ramp_scope:
                    await _ramp(run, rates)
            except BaseExceptionGroup as errors:
                found = first_bulksync_error(errors)
                if not isinstance(found, BulksyncError):
                    raise
                failure = found
            except BulksyncError as exc:
                failure = exc
            finally:
                if write is not None and run.ledger.pending:
                    # Shielded: a Ctrl-C (or a crash) of the ramp must not cut the cleanup.
                    with anyio.move_on_after(CLEANUP_MAX_S, shield=True):
                        await _clean(run, write)
                group.cancel_scope.cancel()
    finally:
        await built.target.transport.aclose()
        await built.target.budget.aclose()
        timeline.close()
    return _finish(run, folder, started, sandbox, failure)


async def _ramp(run: _Run, rates: list[float]) -> None:
    """The stages, until one does not hold or the ceiling is reached."""
    ramp = run.options.ramp
    await preflight(run.built.connector, run.built.target, run.stats, run.config.target.timeout_s)
    for rate in rates:
        tally = StageTally(rate, ramp.stage_seconds)
        run.stages.append(tally)
        await run_stage(run.client, tally, run.read, run.write, run.ledger)
        if len(run.stages) == 1 and run.limit_ms is None:
            run.limit_ms = p95_limit(ramp, tally)
        judge(tally, run.limit_ms, ramp)
        if not tally.held:
            return


async def _clean(run: _Run, write: BenchWrite) -> None:
    held = knee(run.stages)
    rate = held.offered if held is not None else run.options.ramp.start
    if not run.options.json:
        count = len(run.ledger.pending)
        note(
            f"bulksync: deleting {count} synthetic object(s) of the bench"
            f" (waiting out the target's rate limit if need be, up to {CLEANUP_MAX_S:g} s)..."
        )
    try:
        try:
            await clean_up(run.client, write, run.ledger, rate)
        except BaseExceptionGroup as errors:  # its workers' task group wraps what they raised
            found = first_bulksync_error(errors)
            if not isinstance(found, BulksyncError):
                raise
            raise found from None
    except BulksyncError as exc:  # the target went away, say: what is left is reported
        note(f"bulksync: cleanup stopped: {redact(str(exc))}")


async def _watch_signals(stop: Callable[[], None], writes: bool) -> None:
    """Ctrl-C or SIGTERM: stop the ramp. The cleanup still runs, bounded in time: a second
    signal does not cut it (objects would be left behind), it only says so."""
    stopping = False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if stopping:
                if writes:
                    note(
                        f"bulksync: {name} again: still deleting the synthetic objects "
                        f"(up to {CLEANUP_MAX_S:g} s)"
                    )
                continue
            stopping = True
            then = "; deleting the synthetic objects first" if writes else ""
            note(f"bulksync: {name}: stopping the bench{then}")
            stop()


def _finish(
    run: _Run,
    folder: RunFolder,
    started: float,
    sandbox: Sandbox | None,
    failure: BulksyncError | None,
) -> BenchReport:
    options, stages, ledger = run.options, run.stages, run.ledger
    found = knee(stages)
    result: dict[str, Any] = {
        "mode": "writes" if options.writes else "reads",
        "stages": [s.as_json() for s in stages],
        "knee_rps": None if found is None else found.offered,
        "p95_limit_ms": run.limit_ms,
        "max_error_share": options.ramp.max_error_share,
        "interrupted": run.interrupted,
    }
    if options.writes:
        result["synthetic"] = {
            "prefix": f"{ledger.prefix}{ledger.tag}-",
            "created": ledger.created,
            "deleted": ledger.deleted,
            "never_created": ledger.never_created,
            "left": sorted(ledger.pending),
        }
        if sandbox is not None:
            result["sandbox_leftovers"] = leftovers(sandbox, options.prefix)
    code = EXIT_OK
    if failure is not None:
        code = failure.exit_code
        result["stopped"] = redact(str(failure))
    elif ledger.pending or result.get("sandbox_leftovers"):
        code = EXIT_LEFTOVERS
    elif run.interrupted:
        code = EXIT_INTERRUPTED
    elapsed = time.monotonic() - started
    summary = bench_summary(folder, run.config, run.stats, elapsed, result, code, run.interrupted)
    if failure is not None:
        summary["messages"] = [f"Stopped: {redact(str(failure))}"]
    files = write_record(folder, summary)
    result["run"] = str(folder.path)
    if options.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    elif failure is None or _answered(stages):
        # (a bench stopped before the target answered anything has no table, no verdict:
        # only its cause, below)
        print(format_table(stages))
        print(knee_line(stages, run.limit_ms, run.interrupted))
        if options.writes:
            print(_synthetic_line(ledger))
        print("\n".join(files))
    if ledger.pending:
        shown = ", ".join(sorted(ledger.pending)[:10])
        note(f"bulksync: {len(ledger.pending)} synthetic object(s) may remain: {shown}")
    if failure is not None:
        note(f"bulksync: {redact(str(failure))}")
    return BenchReport(code, result)


def _answered(stages: list[StageTally]) -> bool:
    """Whether the target answered any request of the ramp (a transport failure is none)."""
    return any(key.isdigit() for stage in stages for key in stage.statuses)


def _synthetic_line(ledger: Ledger) -> str:
    made, gone, left = ledger.created, ledger.deleted, len(ledger.pending)
    line = f"synthetic objects: {made} created, {gone} deleted, {left} left"
    if ledger.never_created:  # deletes answered 404 for creates that never took effect
        line += f" ({ledger.never_created} never created)"
    return line
