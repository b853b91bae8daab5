"""timeline.jsonl: what the run did in each second, so its throughput, its 429s and its
latency over time can be charted afterwards (the HTML report) from a file that grows by one
short line a second, whatever the number of items."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import anyio
import orjson

from bulksync.app._telemetry import Snapshot
from bulksync.store.results import LatencyHistogram

INTERVAL_S = 1.0


def timeline_line(
    now: Snapshot, before: Snapshot | None, latency: LatencyHistogram, wall: dt.datetime
) -> dict[str, Any]:
    """One second of the run: counters as the change since ``before``, gauges as they are."""

    def delta(value: Callable[[Snapshot], int]) -> int:
        return value(now) - (value(before) if before is not None else 0)

    stages: dict[str, dict[str, int]] = {}
    for index, stage in enumerate(now.stages):
        last = before.stages[index] if before is not None and index < len(before.stages) else None
        stages[stage.label] = {
            "done": stage.done - (last.done if last else 0),
            "failed": stage.failed - (last.failed if last else 0),
            "skipped": stage.skipped - (last.skipped if last else 0),
        }
    percentiles = None
    if latency.count:
        percentiles = {
            "p50": latency.percentile(0.50),
            "p95": latency.percentile(0.95),
            "p99": latency.percentile(0.99),
        }
    return {
        "t": round(now.elapsed_s, 1),  # tenths: the last part-second has a t of its own
        "ts": wall.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requests": delta(lambda s: s.requests),
        "retries": delta(lambda s: s.retries),
        "throttled": delta(lambda s: s.throttled),
        "pace": None if now.pace is None else round(now.pace, 2),
        "limit": None if now.limit is None else round(now.limit, 2),
        "in_flight": now.in_flight,
        "paused_s": round(now.paused_s, 2),
        "pause_reason": now.pause_reason,
        "latency_ms": percentiles,
        "stages": stages,
    }


class Timeline:
    """Writes one line a second while :meth:`watch` runs, and the last part-second at
    :meth:`close`; each line is flushed, so a crashed run keeps its timeline."""

    def __init__(
        self,
        path: Path,
        sample: Callable[[], Snapshot],
        take_latency: Callable[[], LatencyHistogram],
    ) -> None:
        self.path = path
        self._sample = sample
        self._take_latency = take_latency
        self._before: Snapshot | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write_line(self) -> None:
        now = self._sample()
        wall = dt.datetime.now(dt.UTC)
        line = timeline_line(now, self._before, self._take_latency(), wall)
        self._file.write(orjson.dumps(line) + b"\n")
        self._file.flush()
        self._before = now

    async def watch(self) -> None:
        # On a fixed schedule: sleeping a second after each write would drift off the seconds.
        next_at = anyio.current_time()
        while True:
            next_at += INTERVAL_S
            await anyio.sleep_until(next_at)
            self.write_line()

    def close(self) -> None:
        if self._file.closed:
            return
        self.write_line()
        self._file.close()
