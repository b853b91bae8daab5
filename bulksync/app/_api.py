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
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bulksync.app import _loop, runner
from bulksync.app._api_inputs import Source, with_inputs
from bulksync.app.config import Config, load_config, validate
from bulksync.app.prune import PruneSkipped
from bulksync.spi._errors import BulksyncError

__all__ = ["Job", "RunReport"]


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did. ``failed > 0`` is not an exception: each failed item has its result."""

    exit_code: int  # the CLI's exit code for the same run (README, "Exit codes")
    summary: Mapping[str, Any]  # the run's summary, as written beside the results
    results: Path  # this run's results file (JSON lines, one per input item)
    total: int
    succeeded: int
    failed: int
    skipped: int
    interrupted: bool
    # What stopped the run early (raised unless ``raise_on_stop=False``), else None.
    stopped: BulksyncError | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """Every item succeeded or was skipped, and nothing stopped the run."""
        return self.exit_code == runner.EXIT_OK

    def items(self) -> Iterator[dict[str, Any]]:
        """The result lines of this run, read lazily from :attr:`results`."""
        with self.results.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


class Job:
    """A sync job: a target, inputs, limits, output, as in a job TOML file.

    ``Job(config)`` takes a :class:`bulksync.Config`; ``Job(target={"kind": "fake"},
    inputs={"links": "links.jsonl"})`` builds one from tables, exactly as the TOML's
    (relative paths against the current folder); :meth:`from_toml` reads a file.
    """

    def __init__(self, config: Config | None = None, /, **tables: Mapping[str, Any]) -> None:
        # No input yet is fine: run(links=rows) may give it.
        if config is None:
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
            done = await runner.run_job_async(config, quiet, options)
        summary = done.summary
        # A prune skipped for unreadable lines is exit 1 with failed items, not a stop.
        stopped = None if isinstance(done.failure, PruneSkipped) else done.failure
        report = RunReport(
            exit_code=done.exit_code,
            summary=summary,
            results=self._config.output.results.resolve(),
            total=int(summary.get("total", 0)),
            succeeded=int(summary.get("succeeded", 0)),
            failed=int(summary.get("failed", 0)),
            skipped=int(summary.get("skipped", 0)),
            interrupted=done.exit_code == runner.EXIT_INTERRUPTED,
            stopped=stopped,
        )
        if stopped is not None and raise_on_stop:
            # Every item has its result line already: say where, for whoever catches this.
            stopped.add_note(f"results: {report.results}")
            raise stopped
        return report

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
