"""The live progress display of a run: one bar per stage, on stderr, only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import anyio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from bulksync.engine._engine import Engine
from bulksync.spi._records import Kind


def count_lines(path: Path) -> int:
    """Lines in an input file, for the progress total; read in 1 MiB blocks, not parsed."""
    count = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
    return count


class RunProgress:
    """Per stage: done / total, rate, ETA and failures; refreshed by :meth:`watch`."""

    def __init__(self, engine: Engine, totals: Mapping[Kind, int], enabled: bool) -> None:
        self._engine = engine
        self._totals = totals
        self._console = Console(stderr=True)
        self.enabled = enabled and self._console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} /s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._tasks: dict[int, TaskID] = {}
        self._first_seen: dict[int, float] = {}
        self._last_change: dict[int, float] = {}
        self._last_count: dict[int, int] = {}

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self.refresh()
            self._progress.stop()

    def refresh(self) -> None:
        now = time.monotonic()
        for index, counters in enumerate(self._engine.counters):
            finished = counters.done + counters.failed
            # Each stage's rate counts from its own first item: links start after assets.
            if finished and index not in self._first_seen:
                self._first_seen[index] = now
            if finished != self._last_count.get(index):
                self._last_count[index], self._last_change[index] = finished, now
            # ... and stops counting when the stage stops moving (done, or waiting).
            elapsed = self._last_change.get(index, now) - self._first_seen.get(index, now)
            rate = f"{counters.done / elapsed:.1f}" if elapsed > 0.5 else "-"
            if index not in self._tasks:
                total = self._totals.get(counters.kind)
                description = f"{counters.kind}s {counters.name}"
                self._tasks[index] = self._progress.add_task(
                    description, total=total, rate=rate, failed=0
                )
            self._progress.update(
                self._tasks[index], completed=finished, rate=rate, failed=counters.failed
            )

    async def watch(self, interval_s: float = 0.25) -> None:
        if not self.enabled:
            return
        while True:
            self.refresh()
            await anyio.sleep(interval_s)


def note(message: str) -> None:
    """A one-line message to the user, on stderr, outside the results."""
    print(message, file=sys.stderr, flush=True)
