"""A run's figures as one line of text (or JSON): the status line under the live bars, and
the `--stats-interval` lines a run prints off a terminal (cron, CI, a container's log)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import Any, TextIO

import anyio
import orjson

from bulksync.app._telemetry import Snapshot, StageFigures, format_duration, format_rate

STATS_PREFIX = "bulksync stats:"  # what to grep for in a log


def per_second(now: Snapshot, before: Snapshot | None, value: Callable[[Snapshot], int]) -> float:
    """The rate of ``value`` between two snapshots (since the start without an earlier one)."""
    if before is None:
        span, base = now.elapsed_s, 0
    else:
        span, base = now.at - before.at, value(before)
    return (value(now) - base) / span if span > 0 else 0.0


def _stage_rate(now: Snapshot, before: Snapshot | None, index: int) -> float:
    def finished(snapshot: Snapshot) -> int:
        stages = snapshot.stages
        return stages[index].finished if index < len(stages) else 0

    return per_second(now, before, finished)


def status_text(now: Snapshot, before: Snapshot | None) -> str:
    """The run as a whole: time, load on the target, and whatever holds it back."""
    parts = [
        f"elapsed {format_duration(now.elapsed_s)}",
        f"requests {now.requests:,} ({format_rate(per_second(now, before, _requests))}/s)",
        f"pace {_pace(now)}",
        f"in flight {now.in_flight}",
        f"retries {now.retries:,}",
        f"429s {now.throttled:,}",
    ]
    if now.paused_s > 0:
        # Retry-After pauses are often under a second: "0 s" would read as none.
        if now.paused_s < 10:
            left = f"{now.paused_s:.1f} s"
        elif now.paused_s < 60:
            left = f"{now.paused_s:.0f} s"
        else:  # a quota wait of hours reads as a clock, not as "51234 s"
            left = format_duration(now.paused_s)
        parts.append(f"paused {left}: {now.pause_reason or 'throttled'}")
    parts.append(f"token refreshes {now.token_refreshes}")
    return " | ".join(parts)


def _requests(snapshot: Snapshot) -> int:
    return snapshot.requests


def _pace(now: Snapshot) -> str:
    if now.pace is None:
        return "unpaced" if now.limit is None else f"- of {format_rate(now.limit)}/s"
    if now.limit is None:
        return f"{format_rate(now.pace)}/s (learned from 429s)"
    return f"{format_rate(now.pace)}/s of {format_rate(now.limit)}/s"


def _stage_text(stage: StageFigures, rate: float) -> str:
    total = "?" if stage.total is None else f"{stage.total:,}"
    return (
        f"{stage.label} {stage.finished:,}/{total} "
        f"(done {stage.done:,}, failed {stage.failed:,}, skipped {stage.skipped:,}) "
        f"{format_rate(rate)}/s"
    )


def stats_line(now: Snapshot, before: Snapshot | None) -> str:
    """Every figure of the run in one greppable line; rates over the last interval."""
    stages = [_stage_text(s, _stage_rate(now, before, i)) for i, s in enumerate(now.stages)]
    # The clock time, so a log without timestamps of its own (cron) still lines up.
    head = f"{STATS_PREFIX} {_utc_now()} {status_text(now, before)}"
    return " | ".join([head, *stages])


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats_json(now: Snapshot, before: Snapshot | None) -> dict[str, Any]:
    return {
        "event": "stats",
        "ts": _utc_now(),
        "elapsed_s": round(now.elapsed_s, 1),
        "requests": now.requests,
        "requests_per_s": round(per_second(now, before, _requests), 2),
        "pace": now.pace,
        "limit": now.limit,
        "in_flight": now.in_flight,
        "retries": now.retries,
        "throttled": now.throttled,
        "paused_s": round(now.paused_s, 1),
        "pause_reason": now.pause_reason,
        "pauses": now.pauses,
        "token_refreshes": now.token_refreshes,
        "stages": {
            s.label: {
                "done": s.done,
                "failed": s.failed,
                "skipped": s.skipped,
                "total": s.total,
                "items_per_s": round(_stage_rate(now, before, i), 2),
            }
            for i, s in enumerate(now.stages)
        },
    }


async def print_stats(
    sample: Callable[[], Snapshot],
    interval_s: float,
    as_json: bool = False,
    out: TextIO | None = None,
) -> None:
    """One line every ``interval_s`` until cancelled (the run's task group ends it), and a
    last one then, for a run that lasted longer than one interval: a log then ends with the
    run's final figures. A shorter run prints none (its summary says it all)."""
    if interval_s <= 0:
        return
    stream = out or sys.stderr
    before: Snapshot | None = None

    def emit() -> Snapshot:
        now = sample()
        if as_json:
            stream.write(orjson.dumps(stats_json(now, before)).decode() + "\n")
        else:
            stream.write(stats_line(now, before) + "\n")
        stream.flush()
        return now

    try:
        while True:
            await anyio.sleep(interval_s)
            before = emit()
    finally:
        if before is not None:
            emit()
