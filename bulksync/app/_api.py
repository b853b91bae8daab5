"""The Python API: a job built from the CLI's own typed config, run from a script, a worker
thread or a running event loop (a notebook), with a typed report.

The run itself is :func:`bulksync.app.runner.run_job_async`, the CLI's: same results, same
summary, same exit codes. What differs is who owns the process: off the main thread, or inside
a loop the caller runs, no signal handler is installed (Ctrl-C belongs to the caller there), and
a run stopped by config, auth, an unreachable target or an exhausted quota raises the exception
the CLI would have turned into its one-line reason and exit code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from bulksync.app import _loop, runner
from bulksync.app._api_inputs import Source, with_inputs
from bulksync.app._api_report import RunReport, raise_stopped, report_of
from bulksync.app._api_stream import ResultStream
from bulksync.app.config import Config, load_config, validate
from bulksync.spi._errors import ConfigError
from bulksync.spi._notes import notes_to_log

__all__ = ["Job", "RunReport"]


class Job:
    """A sync job: a target, inputs, limits, output, as in a job TOML file.

    ``Job(config)`` takes a :class:`bulksync.Config`; ``Job(target={"kind": "fake"},
    inputs={"links": "links.jsonl"})`` builds one from tables, exactly as the TOML's
    (relative paths against the current folder); :meth:`from_toml` reads a file.
    """

    def __init__(self, config: Config | None = None, /, **tables: Mapping[str, Any]) -> None:
        # No input yet is fine: run(links=rows) may give it.
        if config is None:
            if "target" not in tables:
                raise ConfigError(
                    'Job() needs a target: Job(target={"kind": "quable", ...}), '
                    'Job(target={"kind": "fake"}) for the built-in in-memory one, '
                    'or Job.from_toml("job.toml")'
                )
            config = load_config(None, _dotted(tables), needs_inputs=False)
        elif tables:
            raise TypeError("Job(config) takes no tables: give either a Config or tables")
        else:
            validate(config, needs_inputs=False)
        self._config = config

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Mapping[str, Any]) -> Job:
        """Read a job TOML file; each keyword overrides keys of one table, as the CLI's flags
        do: ``Job.from_toml("job.toml", limits={"concurrency": 4})``."""
        return cls(load_config(Path(path), _dotted(overrides), needs_inputs=False))

    @property
    def config(self) -> Config:
        """The typed config this job runs with (from a file or tables: paths resolved)."""
        return self._config

    async def arun(
        self,
        *,
        assets: Source | None = None,
        links: Source | None = None,
        full: bool = False,
        quiet: bool = True,
        raise_on_stop: bool = True,
    ) -> RunReport:
        """Run the job in the caller's event loop; installs no signal handler (the loop's
        owner handles Ctrl-C). ``assets``/``links``: a path, or rows (any iterable or async
        iterable of dicts, each checked like a file line: row ``i`` is result line ``i + 1``)
        in place of the config's input. ``full``: push everything again, whatever the state
        says. ``quiet`` False prints the CLI's summary. Raises :class:`bulksync.ConfigError`,
        :class:`bulksync.AuthError`, :class:`bulksync.TargetUnreachable` or
        :class:`bulksync.QuotaExhausted` when one stops the run (the results are written
        first), unless ``raise_on_stop`` is False: then ``report.stopped`` holds it."""
        return await self._run(assets, links, full, quiet, raise_on_stop, signals=False)

    def run(
        self,
        *,
        assets: Source | None = None,
        links: Source | None = None,
        full: bool = False,
        quiet: bool = True,
        raise_on_stop: bool = True,
    ) -> RunReport:
        """:meth:`arun` from synchronous code: a script, a worker thread (an Airflow or Dagster
        task), or a cell of a notebook whose loop already runs (then the job runs on a
        thread of its own, with its own loop). Ctrl-C finishes in-flight items first, as the
        CLI does, only when called on the main thread with no loop running."""
        work = partial(self._run, assets, links, full, quiet, raise_on_stop)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _loop.run(partial(work, signals=True))
        # A running loop in this thread cannot be re-entered: a thread with a loop of its own.
        with ThreadPoolExecutor(1, thread_name_prefix="bulksync-run") as pool:
            return pool.submit(_loop.run, partial(work, signals=False)).result()

    def stream(
        self,
        *,
        assets: Source | None = None,
        links: Source | None = None,
        window: int | None = None,
        raise_on_stop: bool = True,
    ) -> ResultStream:
        """Run the job in the caller's event loop (asyncio), yielding each item's
        :class:`bulksync.ItemResult` as it is written::

            async with job.stream(links=rows) as results:
                async for result in results:
                    ...

        ``assets``/``links``: as for :meth:`arun` (rows, or a path), else the config's files.
        Rows are pulled as the run goes, never ahead of the results taken by more than
        ``window`` items (at least what the engine holds at once: the default), so a slow
        consumer slows the producer and memory stays flat. Leaving the ``async with`` (or
        breaking out of the loop) stops the run: in-flight items finish, rows not yet pulled
        get no result. A stop (auth, unreachable target, quota) raises once every result
        is yielded, unless ``raise_on_stop`` is False; :attr:`ResultStream.report` then has
        the run's report. A stream has no ``full``, prune or plan: those read the input more
        than once (use :meth:`arun`)."""
        return ResultStream(self._config, assets, links, window, raise_on_stop, self._run_once)

    async def _run(
        self,
        assets: Source | None,
        links: Source | None,
        full: bool,
        quiet: bool,
        raise_on_stop: bool,
        signals: bool,
    ) -> RunReport:
        options = runner.RunOptions(full=full, signals=signals)
        with ExitStack() as stack:
            config = await with_inputs(self._config, stack, assets, links)
            validate(config)  # an input now, from the config or the call
            report = await self._run_once(config, options, quiet)
        if report.stopped is not None and raise_on_stop:
            raise_stopped(report)
        return report

    async def _run_once(
        self, config: Config, options: runner.RunOptions, quiet: bool = True
    ) -> RunReport:
        if quiet:
            with notes_to_log():
                done = await runner.run_job_async(config, quiet, options)
        else:
            done = await runner.run_job_async(config, quiet, options)
        return report_of(done, self._config.output.results.resolve())

    def __repr__(self) -> str:
        target = self._config.target
        return f"Job(kind={target.kind!r}, base_url={target.base_url!r})"


def _dotted(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``limits={"concurrency": 4}`` as the CLI's override ``"limits.concurrency": 4``."""
    flat: dict[str, Any] = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise TypeError(f"{name}= must be a table (a dict of its keys), not {table!r}")
        for key, value in table.items():
            flat[f"{name}.{key}"] = value
    return flat
