"""Run one configured job: open the inputs, drive the engine, write results and summary."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .config import Config
from .engine import Engine, EngineOptions, Input
from .errors import AuthError, BulksyncError, first_bulksync_error
from .progress import RunProgress, count_lines, note
from .readers import read_records
from .records import Kind
from .redact import redact
from .results import ResultWriter, format_summary, summary_path, write_summary
from .retry import RetryPolicy
from .targets import build_target

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(slots=True)
class RunReport:
    exit_code: int
    summary: dict[str, Any]


def run_job(config: Config, *, quiet: bool = False) -> RunReport:
    """Run the job and return its exit code; config and input-file errors raise."""
    return anyio.run(run_job_async, config, quiet)


async def run_job_async(config: Config, quiet: bool = False) -> RunReport:
    """:func:`run_job` inside a running event loop (the demo runs the sandbox beside it)."""
    built = build_target(config)
    limits = config.limits
    options = EngineOptions(
        concurrency=limits.concurrency,
        stage_concurrency=dict(limits.stage_concurrency),
        retry=RetryPolicy(max_attempts=limits.max_attempts, max_elapsed_s=limits.max_elapsed_s),
        grace_s=limits.grace_s,
    )
    with ExitStack() as stack:
        inputs: list[Input] = []
        totals: dict[Kind, int] = {}
        sources: list[tuple[Kind, Path | None]] = [
            ("asset", config.inputs.assets),
            ("link", config.inputs.links),
        ]
        for kind, path in sources:
            if path is None:
                continue
            media_root, fmt = config.inputs.media_root, config.inputs.format
            stream = read_records(path, kind, media_root=media_root, fmt=fmt)
            stack.callback(stream.close)
            inputs.append((kind, stream))
            totals[kind] = count_lines(path)
        writer = ResultWriter(config.output.results)
        stack.callback(writer.close)
        engine = Engine(built.connector, built.target, writer, options)
        progress = RunProgress(engine, totals, enabled=config.output.progress and not quiet)
        started = time.monotonic()
        failure: BulksyncError | None = None
        try:
            with progress:
                await _drive(engine, inputs, progress)
        except BulksyncError as exc:
            failure = exc
        finally:
            await built.target.transport.aclose()
        summary = engine.stats.summary(time.monotonic() - started, engine.interrupted)
        if failure is not None:
            summary["messages"] = [f"Stopped: {redact(str(failure))}"]
        write_summary(summary_path(config.output.results), summary)
    if not quiet:
        print(format_summary(summary))
        print(f"results: {config.output.results}")
        print(f"summary: {summary_path(config.output.results)}")
    if failure is not None:
        note(f"bulksync: {redact(str(failure))}")
        code = EXIT_AUTH if isinstance(failure, AuthError) else failure.exit_code
        return RunReport(code, summary)
    if engine.interrupted:
        return RunReport(EXIT_INTERRUPTED, summary)
    return RunReport(EXIT_FAILED_ITEMS if summary["failed"] else EXIT_OK, summary)


async def _drive(engine: Engine, inputs: list[Input], progress: RunProgress) -> None:
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_signals, engine)
            group.start_soon(progress.watch)
            await engine.run(inputs)
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        raise first_bulksync_error(group_error) from None


async def _watch_signals(engine: Engine) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if engine.stop.is_set():
                note(f"bulksync: {name} again, stopping now")
                engine.cancel_now()
            else:
                grace = engine.options.grace_s
                note(f"bulksync: {name}: finishing in-flight items (up to {grace:g} s)...")
                engine.request_stop()
