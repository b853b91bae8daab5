"""What a run is doing right now, read off the engine in one go: the live display, the stats
lines and the timeline all show the same figures, from the same snapshot."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from bulksync.engine._engine import Engine
from bulksync.engine.client import Target
from bulksync.spi._records import Kind
from bulksync.store.results import RunStats


@dataclass(frozen=True, slots=True)
class StageFigures:
    label: str  # "assets: upload"
    done: int
    failed: int
    skipped: int
    total: int | None  # None: the input was not counted (no display asked for it)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # monotonic
    elapsed_s: float
    requests: int
    retries: int
    throttled: int
    in_flight: int
    pace: float | None  # the budget's pace in force, requests per second (None: unpaced)
    limit: float | None  # the pace the configured windows allow (None: none configured)
    paused_s: float  # left of the pause in force
    pause_reason: str | None
    pauses: int
    paused_total_s: float
    token_refreshes: int
    stages: tuple[StageFigures, ...]


def take_snapshot(
    engine: Engine,
    started: float,
    totals: Mapping[Kind, int],
    stage_totals: Mapping[str, int] | None = None,
) -> Snapshot:
    """The run's figures now; ``totals`` are the input lines per kind, where counted, and
    ``stage_totals`` the items each stage (by label) has work for, once known."""
    stages = []
    for counters in engine.counters:
        total = totals.get(counters.kind)
        known = (stage_totals or {}).get(counters.label)
        if known is not None:
            total = max(known, counters.finished)
        elif total is not None:
            # Lines counted up front may be off (blank lines): never show more done than all.
            total = max(total - counters.not_applicable, counters.finished)
        figures = StageFigures(
            counters.label, counters.done, counters.failed, counters.skipped, total
        )
        stages.append(figures)
    return client_snapshot(engine.stats, engine.client.target, started, tuple(stages))


def client_snapshot(
    stats: RunStats, target: Target, started: float, stages: tuple[StageFigures, ...]
) -> Snapshot:
    """The figures of the client and the budget now, with ``stages`` as the caller counts them
    (a sync's stages, a bench's ramp)."""
    now = time.monotonic()
    budget, auth = target.budget, target.auth
    # A login after the first one is a refresh of the session too (expired, or a 401).
    logins = int(getattr(auth, "logins", 0))
    refreshes = int(getattr(auth, "refreshes", 0)) + max(0, logins - 1)
    return Snapshot(
        at=now,
        elapsed_s=now - started,
        requests=stats.requests,
        retries=stats.retries,
        throttled=stats.throttled,
        in_flight=stats.in_flight,
        pace=budget.rate,
        limit=budget.base_rate,
        paused_s=budget.paused_for(),
        pause_reason=budget.pause_reason if budget.paused_for() > 0 else None,
        pauses=budget.pauses,
        paused_total_s=budget.paused_total_s,
        token_refreshes=refreshes,
        stages=stages,
    )


def format_duration(seconds: float) -> str:
    """``1:02:03`` (or ``2:03``): elapsed times and ETAs, short enough for a status line."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def run_figures(engine: Engine) -> dict[str, object]:
    """What the summary adds of the budget and the session, from the same counters."""
    snapshot = take_snapshot(engine, time.monotonic(), {})
    return {
        "pauses": {"count": snapshot.pauses, "total_s": round(snapshot.paused_total_s, 3)},
        "token_refreshes": snapshot.token_refreshes,
    }
