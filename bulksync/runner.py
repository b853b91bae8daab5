"""Run one configured job: open the inputs, drive the engine, write results and summary."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from .config import Config
from .engine import Engine, EngineOptions, Input
from .errors import AuthError, BulksyncError, ConfigError, first_bulksync_error
from .plan import format_plan, make_plan, plan_json
from .progress import RunProgress, count_lines, note
from .readers import read_records
from .records import Kind, Origin, Removal
from .redact import redact
from .results import ResultWriter, format_summary, summary_path, write_summary
from .retry import RetryPolicy
from .state import StateStore
from .targets import BuiltTarget, build_target

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(slots=True)
class RunReport:
    exit_code: int
    summary: dict[str, Any]


@dataclass(slots=True)
class RunOptions:
    """How this run uses the state: the command-line modes of `bulksync run`."""

    full: bool = False  # push everything again, whatever the state says
    dry_run: bool = False  # print the plan, send nothing
    prune: bool = False  # delete what earlier runs pushed and the input no longer holds
    max_delete: str = "5%"  # prune guard: a count ("100") or a share of the state ("5%")
    only_lines: dict[str, set[int]] | None = None  # retry-failed: source path -> lines


def run_job(config: Config, *, quiet: bool = False, options: RunOptions | None = None) -> RunReport:
    """Run the job and return its exit code; config and input-file errors raise."""
    return anyio.run(run_job_async, config, quiet, options)


async def run_job_async(
    config: Config, quiet: bool = False, options: RunOptions | None = None
) -> RunReport:
    """:func:`run_job` inside a running event loop (the demo runs the sandbox beside it)."""
    mode = options or RunOptions()
    if mode.prune:
        if mode.only_lines is not None:
            # Only some lines are fed: every other line would look gone and be deleted.
            raise ConfigError("--prune cannot be used with retry-failed")
        max_delete_limit(mode.max_delete, 0)  # a bad value fails now, not after the sync
    with ExitStack() as stack:
        state = _open_state(config, stack)
        # The totals are read only for a progress display someone will see.
        show_progress = config.output.progress and not quiet and sys.stderr.isatty()
        inputs, totals = _open_inputs(config, stack, mode.only_lines, show_progress)
        if mode.dry_run:
            plans = make_plan(inputs, state, full=mode.full, prune=mode.prune)
            if not quiet:
                print(format_plan(plans))
            return RunReport(EXIT_OK, {"plan": plan_json(plans)})
        built = build_target(config)
        writer = ResultWriter(config.output.results)
        stack.callback(writer.close)
        engine = Engine(built.connector, built.target, writer, _engine_options(config, state, mode))
        progress = RunProgress(engine, totals, enabled=show_progress)
        started = time.monotonic()
        failure: BulksyncError | None = None
        engines = [engine]
        deleted: list[int] = []

        async def work() -> None:
            await engine.run(inputs)
            if mode.prune and not engine.interrupted:
                deleted.append(await _prune(engines, built, writer, state, mode, config))

        try:
            with progress:
                await _drive(engines, work, progress)
        except BulksyncError as exc:
            failure = exc
        finally:
            await built.target.transport.aclose()
        interrupted = any(e.interrupted for e in engines)
        summary = engine.stats.summary(time.monotonic() - started, interrupted)
        if mode.prune:
            summary["deleted"] = sum(deleted) if deleted else 0
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
    if interrupted:
        return RunReport(EXIT_INTERRUPTED, summary)
    return RunReport(EXIT_FAILED_ITEMS if summary["failed"] else EXIT_OK, summary)


def _engine_options(config: Config, state: StateStore | None, mode: RunOptions) -> EngineOptions:
    limits = config.limits
    return EngineOptions(
        concurrency=limits.concurrency,
        stage_concurrency=dict(limits.stage_concurrency),
        retry=RetryPolicy(max_attempts=limits.max_attempts, max_elapsed_s=limits.max_elapsed_s),
        grace_s=limits.grace_s,
        state=state,
        full=mode.full,
    )


def _open_state(config: Config, stack: ExitStack) -> StateStore | None:
    if not config.state.enabled:
        return None
    path = config.state.path
    if not path.is_absolute():  # a config built in code: keep the state beside the results
        path = config.output.results.parent / path
    state = StateStore(path, f"{config.target.kind} {config.target.base_url}")
    stack.callback(state.close)
    return state


def _open_inputs(
    config: Config, stack: ExitStack, only_lines: dict[str, set[int]] | None, count: bool
) -> tuple[list[Input], dict[Kind, int]]:
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
        if only_lines is not None:
            wanted = only_lines.get(str(path), set())
            inputs.append((kind, (r for r in stream if r.origin.line in wanted)))
            totals[kind] = len(wanted)
        else:
            inputs.append((kind, stream))
            if count:
                totals[kind] = count_lines(path)
    return inputs, totals


async def _prune(
    engines: list[Engine],
    built: BuiltTarget,
    writer: ResultWriter,
    state: StateStore | None,
    mode: RunOptions,
    config: Config,
) -> int:
    """Delete what the state holds and this run's input did not, within the guard."""
    engine = engines[0]
    if state is None:
        raise ConfigError("--prune needs the state store ([state] enabled = true)")
    invalid = engine.stats.invalid
    if invalid:
        raise ConfigError(f"prune refused: {invalid} input line(s) could not be read")
    kinds: list[Kind] = []
    if config.inputs.links is not None:
        kinds.append("link")  # links first: they point at assets
    if config.inputs.assets is not None:
        kinds.append("asset")
    doomed = {kind: list(state.unseen(kind)) for kind in kinds}
    total = sum(len(items) for items in doomed.values())
    known = sum(state.count(kind) for kind in kinds)
    limit = max_delete_limit(mode.max_delete, known)
    if total > limit:
        raise PruneGuardError(
            f"prune stopped before deleting anything: it would delete {total} of {known} "
            f"items, above --max-delete {mode.max_delete} ({limit}); rerun with a higher "
            "--max-delete to allow it"
        )
    deleted = 0
    for kind in kinds:
        if not doomed[kind]:
            continue
        removals = [
            Removal(Origin("state", 0), kind, key, remote_id) for key, remote_id in doomed[kind]
        ]
        if any(e.stop.is_set() for e in engines):
            break  # stopped between two kinds
        options = replace(engine.options, state=None)
        # The same stats: deletions count in the summary and a failed one in the exit code.
        pruner = Engine(built.connector, built.target, writer, options, stats=engine.stats)
        engines.append(pruner)  # so that Ctrl-C reaches it
        try:
            await pruner.run([(kind, iter(removals))], deleting=True)
        finally:
            for key in pruner.succeeded_keys:
                state.forget(kind, key)
            deleted += len(pruner.succeeded_keys)
        if pruner.interrupted:
            break
    return deleted


class PruneGuardError(ConfigError):
    """Prune would delete more than --max-delete allows."""


def max_delete_limit(value: str, known: int) -> int:
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError(text)
            return int(known * share / 100)
        count = int(text)
        if count < 0:
            raise ValueError(text)
        return count
    except (ValueError, OverflowError):
        message = f"--max-delete takes a count or a percentage from 0 to 100%, got '{value}'"
        raise ConfigError(message) from None


async def _drive(
    engines: list[Engine], work: Callable[[], Awaitable[None]], progress: RunProgress
) -> None:
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_signals, engines)
            group.start_soon(progress.watch)
            await work()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        raise first_bulksync_error(group_error) from None


async def _watch_signals(engines: list[Engine]) -> None:
    """Ctrl-C or SIGTERM: stop taking new items (a second one: stop now), whatever runs."""
    stopping = False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if stopping:
                note(f"bulksync: {name} again, stopping now")
                for engine in engines:
                    engine.cancel_now()
            else:
                stopping = True
                grace = engines[0].options.grace_s
                note(f"bulksync: {name}: finishing in-flight items (up to {grace:g} s)...")
                for engine in engines:
                    engine.request_stop()
