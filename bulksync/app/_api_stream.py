"""``Job.stream()``: the run in the caller's event loop, its results yielded as they are written,
its inputs pulled no faster than the results are taken.

Backpressure is a window of permits: one is taken before each input item is pulled (a row
from the caller's iterable, or a line of a file), and given back when the caller takes that
item's result. Every item has exactly one result, so at most ``window`` items are ever
between the producer and the consumer: a consumer that sleeps holds the producer back, and
memory stays flat. The window is never smaller than what the engine itself holds at once
(its queues, its workers, a grouped stage's open groups), or the engine could wait for items
the window would only let through once it had answered.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
)
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from bulksync.app import runner
from bulksync.app._api_inputs import Source, check_sources
from bulksync.app._api_report import RunReport, raise_stopped
from bulksync.app._job_inputs import open_records
from bulksync.app.config import Config, validate
from bulksync.app.registry import target_spec
from bulksync.engine._engine import Engine
from bulksync.inputs.readers import stream_records
from bulksync.spi._errors import ConfigError, InputFileError
from bulksync.spi._records import BadRecord, Kind, Record
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import ItemResult

__all__ = ["ResultStream"]

Item = Record | BadRecord
RunOnce = Callable[[Config, runner.RunOptions], Coroutine[Any, Any, RunReport]]


class ResultStream(AsyncIterator[ItemResult]):
    """The results of one run, as they are written (see :meth:`bulksync.Job.stream`).

    Iterate it once, inside ``async with`` (or call :meth:`aclose`) so that leaving early
    stops the run at once; ``async for result in job.stream(...)`` left by ``break`` stops it
    when the loop's iterator is collected (at once in CPython).
    """

    def __init__(
        self,
        config: Config,
        assets: Source | None,
        links: Source | None,
        window: int | None,
        raise_on_stop: bool,
        run_once: RunOnce,
    ) -> None:
        check_sources(assets=assets, links=links)
        if window is not None and (not isinstance(window, int) or isinstance(window, bool)):
            raise TypeError(f"window= takes a number of items, not {type(window).__name__}")
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        sources: dict[Kind, Source | None] = {"asset": _absolute(assets), "link": _absolute(links)}
        self._run = _Run(config, sources, window or 0, raise_on_stop, run_once)
        self._iterator: AsyncGenerator[ItemResult, None] | None = None

    @property
    def window(self) -> int:
        """Items at most between the producer and the consumer (0 until the run starts)."""
        return self._run.window

    @property
    def report(self) -> RunReport | None:
        """The run's report once the stream is exhausted (or closed), else None."""
        return self._run.report

    def __aiter__(self) -> AsyncIterator[ItemResult]:
        if self._iterator is not None:
            raise RuntimeError("a ResultStream is iterated once: call job.stream() again")
        # The loop's iterator holds the run, not this object: a loop left by `break` drops
        # the iterator, whose closing stops the run.
        self._iterator = _results(self._run)
        return self._iterator

    async def __anext__(self) -> ItemResult:
        if self._iterator is None:
            self._iterator = _results(self._run)
        return await self._iterator.__anext__()

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the run if it still goes (in-flight items finish within the grace) and wait
        for it; the results not taken are in the results file."""
        if self._iterator is not None:
            await self._iterator.aclose()
        await self._run.halt()


async def _async(records: Iterable[Item]) -> AsyncIterator[Item]:
    for record in records:
        yield record


def _input_error(kind: Kind, taken: int, exc: Exception) -> InputFileError:
    if isinstance(exc, InputFileError):
        return exc
    what = redacted_excerpt(f"{type(exc).__name__}: {exc}", 300)
    error = InputFileError(f"<{kind}s>: the rows raised after {taken} row(s): {what}")
    error.__cause__ = exc
    return error


def _absolute(source: Source | None) -> Source | None:
    # As the CLI's --links: against the folder current when the stream is made.
    return os.path.abspath(source) if isinstance(source, str | os.PathLike) else source


async def _results(run: _Run) -> AsyncGenerator[ItemResult, None]:
    task = run.start()
    try:
        while True:
            while not run.results:
                if task.done():
                    report = run.outcome(task)
                    if report.stopped is not None and run.raise_on_stop:
                        raise_stopped(report)
                    return
                run.arrived.clear()
                await run.arrived.wait()
            result = run.results.popleft()
            run.permits.release()
            yield result
    finally:
        await run.halt()


class _Run:
    """One stream's run: its task, the results not yet taken, the window's permits."""

    def __init__(
        self,
        config: Config,
        given: dict[Kind, Source | None],
        asked: int,
        raise_on_stop: bool,
        run_once: RunOnce,
    ) -> None:
        self._config = config
        self._given = given
        self._asked = asked
        self.raise_on_stop = raise_on_stop
        self._run_once = run_once
        self.results: deque[ItemResult] = deque()
        self.arrived = asyncio.Event()
        self.permits = asyncio.Semaphore(0)  # granted once the engine exists (its size)
        self.window = 0
        self.report: RunReport | None = None
        self._kinds: list[Kind] = []
        self._engine: Engine | None = None
        self._task: asyncio.Task[RunReport] | None = None
        self._closing = False
        self._stack = ExitStack()  # the input files opened for the run
        self.input_error: InputFileError | None = None

    def start(self) -> asyncio.Task[RunReport]:
        config = self._config.model_copy(deep=True)
        sources: dict[Kind, Iterable[Item] | AsyncIterable[Item]] = {}
        for kind, given in self._given.items():
            configured = config.inputs.assets if kind == "asset" else config.inputs.links
            source = given if given is not None else configured
            if isinstance(source, str | os.PathLike):
                # Opened now: a missing file stops the stream before anything is sent.
                sources[kind] = self._stack.enter_context(open_records(config, Path(source), kind))
            elif source is not None:
                sources[kind] = self._rows(kind, source)
        if not sources:
            raise ConfigError("no input: give assets= and/or links=, or set them in [inputs]")
        self._kinds = list(sources)
        # Every input is pulled through the window, the config's files too.
        config.inputs.assets = config.inputs.links = None
        validate(config, needs_inputs=False)
        live = runner.LiveInputs(
            {kind: self._metered(kind, records) for kind, records in sources.items()},
            self._arrive,
            self._sized,
        )
        options = runner.RunOptions(signals=False, live=live)
        self._task = asyncio.get_running_loop().create_task(self._run_once(config, options))
        self._task.add_done_callback(lambda _: self.arrived.set())
        self._task.add_done_callback(lambda _: self._stack.close())
        return self._task

    def outcome(self, task: asyncio.Task[RunReport]) -> RunReport:
        """The run's report; a rows iterator that raised made it a stop (exit 2)."""
        report = task.result()
        if self.input_error is not None:
            error = self.input_error
            report = replace(report, exit_code=error.exit_code, stopped=error)
        self.report = report
        return report

    def _sized(self, engine: Engine) -> None:
        self._engine = engine
        held = max(engine.held_at_most(kind) for kind in self._kinds)
        self.window = max(self._asked, held)
        for _ in range(self.window):
            self.permits.release()

    def _arrive(self, result: ItemResult) -> None:
        if not self._closing:
            self.results.append(result)
            self.arrived.set()

    async def _metered(
        self, kind: Kind, source: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncIterator[Item]:
        records = aiter(source) if isinstance(source, AsyncIterable) else _async(source)
        taken = 0
        try:
            while True:
                await self.permits.acquire()
                if self._closing:
                    return
                try:
                    record = await anext(records)
                except StopAsyncIteration:
                    self.permits.release()
                    return
                except Exception as exc:
                    # The input ends here, as a file that cannot be read further: what was
                    # pulled still goes, and the stream raises once it is answered.
                    self.permits.release()
                    self.input_error = _input_error(kind, taken, exc)
                    return
                taken += 1
                yield record
        finally:
            close = getattr(records, "aclose", None)
            if close is not None:
                await close()

    async def _rows(
        self, kind: Kind, rows: Iterable[Any] | AsyncIterable[Any]
    ) -> AsyncIterator[Item]:
        name = f"<{kind}s>"  # row i is line i + 1 of it
        config = self._config
        root = config.inputs.media_root or Path.cwd()
        shape = target_spec(config.target.kind).input_shape
        async for record in stream_records(rows, kind, name, media_root=root, shape=shape):
            yield record

    async def halt(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        self._closing = True
        if self._engine is not None:
            self._engine.request_stop()
        self.permits.release()  # a pull waiting for a permit sees the stream closing
        report = await task
        self.report = self.report or report
