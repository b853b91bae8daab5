"""The Python API's report of one run, from the run's own summary."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson

from bulksync.app import runner
from bulksync.app.prune import PruneSkipped
from bulksync.spi._errors import BulksyncError

__all__ = ["RunReport", "raise_stopped", "report_of"]


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did. ``failed > 0`` is not an exception: each failed item has its result."""

    exit_code: int  # the CLI's exit code for the same run (README, "Exit codes")
    summary: Mapping[str, Any] = field(repr=False)  # the run's summary, as written beside it
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


def report_of(done: runner.RunReport, results: Path) -> RunReport:
    summary = done.summary
    # A prune skipped for unreadable lines is exit 1 with failed items, not a stop.
    stopped = None if isinstance(done.failure, PruneSkipped) else done.failure
    return RunReport(
        exit_code=done.exit_code,
        summary=summary,
        results=results,
        total=int(summary.get("total", 0)),
        succeeded=int(summary.get("succeeded", 0)),
        failed=int(summary.get("failed", 0)),
        skipped=int(summary.get("skipped", 0)),
        interrupted=done.exit_code == runner.EXIT_INTERRUPTED,
        stopped=stopped,
    )


def raise_stopped(report: RunReport) -> NoReturn:
    """Raise what stopped the run; every item has its result line already: say where."""
    stopped = report.stopped
    assert stopped is not None
    stopped.add_note(f"results: {report.results}")
    raise stopped
