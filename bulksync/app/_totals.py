"""Each stage's own total for the displays: how many input items the stage has work for.

Counting lines gives every stage of a kind the same total, but an asset with a `remotePath`
has nothing to upload. So the asset input is read once more, in a worker thread beside the
run, asking each stage whether it applies; until that pass ends (seconds for a million
lines) the displays show the line count less the items already found not to apply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import anyio

from bulksync.inputs._validate import warnings_off
from bulksync.spi._connector import Job, Stage
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Record


class StageTotals:
    """Totals per stage label, filled in by :meth:`count` when its pass ends."""

    def __init__(self) -> None:
        self.by_label: dict[str, int] = {}
        self._stop = threading.Event()

    async def count(
        self,
        records: Callable[[], Iterable[Record | BadRecord]],
        stages: Sequence[tuple[str, Stage]],
    ) -> None:
        """Count, for each ``(label, stage)``, the items the stage applies to; a bad line
        counts for every stage (it is failed at the first one)."""
        try:
            counted = await anyio.to_thread.run_sync(
                _count, records, stages, self._stop, abandon_on_cancel=True
            )
        finally:
            self._stop.set()  # a run that ends first stops the pass
        if counted is not None:
            self.by_label.update(counted)


def _count(
    records: Callable[[], Iterable[Record | BadRecord]],
    stages: Sequence[tuple[str, Stage]],
    stop: threading.Event,
) -> dict[str, int] | None:
    counts = dict.fromkeys((label for label, _ in stages), 0)
    with warnings_off():  # the run's own pass has said them
        for record in records():
            if stop.is_set():
                return None
            for label, stage in stages:
                if not isinstance(record, AssetRecord | LinkRecord) or _applies(stage, record):
                    counts[label] += 1
    return counts


def _applies(stage: Stage, record: Record) -> bool:
    try:
        return stage.applies(Job(record))
    except Exception:
        return True  # the stage would fail the item: it is in its total
