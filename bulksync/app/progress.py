"""The live progress display of a run, on stderr, only on a terminal."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from bulksync.app._stats_lines import status_text
from bulksync.app._telemetry import Snapshot, format_rate
from bulksync.spi._notes import note as note  # the app's modules take it from here
from bulksync.spi._records import Kind

# Requests/s and items/s on the display are over this many recent seconds: long enough to be
# steady, short enough to show a throttled run slowing down.
RATE_WINDOW_S = 10.0


def count_lines(path: Path) -> int:
    """Items in an input file, for the progress total; read in 1 MiB blocks, not parsed.

    A CSV file's header is no item; a last line without its newline is one."""
    count, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        count += 1
    if path.suffix.lower() in (".csv", ".tsv") and count:
        count -= 1
    return count


class RunProgress:
    """One bar per stage (done / total, failed, skipped, items/s, ETA) and a status line for
    the run (elapsed, requests, pace, in flight, retries, 429s, pauses, token refreshes);
    refreshed by :meth:`watch` from :func:`bulksync.app._telemetry.take_snapshot`."""

    def __init__(
        self, sample: Callable[[], Snapshot], totals: Mapping[Kind, int], enabled: bool
    ) -> None:
        self._sample = sample
        self._totals = totals
        self._console = Console(stderr=True)
        self.enabled = enabled and self._console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7}/s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("[yellow]{task.fields[skipped]} skipped"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._status = Text()
        self._live = Live(
            Group(self._progress, self._status),
            console=self._console,
            refresh_per_second=4,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._window: deque[Snapshot] = deque()

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self.refresh()
            self._live.stop()

    def refresh(self) -> None:
        now = self._sample()
        if self._window and len(self._window[-1].stages) != len(now.stages):
            self._window.clear()  # the stages appeared (or a flow began): rates start afresh
        self._window.append(now)
        while self._window and now.at - self._window[0].at > RATE_WINDOW_S:
            self._window.popleft()
        before = self._window[0] if self._window[0] is not now else None
        for index, stage in enumerate(now.stages):
            rate = "-"
            if before is not None and index < len(before.stages) and now.at > before.at:
                moved = stage.finished - before.stages[index].finished
                rate = format_rate(moved / (now.at - before.at))
            failed, skipped = f"{stage.failed:,}", f"{stage.skipped:,}"
            task = self._tasks.get(stage.label)
            if task is None:
                task = self._progress.add_task(
                    stage.label, total=stage.total, rate=rate, failed=failed, skipped=skipped
                )
                self._tasks[stage.label] = task
            self._progress.update(
                task,
                completed=stage.finished,
                total=stage.total,
                rate=rate,
                failed=failed,
                skipped=skipped,
            )
        self._status.plain = status_text(now, before)

    async def watch(self, interval_s: float = 0.25) -> None:
        if not self.enabled:
            return
        while True:
            self.refresh()
            await anyio.sleep(interval_s)
