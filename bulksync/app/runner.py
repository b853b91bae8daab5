"""Run one configured job: open the inputs, drive the engine, write results and summary."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from bulksync.app import _loop
from bulksync.app._dry_run import dry_run
from bulksync.app._job_check import check_job, check_stage_names
from bulksync.app._job_inputs import input_records, open_records, prune_kinds
from bulksync.app._plan_line import announce
from bulksync.app._quota import open_quota_book, quota_summary
from bulksync.app._remote_listing import list_target, lister_of, remote_index
from bulksync.app._retry_select import RetrySelection
from bulksync.app._run_folder import new_run_folder, point_at
from bulksync.app._run_record import complete_summary, finish_record, runs_dir_of
from bulksync.app._sharding import ShardInputs, shard_results
from bulksync.app._state_open import open_state
from bulksync.app._stats_lines import print_stats
from bulksync.app._telemetry import Snapshot, take_snapshot
from bulksync.app._timeline import Timeline
from bulksync.app._totals import StageTotals
from bulksync.app.config import Config
from bulksync.app.progress import RunProgress, count_lines, note
from bulksync.app.prune import PruneGuardError, PruneSkipped, max_delete_limit, prune
from bulksync.app.wiring import BuiltTarget, build_connector, build_target, retry_policy
from bulksync.engine._engine import AnyInput, Engine, EngineOptions, Input, StageCounters
from bulksync.engine._preflight import preflight, stall_limit
from bulksync.spi._errors import (
    AuthError,
    BulksyncError,
    ConfigError,
    QuotaExhausted,
    first_bulksync_error,
)
from bulksync.spi._records import BadRecord, Kind, Record
from bulksync.spi._redact import redact
from bulksync.store._backend import StateBackend
from bulksync.store.remote import RemoteIndex
from bulksync.store.results import (
    ItemResult,
    ResultSink,
    ResultTee,
    ResultWriter,
    format_summary,
    summary_path,
)
from bulksync.store.shard import Shard
from bulksync.store.verdict import Judge

__all__ = [
    "LiveInputs",
    "PruneGuardError",
    "RunOptions",
    "RunReport",
    "max_delete_limit",
    "run_job",
]

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_UNREACHABLE = 4  # TargetUnreachable.exit_code
EXIT_INTERNAL = 5  # set by the command line when a bug escapes (bulksync.spi._errors)
EXIT_QUOTA = 6  # QuotaExhausted.exit_code: a rerun resumes once the window frees up


@dataclass(slots=True)
class RunReport:
    exit_code: int
    summary: dict[str, Any]
    failure: BulksyncError | None = None  # what stopped the run, for the Python API to raise


@dataclass(slots=True)
class RunOptions:
    """How this run uses the state: the command-line modes of `bulksync run`."""

    full: bool = False  # push everything again, whatever the state says
    dry_run: bool = False  # print the plan, send nothing
    prune: bool = False  # delete what earlier runs pushed and the input no longer holds
    max_delete: str = "5%"  # prune guard: a count ("100") or a share of the state ("5%")
    # retry-failed by identity: the failed keys, found wherever they now are in the input
    only_keys: RetrySelection | None = None
    strict_fields: bool = False  # an unknown input field fails its line (not only a warning)
    # Ctrl-C/SIGTERM handling; only ever on the main thread (signal handlers cannot be set
    # elsewhere). The Python API turns it off inside a caller's own event loop.
    signals: bool = True
    # --shard I/N: this run takes the items whose key hashes to shard I (bulksync.store.shard)
    shard: Shard | None = None
    live: LiveInputs | None = None  # the Python API's stream()


@dataclass(slots=True, frozen=True)
class LiveInputs:
    """Records given in code for some kinds (the config names no file for them), each
    result handed to ``on_result`` as it is written, and the engine to ``on_engine`` once
    built (to size the caller's read-ahead, and to stop it)."""

    records: Mapping[Kind, AsyncIterable[Record | BadRecord]]
    on_result: Callable[[ItemResult], None]
    on_engine: Callable[[Engine], None]


def run_job(config: Config, *, quiet: bool = False, options: RunOptions | None = None) -> RunReport:
    """Run the job and return its exit code; config and input-file errors raise."""
    return _loop.run(run_job_async, config, quiet, options)


async def run_job_async(
    config: Config, quiet: bool = False, options: RunOptions | None = None
) -> RunReport:
    """:func:`run_job` inside a running event loop (the demo runs the sandbox beside it)."""
    mode = options or RunOptions()
    live = mode.live
    if live is not None and (mode.prune or mode.dry_run or mode.only_keys is not None):
        raise ConfigError("rows streamed from code cannot be pruned, planned or retried: run()")
    if mode.prune:
        if mode.only_keys is not None:
            # Only some lines are fed: every other line would look gone and be deleted.
            raise ConfigError("--prune cannot be used with retry-failed")
        max_delete_limit(mode.max_delete, 0)  # a bad value fails now, not after the sync
        if mode.shard is not None:
            # A shard sees only its part of the input: every other item would look gone.
            raise ConfigError("--prune cannot be used with --shard (run prune unsharded)")
    if mode.shard is not None:
        config = shard_results(config, mode.shard)
    # What the target cannot do fails now, before the state, the inputs or any request.
    checked = build_connector(config)
    kinds, enabled = prune_kinds(config, () if live is None else live.records), config.state.enabled
    check_job(checked, kinds, prune=mode.prune, full=mode.full, state=enabled)
    check_stage_names(checked, config.limits.stage_concurrency)
    with ExitStack() as stack:
        state = open_state(config, stack, exclusive=not mode.dry_run, shard=mode.shard)
        sharding = None if mode.shard is None else ShardInputs(mode.shard)
        # The totals are read only for a display someone will see: the bars, or stats lines.
        show_progress = config.output.progress and not quiet and sys.stderr.isatty()
        stats_every = 0.0 if quiet or show_progress else config.output.stats_interval
        inputs, totals = _open_inputs(
            config,
            stack,
            show_progress or stats_every > 0,
            mode.strict_fields,
            keys=mode.only_keys,
            sharding=sharding,
        )
        if mode.dry_run:
            plan = await dry_run(
                config, stack, inputs, state, mode.full, mode.prune, mode.max_delete, quiet, checked
            )
            return RunReport(EXIT_OK, plan)
        if state is not None and not mode.prune:
            state.keep_seen = False  # nothing reads it: no prune in this run
        built = build_target(config)
        # Earlier runs' requests to this instance count against its quota too.
        quota_book = open_quota_book(config, built.target.budget, stack)
        folder = new_run_folder(runs_dir_of(config))
        writer = ResultWriter(folder.results)
        sink: ResultSink = writer if live is None else ResultTee(writer, live.on_result)
        stack.callback(writer.close)
        # Whatever read the configured results path before reads this run's, as it runs; the
        # last run's summary beside it goes, so a killed run is not read with another's.
        point_at(folder.results, config.output.results)
        summary_path(config.output.results).unlink(missing_ok=True)
        remote = remote_index(config, built, mode.full, stack)
        engine_options = _engine_options(config, state, mode, remote)
        if sharding is not None:
            engine_options.shard = sharding.gate(config.state.dependency_wait_s)
        engine = Engine(built.connector, built.target, sink, engine_options)
        if live is not None:
            live.on_engine(engine)
        started = time.monotonic()

        stage_totals = StageTotals()

        def sample() -> Snapshot:
            return take_snapshot(engine, started, totals, stage_totals.by_label)

        progress = RunProgress(sample, totals, enabled=show_progress)
        stats_json = config.output.stats_format == "json"
        timeline = Timeline(folder.timeline, sample, engine.stats.take_recent_latency)
        stack.callback(timeline.close)
        failure: BulksyncError | None = None
        engines = [engine]
        deleted: list[int] = []

        async def work() -> None:
            # A shared budget whose Redis is out of reach stops the run before any request.
            await built.target.budget.open()
            # Fail fast: a target that cannot serve the run stops it before the first item.
            # A quota used up already: nothing can go, the engine ends every item "not attempted".
            with suppress(QuotaExhausted):
                await preflight(
                    built.connector, built.target, engine.stats, config.target.timeout_s
                )
            pages: list[int] = []
            if remote is not None:

                async def listing() -> None:
                    pages.append(await list_target(config, built, engine.client, remote, quiet))

                # Cut by the quota, the listing still judges what it holds: the rest can only
                # end "not attempted", nothing more being sent.
                try:
                    await _until_stopped(engine, listing)
                except* QuotaExhausted:
                    pass
            if config.output.plan and not quiet:  # from a pass of its own over the inputs
                keys = mode.only_keys
                line = await announce(
                    config,
                    lambda: _open_inputs(
                        config, stack, False, mode.strict_fields, keys, sharding and sharding.plan()
                    )[0],
                    Judge(state, remote, lister_of(built), mode.full),
                    built.connector,
                    prune=mode.prune,
                    max_delete=mode.max_delete,
                    stop=engine.stop,
                    listing_pages=sum(pages),
                )
                if line is not None:
                    note(line)
            if quota_book is not None and quota_book.earlier and not quiet:
                note(quota_book.earlier)
            await engine.run(inputs if live is None else _with_live(live, inputs))
            if mode.prune and not engine.interrupted and engine.quota is None:
                kinds = prune_kinds(config)
                done = await prune(engines, built, writer, state, kinds, mode.max_delete, remote)
                deleted.append(done)

        try:
            with progress:
                watchers: list[Callable[[], Coroutine[Any, Any, None]]] = [
                    progress.watch,
                    partial(print_stats, sample, stats_every, stats_json),
                    timeline.watch,
                ]
                if totals and config.inputs.assets is not None and mode.only_keys is None:
                    watchers.append(_asset_totals(config, built, stage_totals))
                if quota_book is not None:
                    watchers.append(quota_book.watch)
                signals = mode.signals and threading.current_thread() is threading.main_thread()
                await _drive(engines, work, watchers, signals=signals)
        except BulksyncError as exc:
            failure = exc
        finally:
            await built.target.transport.aclose()
            await built.target.budget.aclose()
        if failure is None and engine.quota is not None:
            failure = engine.quota  # a clean stop: every item has its result
        if isinstance(failure, QuotaExhausted) and quota_book is not None:
            failure = quota_book.remembered(failure)
        interrupted = any(e.interrupted for e in engines)
        summary = engine.stats.summary(time.monotonic() - started, interrupted)
        if mode.prune:
            summary["deleted"] = sum(deleted) if deleted else 0
        if isinstance(failure, PruneSkipped):
            summary["messages"] = [redact(str(failure))]  # the sync itself went on
        elif failure is not None:
            summary["messages"] = [f"Stopped: {redact(str(failure))}"]
        if isinstance(failure, QuotaExhausted):
            summary["quota"] = quota_summary(failure)
        if mode.shard is not None:
            summary["shard"] = {"index": mode.shard.index, "count": mode.shard.count}
        code = _exit_code(failure, interrupted, summary)
        timeline.close()
        complete_summary(summary, folder, config, engine, code)
        files = finish_record(folder, config, summary)
    if not quiet:
        print(format_summary(summary))
        print(f"results: {config.output.results}")
        print(f"summary: {summary_path(config.output.results)}")
        print("\n".join(files))
    if failure is not None:
        note(f"bulksync: {redact(str(failure))}")
    return RunReport(code, summary, failure)


def _with_live(live: LiveInputs, inputs: list[Input]) -> list[AnyInput]:
    """Every input, assets first (the links may point at them)."""
    return sorted([*live.records.items(), *inputs], key=lambda given: given[0] != "asset")


def _asset_totals(
    config: Config, built: BuiltTarget, totals: StageTotals
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The asset stages' own totals (an upload has nothing to do for a remotePath)."""
    path = config.inputs.assets
    assert path is not None

    stages = [(StageCounters("asset", s.name).label, s) for s in built.connector.stages("asset")]
    return partial(totals.count, partial(input_records, config, path, "asset"), stages)


def _exit_code(failure: BulksyncError | None, interrupted: bool, summary: dict[str, Any]) -> int:
    if failure is not None:
        return EXIT_AUTH if isinstance(failure, AuthError) else failure.exit_code
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_ITEMS if summary["failed"] else EXIT_OK


def _engine_options(
    config: Config, state: StateBackend | None, mode: RunOptions, remote: RemoteIndex | None
) -> EngineOptions:
    limits = config.limits
    return EngineOptions(
        concurrency=limits.concurrency,
        stage_concurrency=dict(limits.stage_concurrency),
        retry=retry_policy(config),
        grace_s=limits.grace_s,
        state=state,
        full=mode.full,
        remote=remote,
        unreachable_after=limits.unreachable_after,
        stall_s=stall_limit(config.target.timeout_s, limits.stall_s),
    )


def _open_inputs(
    config: Config,
    stack: ExitStack,
    count: bool,
    strict_fields: bool = False,
    keys: RetrySelection | None = None,
    sharding: ShardInputs | None = None,
) -> tuple[list[Input], dict[Kind, int]]:
    inputs: list[Input] = []
    totals: dict[Kind, int] = {}
    sources: list[tuple[Kind, Path | None]] = [
        ("asset", config.inputs.assets),
        ("link", config.inputs.links),
    ]
    if keys is not None:
        keys.check_sources(str(path) for _, path in sources if path is not None)
    for kind, path in sources:
        if path is None:
            continue
        stream = open_records(config, path, kind, strict_fields)
        stack.callback(stream.close)
        records: Iterable[Record | BadRecord] = stream
        if keys is not None:
            records = keys.select(str(path), stream)
            totals[kind] = keys.count(str(path))
        elif count:
            totals[kind] = count_lines(path)  # a shard's bar counts every line it reads
        if sharding is not None:
            records = sharding.select(kind, records)
        inputs.append((kind, records))
    return inputs, totals


async def _until_stopped(engine: Engine, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` until it ends or a Ctrl-C stops the engine (listing has nothing in flight)."""
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await engine.stop.wait()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await work()
        group.cancel_scope.cancel()


async def _drive(
    engines: list[Engine],
    work: Callable[[], Awaitable[None]],
    watchers: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    *,
    signals: bool = True,
) -> None:
    """``work`` beside the signal handler and the ``watchers`` (displays), which it ends."""
    try:
        async with anyio.create_task_group() as group:
            if signals:
                group.start_soon(_watch_signals, engines)
            for watcher in watchers:
                group.start_soon(watcher)
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
