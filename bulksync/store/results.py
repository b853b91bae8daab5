"""Per-item results, the results file and the end-of-run summary."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import orjson

from bulksync.spi._errors import ErrorInfo
from bulksync.spi._records import Kind, Origin
from bulksync.spi._redact import has_secrets, redact, redact_bytes

Status = Literal["succeeded", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The one and only result of one input item."""

    kind: Kind
    origin: Origin
    key: str | None
    status: Status
    remote_id: str | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    step: str | None = None  # for assets: the step that failed (upload or create)
    reason: str | None = None  # for skips: why (unchanged, dependency failed, ...)
    extra: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None  # monotonic time of its first request, if it had one

    @property
    def success(self) -> bool:
        return self.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "source": self.origin.path,
            "line": self.origin.line,
            "key": self.key,
            "status": self.status,
            "success": self.success,
            "remote_id": self.remote_id,
            "error": self.error.to_json() if self.error else None,
            "attempts": self.attempts,
        }
        if self.step is not None:
            doc["step"] = self.step
        if self.reason is not None:
            doc["reason"] = self.reason
        doc.update(self.extra)
        return doc


SKIPS_PER_FLUSH = 256
SKIP_FLUSH_S = 0.2


class ResultWriter:
    """Appends one JSON line per result and flushes it, so a crash keeps what finished (skips
    go out in batches: see write).

    Each line gets ``started_at`` (its first request; its result's time when it had none),
    ``ended_at`` (its result) in UTC with milliseconds, and ``ms`` between the two.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._wall_offset = time.time() - time.monotonic()  # monotonic -> wall clock
        self._second = -1
        self._prefix = ""
        self._unflushed = 0  # lines written since the last flush (skips only)
        self._flushed_at = time.time()

    def write(self, result: ItemResult) -> None:
        doc = result.to_json()
        ended = time.time()
        started = ended if result.started_at is None else result.started_at + self._wall_offset
        started = min(started, ended)
        ended_at = self._stamp(ended)
        # An item that sent nothing (every skip) started as it ended: one stamp for both.
        doc["started_at"] = ended_at if started == ended else self._stamp(started)
        doc["ended_at"] = ended_at
        doc["ms"] = round((ended - started) * 1000.0, 1)
        self._file.write(_masked(orjson.dumps(doc)) + b"\n")
        # A skip changed nothing on the target, so one lost in a crash is only judged again:
        # skips (a resync's millions) go out with the next other line, or in batches.
        self._unflushed += 1
        if (
            result.status != "skipped"
            or self._unflushed >= SKIPS_PER_FLUSH
            or ended - self._flushed_at >= SKIP_FLUSH_S
        ):
            self._file.flush()
            self._unflushed = 0
            self._flushed_at = ended

    def _stamp(self, moment: float) -> str:
        # A million results a run: the date part is formatted once a second, not per line.
        second = int(moment)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{min(int((moment - second) * 1000), 999):03d}Z"

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class ResultSink(Protocol):
    """Where the engine writes each item's one result: a :class:`ResultWriter`, or one wrapped
    by a flow that watches what succeeded (prune forgets what it deleted)."""

    def write(self, result: ItemResult) -> None: ...


class ResultTee:
    """A :class:`ResultSink` writing to ``writer``, then handing each result to ``listener``
    (the Python API's stream yields it)."""

    def __init__(self, writer: ResultSink, listener: Callable[[ItemResult], None]) -> None:
        self._writer = writer
        self._listener = listener

    def write(self, result: ItemResult) -> None:
        self._writer.write(result)
        self._listener(masked(result))


def masked(result: ItemResult) -> ItemResult:
    """``result`` with every secret masked, as its line in the results file has them."""
    if not has_secrets():
        return result
    error = result.error
    if error is not None:
        error = replace(error, message=redact(error.message))
    extra = orjson.loads(_masked(orjson.dumps(result.extra))) if result.extra else result.extra
    return replace(
        result,
        key=None if result.key is None else redact(result.key),
        reason=None if result.reason is None else redact(result.reason),
        error=error,
        extra=extra,
    )


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Stream the lines of a results file back as dicts."""
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                yield orjson.loads(raw)


class LatencyHistogram:
    """Log-bucketed latencies: constant memory whatever the number of requests, ~1% precision."""

    _GROWTH = 1.01

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float) -> None:
        ms = max(seconds * 1000.0, 0.001)
        index = math.floor(math.log(ms, self._GROWTH))
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1

    @classmethod
    def from_buckets(cls, pairs: list[list[float]]) -> LatencyHistogram:
        """A histogram back from :meth:`buckets` (a summary's ``latency_histogram``), so that
        several runs' histograms add up and give the percentiles of all their requests."""
        histogram = cls()
        for upper, count in pairs:
            index = round(math.log(upper, cls._GROWTH)) - 1  # the upper bound's own bucket
            histogram._buckets[index] = histogram._buckets.get(index, 0) + int(count)
            histogram.count += int(count)
        return histogram

    def buckets(self) -> list[list[float]]:
        """``[upper bound in ms, count]`` per non-empty bucket, ascending: the histogram."""
        return [
            [round(float(self._GROWTH ** (index + 1)), 3), self._buckets[index]]
            for index in sorted(self._buckets)
        ]

    def percentile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        rank = max(1, math.ceil(self.count * q))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return round(float(self._GROWTH ** (index + 0.5)), 2)
        return None  # pragma: no cover - unreachable: ranks never exceed count


@dataclass(slots=True)
class RunStats:
    """Counters the engine keeps while it runs; turned into the summary at the end."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    invalid: int = 0  # input lines that could not be read
    in_flight: int = 0  # requests on the wire now
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> action -> n
    # The latencies since the timeline last took them: one second's percentiles.
    recent_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def observe(self, seconds: float) -> None:
        """One answered request's latency."""
        self.latency.add(seconds)
        self.recent_latency.add(seconds)

    def take_recent_latency(self) -> LatencyHistogram:
        taken, self.recent_latency = self.recent_latency, LatencyHistogram()
        return taken

    def count(self, result: ItemResult) -> None:
        actions = self.counts.setdefault(result.kind, {})
        if result.status == "skipped" and result.reason == "unchanged":
            action = "unchanged"  # what action_of says of it, without a dict per skip
        else:
            action = action_of(
                {
                    "status": result.status,
                    "reason": result.reason,
                    "action": result.extra.get("action"),
                }
            )
        actions[action] = actions.get(action, 0) + 1
        if result.status == "succeeded":
            self.succeeded += 1
        elif result.status == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.skipped

    def summary(self, elapsed_s: float, interrupted: bool = False) -> dict[str, Any]:
        return {
            "messages": ["Interrupted" if interrupted else "Completed"],
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "counts": {kind: dict(sorted(n.items())) for kind, n in self.counts.items()},
            "elapsed_s": round(elapsed_s, 3),
            "items_per_s": round(self.total / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "latency_ms": {
                "p50": self.latency.percentile(0.50),
                "p95": self.latency.percentile(0.95),
                "p99": self.latency.percentile(0.99),
            },
        }


def action_of(item: dict[str, Any]) -> str:
    """What happened to the item, in one word or two: the action a connector named
    (created, updated, exists, deleted...), the reason of a skip (unchanged, dependency
    failed), or failed. The summary's counts and `bulksync report` say the same."""
    status = item.get("status")
    if status == "failed":
        return "failed"
    if status == "skipped":
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return "skipped"
        # "dependency failed: asset 'a1' (line 3: ...)" counts as "dependency failed".
        return reason.split(":", 1)[0].strip()[:40] or "skipped"
    action = item.get("action")
    return str(action) if isinstance(action, str) and action else "succeeded"


def summary_path(results: Path) -> Path:
    """The summary lives beside the results: results.jsonl -> results.summary.json."""
    return results.with_name(results.stem + ".summary.json")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_bytes(_masked(orjson.dumps(summary, option=orjson.OPT_INDENT_2)) + b"\n")


def _masked(line: bytes) -> bytes:
    """Servers may echo what we sent them, credentials included, into error messages."""
    return redact_bytes(line)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a small two-column table for the terminal."""
    latency = summary["latency_ms"]
    rows = [
        ("status", ", ".join(summary["messages"])),
        ("total", summary["total"]),
        ("succeeded", summary["succeeded"]),
        ("failed", summary["failed"]),
        ("skipped", summary["skipped"]),
        *(
            (f"  {kind}s", ", ".join(f"{action} {n:,}" for action, n in actions.items()))
            for kind, actions in summary.get("counts", {}).items()
        ),
        ("requests", summary["requests"]),
        ("retries", summary["retries"]),
        ("throttled (429)", summary.get("throttled", 0)),
        *_run_rows(summary),
        ("elapsed", f"{summary['elapsed_s']:.2f} s"),
        ("rate", f"{summary['items_per_s']} items/s"),
        ("latency p50/p95/p99", " / ".join(_ms(latency[k]) for k in ("p50", "p95", "p99"))),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {_count(value)}" for name, value in rows)


def _count(value: Any) -> Any:
    # Counts as the plan line and the per-kind rows write them: 2,600, not 2600.
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value


def _run_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """Pauses and token refreshes, once the run's record has added them."""
    rows: list[tuple[str, Any]] = []
    pauses = summary.get("pauses")
    if isinstance(pauses, dict):
        rows.append(("pauses", f"{pauses.get('count', 0)} ({pauses.get('total_s', 0):.1f} s)"))
    if "token_refreshes" in summary:
        rows.append(("token refreshes", summary["token_refreshes"]))
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value} ms"


def read_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file (results, timeline); nothing when it is missing.

    A crashed run may leave a cut last line: what does not parse is skipped rather than lose
    the report of the run that needs it most.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is no data
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(line, dict):
                yield line
