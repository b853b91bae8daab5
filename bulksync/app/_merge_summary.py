"""Several run records of one job (the shards of ``bulksync run --shard I/N``, or runs of the
same job) combined into one summary and one timeline, in the formats a run writes, so the HTML
report and ``bulksync report`` read a merge as they read a run.

Counters add up. Time is the wall span: the earliest start to the latest end, so the rate of a
merge is what the job achieved as a whole, not the sum of the runs' own rates. Latency
percentiles come from the runs' histograms added together, not from averaging percentiles.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bulksync.store.results import LatencyHistogram

# Summed as they are; a run that lacks one counts 0 for it.
COUNTERS = ("total", "succeeded", "failed", "skipped", "requests", "retries", "throttled")
OPTIONAL_COUNTERS = ("token_refreshes", "deleted")  # kept only when some run has them


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished run: its folder and what its ``summary.json`` says."""

    path: Path
    summary: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.summary.get("run_id") or self.path.name)

    @property
    def shard(self) -> tuple[int, int] | None:
        return shard_of(self.summary)

    @property
    def started(self) -> dt.datetime | None:
        return parse_time(self.summary.get("started_at"))

    @property
    def ended(self) -> dt.datetime | None:
        return parse_time(self.summary.get("ended_at"))


def shard_of(summary: dict[str, Any]) -> tuple[int, int] | None:
    """``(I, N)`` of a sharded run's record (``"shard": {"index": I, "count": N}``, or the
    text ``"I/N"``); None for a whole job, or a record written before shards existed."""
    value = summary.get("shard")
    if isinstance(value, dict):
        value = f"{value.get('index')}/{value.get('count')}"
    if not isinstance(value, str):
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        return None
    return int(index), int(count)


def shard_label(shard: tuple[int, int] | None) -> str | None:
    return None if shard is None else f"{shard[0]}/{shard[1]}"


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z: sorts as text, reads in every tool."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def combined_exit_code(codes: Iterable[Any]) -> int:
    """The merge's exit code as one run's would be: the first code that stopped a run (in the
    order of the runs), else 1 when some run had failed items, else 0."""
    known = [c for c in codes if isinstance(c, int) and not isinstance(c, bool)]
    stops = [c for c in known if c not in (0, 1)]
    if stops:
        return stops[0]
    return 1 if 1 in known else 0


def merge_summaries(records: list[RunRecord], merge_id: str) -> dict[str, Any]:
    """The summary of ``records`` together, with one row per run under ``shards``."""
    summaries = [r.summary for r in records]
    messages = _unique(m for s in summaries for m in _list(s, "messages"))
    merged: dict[str, Any] = {"messages": messages}
    for name in COUNTERS:
        merged[name] = sum(_int(s.get(name)) for s in summaries)
    for name in OPTIONAL_COUNTERS:
        if any(name in s for s in summaries):
            merged[name] = sum(_int(s.get(name)) for s in summaries)
    merged["counts"] = _merge_counts(summaries)
    starts = [m for m in (r.started for r in records) if m is not None]
    ends = [m for m in (r.ended for r in records) if m is not None]
    if starts and ends:
        span = max(0.0, (max(ends) - min(starts)).total_seconds())
    else:  # records without times: the longest run is the best bound there is
        span = max((_float(s.get("elapsed_s")) for s in summaries), default=0.0)
    merged["elapsed_s"] = round(span, 3)
    merged["items_per_s"] = round(merged["total"] / span, 1) if span > 0 else 0.0
    merged["requests_per_s"] = round(merged["requests"] / span, 1) if span > 0 else 0.0
    histogram = _merge_histograms(summaries)
    merged["latency_ms"] = {
        name: histogram.percentile(q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }
    merged["pauses"] = {
        "count": sum(_int(_dict(s, "pauses").get("count")) for s in summaries),
        "total_s": round(sum(_float(_dict(s, "pauses").get("total_s")) for s in summaries), 3),
    }
    quotas = [_dict(s, "quota") for s in summaries if _dict(s, "quota")]
    if quotas:  # the stop that lasts longest says when the whole job can go on
        merged["quota"] = max(quotas, key=lambda q: str(q.get("resume_at") or ""))
    merged.update(
        run_id=merge_id,
        version=_same(s.get("version") for s in summaries),
        config_hash=_same(s.get("config_hash") for s in summaries),
        job_hash=_same(s.get("job_hash") for s in summaries),
        target=_merge_targets(summaries),
        started_at=iso(min(starts)) if starts else None,
        ended_at=iso(max(ends)) if ends else None,
        exit_code=combined_exit_code(s.get("exit_code") for s in summaries),
        merged_from=[r.run_id for r in records],
        shards=[shard_row(r) for r in records],
        latency_histogram=histogram.buckets(),
    )
    counts = {r.shard[1] for r in records if r.shard is not None}
    if len(counts) == 1:
        (count,) = counts
        merged["shard_count"] = count
        present = {r.shard[0] for r in records if r.shard is not None}
        merged["shards_missing"] = [f"{i}/{count}" for i in range(count) if i not in present]
    return merged


def shard_row(record: RunRecord) -> dict[str, Any]:
    """One run's line of the merge: who it is and what it did."""
    s = record.summary
    row: dict[str, Any] = {"run_id": record.run_id, "shard": shard_label(record.shard)}
    for name in ("started_at", "ended_at", "elapsed_s", "exit_code"):
        row[name] = s.get(name)
    row["messages"] = _list(s, "messages")
    for name in COUNTERS:
        row[name] = _int(s.get(name))
    row["items_per_s"] = s.get("items_per_s")
    row["path"] = str(record.path)
    return row


def merged_timeline(records: list[RunRecord]) -> Iterator[dict[str, Any]]:
    """The runs' ``timeline.jsonl`` as one timeline on the wall clock: each second the sum of
    what every run did in it. Streamed: each file is read once, in step with the others (every
    timeline is in time order), so a merge of day-long runs holds a second of each at a time."""
    starts = [r.started for r in records]
    known = [s for s in starts if s is not None]
    if not known:
        return
    origin = min(known).timestamp()
    streams = [
        _walled(record.path / "timeline.jsonl", start.timestamp() - origin)
        for record, start in zip(records, starts, strict=True)
        if start is not None
    ]
    second: int | None = None
    group: list[dict[str, Any]] = []
    for at, line in heapq.merge(*streams, key=lambda pair: pair[0]):
        # A line is written at the end of its second, as ``t``: it joins the merged second
        # that ends at or just after it.
        this = math.ceil(round(at, 3))
        if second is not None and this != second and group:
            yield combine_second(second, origin, group)
            group = []
        second = this
        group.append(line)
    if second is not None and group:
        yield combine_second(second, origin, group)


def combine_second(second: int, origin: float, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """One merged second. Counters add up, and so do requests in flight; pace and limit keep
    the highest any run had (a budget shared through Redis reports the tenant's own, which
    summing would multiply); latency p50 is weighted by requests, p95 and p99 the worst."""
    stages: dict[str, dict[str, int]] = {}
    p50_sum = p50_weight = 0.0
    p95: float | None = None
    p99: float | None = None
    for line in lines:
        for label, counts in _dict(line, "stages").items():
            if isinstance(counts, dict):
                mine = stages.setdefault(str(label), {"done": 0, "failed": 0, "skipped": 0})
                for outcome in mine:
                    mine[outcome] += _int(counts.get(outcome))
        given = _dict(line, "latency_ms")
        p50 = _number(given.get("p50"))
        if p50 is not None:
            weight = float(max(_int(line.get("requests")), 1))
            p50_sum, p50_weight = p50_sum + p50 * weight, p50_weight + weight
        p95 = _top(p95, _number(given.get("p95")))
        p99 = _top(p99, _number(given.get("p99")))
    in_flight = [v for v in (_number(x.get("in_flight")) for x in lines) if v is not None]
    wall = dt.datetime.fromtimestamp(origin + second, dt.UTC)  # "ts" is the second's end
    latency: dict[str, float | None] | None = None
    if p50_weight or p95 is not None:
        p50_mean = round(p50_sum / p50_weight, 2) if p50_weight else None
        latency = {"p50": p50_mean, "p95": p95, "p99": p99}
    return {
        "t": float(second),
        "ts": wall.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requests": sum(_int(x.get("requests")) for x in lines),
        "retries": sum(_int(x.get("retries")) for x in lines),
        "throttled": sum(_int(x.get("throttled")) for x in lines),
        "pace": _highest(lines, "pace"),
        "limit": _highest(lines, "limit"),
        "in_flight": int(sum(in_flight)) if in_flight else None,
        "paused_s": _highest(lines, "paused_s") or 0.0,
        "pause_reason": next((x["pause_reason"] for x in lines if x.get("pause_reason")), None),
        "latency_ms": latency,
        "stages": stages,
        "runs": len(lines),
    }


def _walled(path: Path, offset: float) -> Iterator[tuple[float, dict[str, Any]]]:
    """A run's timeline lines with their time since the merge's origin. A line that does not
    parse (a killed run's cut last line) is skipped, as the report skips it."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a run may have no timeline
    except FileNotFoundError:
        return
    with fh:
        last = -math.inf
        for raw in fh:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            t = _number(line.get("t")) if isinstance(line, dict) else None
            if t is None:
                continue
            # heapq.merge needs each stream in order: a line out of order joins the latest.
            last = max(last, offset + t)
            yield last, line


def _merge_counts(summaries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for summary in summaries:
        for kind, actions in _dict(summary, "counts").items():
            if isinstance(actions, dict):
                mine = counts.setdefault(str(kind), {})
                for action, n in actions.items():
                    mine[str(action)] = mine.get(str(action), 0) + _int(n)
    return {kind: dict(sorted(actions.items())) for kind, actions in counts.items()}


def _merge_histograms(summaries: list[dict[str, Any]]) -> LatencyHistogram:
    pairs: list[list[float]] = []
    for summary in summaries:
        for entry in _list(summary, "latency_histogram"):
            if isinstance(entry, list) and len(entry) == 2:
                upper, count = _number(entry[0]), _number(entry[1])
                if upper is not None and upper > 0 and count is not None and count > 0:
                    pairs.append([upper, count])
    return LatencyHistogram.from_buckets(pairs)


def _merge_targets(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = _unique(_dict(s, "target").get("kind") for s in summaries)
    urls = _unique(_dict(s, "target").get("base_url") for s in summaries)
    return {"kind": ", ".join(map(str, kinds)), "base_url": ", ".join(map(str, urls))}


def _same(values: Iterable[Any]) -> Any:
    """The value every run has, or the distinct values joined (a forced merge of jobs)."""
    distinct = _unique(values)
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    return ", ".join(map(str, distinct))


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def _highest(lines: list[dict[str, Any]], name: str) -> float | None:
    values = [v for v in (_number(x.get(name)) for x in lines) if v is not None]
    return max(values) if values else None


def _top(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _dict(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0


def _float(value: Any) -> float:
    number = _number(value)
    return number if number is not None and number > 0 else 0.0
