"""The run's timeline and latency histogram, cut down to what the HTML report's charts show.

A run that lasts hours has one timeline line per second (86,400 a day); the report keeps at most
:data:`MAX_POINTS` points so its size does not grow with the run. Seconds are aggregated into
buckets of ``width`` seconds (1, 2, 4, ... doubled until the buckets fit), in one streaming pass
with memory bounded by :data:`MAX_POINTS`:

- counters (requests, retries, 429s, items done/failed/skipped per stage, seconds paused) are
  summed, then divided by the seconds sampled in the bucket, so a chart reads "per second"
  whatever the width;
- ``in_flight`` and the budget's ``limit`` keep their maximum, ``pace`` its mean;
- latency p50 is the mean of the seconds' p50 weighted by the requests each answered, p95 and
  p99 keep their maximum: a bucket never hides its worst second behind a good average.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_POINTS = 2000
MAX_STAGES = 12  # more stage names than this are charted together as one series
OTHER_STAGES = "other stages"
MAX_BINS = 40  # latency histogram bars


@dataclass(slots=True)
class _Bucket:
    seconds: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    paused_s: float = 0.0
    in_flight: int | None = None
    pace_sum: float = 0.0
    pace_n: int = 0
    limit: float | None = None
    p50_sum: float = 0.0
    p50_weight: float = 0.0
    p95: float | None = None
    p99: float | None = None
    stages: dict[str, list[int]] = field(default_factory=dict)  # done, failed, skipped

    def merge(self, other: _Bucket) -> None:
        self.seconds += other.seconds
        self.requests += other.requests
        self.retries += other.retries
        self.throttled += other.throttled
        self.paused_s += other.paused_s
        self.in_flight = _max(self.in_flight, other.in_flight)
        self.pace_sum += other.pace_sum
        self.pace_n += other.pace_n
        self.limit = _max(self.limit, other.limit)
        self.p50_sum += other.p50_sum
        self.p50_weight += other.p50_weight
        self.p95 = _max(self.p95, other.p95)
        self.p99 = _max(self.p99, other.p99)
        for name, counts in other.stages.items():
            mine = self.stages.setdefault(name, [0, 0, 0])
            for i in range(3):
                mine[i] += counts[i]


class Downsampler:
    """Feed it the timeline's lines in order with :meth:`add`; :meth:`series` gives the chart
    columns. Lines that do not follow the format are skipped, not fatal: a crashed run may
    leave a cut last line, and the report of that run matters most."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self.width = 1
        self.samples = 0
        self._buckets: dict[int, _Bucket] = {}
        self._epoch: float | None = None  # wall time of t = 0, from the first "ts"
        self._stages: list[str] = []

    def add(self, line: dict[str, Any]) -> None:
        t = _number(line.get("t"))
        if t is None:
            return
        second = int(t)
        if self._epoch is None:
            ts = _epoch_of(line.get("ts"))
            if ts is not None:
                self._epoch = ts - second
        bucket = _Bucket(
            seconds=1,
            requests=_count(line.get("requests")),
            retries=_count(line.get("retries")),
            throttled=_count(line.get("throttled")),
            paused_s=_number(line.get("paused_s")) or 0.0,
            in_flight=_opt_int(line.get("in_flight")),
            limit=_number(line.get("limit")),
        )
        pace = _number(line.get("pace"))
        if pace is not None:
            bucket.pace_sum, bucket.pace_n = pace, 1
        latency = line.get("latency_ms")
        if isinstance(latency, dict):
            p50 = _number(latency.get("p50"))
            if p50 is not None:
                weight = float(max(bucket.requests, 1))
                bucket.p50_sum, bucket.p50_weight = p50 * weight, weight
            bucket.p95 = _number(latency.get("p95"))
            bucket.p99 = _number(latency.get("p99"))
        stages = line.get("stages")
        if isinstance(stages, dict):
            for name, counts in stages.items():
                if isinstance(counts, dict):
                    # Several names may share the "other stages" series: add, not replace.
                    mine = bucket.stages.setdefault(self._stage(str(name)), [0, 0, 0])
                    for i, outcome in enumerate(("done", "failed", "skipped")):
                        mine[i] += _count(counts.get(outcome))
        self.samples += 1
        key = second // self.width
        current = self._buckets.get(key)
        if current is None:
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_points:
                self._widen()
        else:
            current.merge(bucket)

    def _stage(self, name: str) -> str:
        if name in self._stages:
            return name
        if len(self._stages) < MAX_STAGES:
            self._stages.append(name)
            return name
        if OTHER_STAGES not in self._stages:
            self._stages.append(OTHER_STAGES)
        return OTHER_STAGES

    def _widen(self) -> None:
        # Buckets of t // w merge pairwise into t // 2w: a key halves, nothing is re-read.
        while len(self._buckets) > self.max_points:
            self.width *= 2
            merged: dict[int, _Bucket] = {}
            for key in sorted(self._buckets):
                bucket = self._buckets[key]
                into = merged.get(key // 2)
                if into is None:
                    merged[key // 2] = bucket
                else:
                    into.merge(bucket)
            self._buckets = merged

    def series(self) -> dict[str, Any]:
        """Columns for the charts: ``x`` (epoch seconds when the lines carry "ts", else seconds
        since the start) and one list per series, ``None`` where a second had no value."""
        keys = sorted(self._buckets)
        buckets = [self._buckets[k] for k in keys]
        offset = self._epoch if self._epoch is not None else 0.0
        stage_names = [name for name in self._stages if any(name in b.stages for b in buckets)]
        return {
            "time": self._epoch is not None,
            "width_s": self.width,
            "points": len(buckets),
            "samples": self.samples,
            "x": [round(offset + k * self.width, 3) for k in keys],
            "requests": [_rate(b.requests, b) for b in buckets],
            "retries": [_rate(b.retries, b) for b in buckets],
            "throttled": [_rate(b.throttled, b) for b in buckets],
            "paused_pct": [_round(min(100.0, 100.0 * b.paused_s / b.seconds)) for b in buckets],
            "in_flight": [b.in_flight for b in buckets],
            "pace": [_round(b.pace_sum / b.pace_n) if b.pace_n else None for b in buckets],
            "limit": [_opt_round(b.limit) for b in buckets],
            "p50": [_round(b.p50_sum / b.p50_weight) if b.p50_weight else None for b in buckets],
            "p95": [_opt_round(b.p95) for b in buckets],
            "p99": [_opt_round(b.p99) for b in buckets],
            "failed": [_rate(sum(c[1] for c in b.stages.values()), b) for b in buckets],
            "stages": {
                name: [_rate(sum(b.stages.get(name, (0, 0, 0))), b) for b in buckets]
                for name in stage_names
            },
        }


def downsample(timeline: Iterable[dict[str, Any]], max_points: int = MAX_POINTS) -> dict[str, Any]:
    sampler = Downsampler(max_points)
    for line in timeline:
        if isinstance(line, dict):
            sampler.add(line)
    return sampler.series()


def histogram_bins(histogram: Any, max_bins: int = MAX_BINS) -> tuple[list[float], list[int]]:
    """``[[upper_ms, count], ...]`` as at most ``max_bins`` bars: as given when few enough,
    else merged into bins of geometric width between the smallest and largest upper bound
    (latencies spread over decades; equal widths would put everything in the first bar)."""
    pairs: list[tuple[float, int]] = []
    if isinstance(histogram, list):
        for entry in histogram:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                upper, count = _number(entry[0]), _number(entry[1])
                if upper is not None and count is not None and count >= 0:
                    pairs.append((upper, int(count)))
    pairs.sort()
    if len(pairs) <= max_bins:
        return [_round(u) for u, _ in pairs], [c for _, c in pairs]
    low, high = max(pairs[0][0], 1e-3), max(pairs[-1][0], 1e-3)
    ratio = (high / low) ** (1.0 / (max_bins - 1)) if high > low else 1.0
    edges = sorted({_significant(low * ratio**i, 3) for i in range(max_bins)} | {high})
    counts = [0] * len(edges)
    for upper, count in pairs:
        counts[min(bisect.bisect_left(edges, upper), len(edges) - 1)] += count
    first = next((i for i, c in enumerate(counts) if c), 0)  # rounding may leave it empty
    return edges[first:], counts[first:]


def _epoch_of(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0


def _opt_int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _max(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _rate(total: float, bucket: _Bucket) -> float:
    return _round(total / bucket.seconds) if bucket.seconds else 0.0


def _round(value: float) -> float:
    # Four significant digits: a chart cannot show more, and the report's size is its numbers.
    return _significant(value, 4)


def _opt_round(value: float | None) -> float | None:
    return None if value is None else _round(value)


def _significant(value: float, digits: int = 2) -> float:
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
