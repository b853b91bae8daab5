"""The ramp of `bulksync bench`: which rates to offer, what each stage measured, whether it
held, and the knee (the highest stage that held its latency and its errors).

Pure bookkeeping, no I/O: the load itself is in :mod:`bulksync.app._bench_load`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bulksync.spi._errors import ConfigError
from bulksync.store.results import LatencyHistogram

MAX_STAGES = 20  # a ramp is bounded in count whatever the factor and ceiling
# The default p95 limit is this many times the first stage's p95 ...
RELATIVE_P95 = 3.0
# ... and never below this: on a loopback server, 3x a 2 ms p95 is the noise of a busy laptop.
MIN_P95_LIMIT_MS = 50.0
# A stage that sent less than this share of its rate while open did not hold either: the
# rate was not offered (the client, or the server's slowness through the workers, held it);
# nor one that was served (achieved) less than this share of it (429 pauses, slow answers).
MIN_SENT_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class RampOptions:
    start: float = 5.0  # req/s of the first stage
    factor: float = 2.0  # each stage offers this many times the last
    stage_seconds: float = 10.0
    ceiling: float = 1000.0  # the last stage offers at most this (req/s)
    max_p95_ms: float | None = None  # None: relative to the first stage (see p95_limit)
    max_error_share: float = 0.05  # errors and 429s, together, as a share of the requests

    def check(self) -> None:
        """One line naming the first option out of range (NaN fails every comparison)."""
        if not self.start > 0:
            raise ConfigError("--start takes a rate above 0 (requests per second)")
        if not self.factor > 1:
            raise ConfigError("--factor must be above 1: each stage offers more than the last")
        if not self.stage_seconds > 0:
            raise ConfigError("--stage-seconds must be above 0")
        if not self.ceiling >= self.start:
            raise ConfigError("--ceiling must be at least --start")
        if self.max_p95_ms is not None and not self.max_p95_ms > 0:
            raise ConfigError("--max-p95-ms must be above 0")
        if not 0 <= self.max_error_share <= 1:
            raise ConfigError("--max-error-share takes a share from 0 to 1 (0.05 is 5%)")


def stage_rates(options: RampOptions) -> list[float]:
    """start, start x factor, ... below the ceiling, then the ceiling itself: the ceiling is
    always offered (it is where the ramp was asked to go), never passed."""
    rates: list[float] = []
    rate = options.start
    while rate < options.ceiling and len(rates) < MAX_STAGES - 1:
        rates.append(rate)
        rate *= options.factor
    rates.append(options.ceiling if rate >= options.ceiling else rate)
    return rates


@dataclass(slots=True)
class StageTally:
    """What one stage sent and got back."""

    offered: float  # req/s asked of the budget
    seconds: float  # how long it was open for new requests
    granted: int = 0  # requests the budget let go while the stage was open
    paused_s: float = 0.0  # how long the budget was paused (Retry-After, a first 429)
    attempts: int = 0  # requests whose fate is known: answered or failed on the wire
    ok: int = 0  # answered as the target documents a served request
    errors: int = 0  # any other answer but 429, and transport failures
    throttled: int = 0  # 429
    elapsed_s: float = 0.0  # from its start to its last answer
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "429", "timeout" ...
    held: bool | None = None  # None: not judged (interrupted)
    reason: str | None = None  # why it did not hold

    def answered(self, status: int, ok: bool, seconds: float) -> None:
        self.attempts += 1
        self.latency.add(seconds)
        self._status(str(status))
        if status == 429:
            self.throttled += 1
        elif ok:
            self.ok += 1
        else:
            self.errors += 1

    def failed(self, what: str) -> None:
        """A request with no answer (timeout, reset, redirect not followed)."""
        self.attempts += 1
        self.errors += 1
        self._status(what)

    def _status(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    @property
    def span_s(self) -> float:
        """From the stage's start to its last answer (a create's late delete included)."""
        return max(self.elapsed_s, self.seconds)

    @property
    def achieved(self) -> float:
        """Served answers per second."""
        return self.ok / self.span_s if self.span_s > 0 else 0.0

    @property
    def sent_per_s(self) -> float:
        """Requests sent per second while the stage was open: what it really offered."""
        return self.granted / self.seconds if self.seconds > 0 else 0.0

    def share(self, count: int) -> float:
        return count / self.attempts if self.attempts else 0.0

    def p(self, q: float) -> float | None:
        return self.latency.percentile(q)

    def as_json(self) -> dict[str, Any]:
        return {
            "offered_rps": round(self.offered, 2),
            "sent_rps": round(self.sent_per_s, 2),
            "achieved_rps": round(self.achieved, 2),
            "requests": self.attempts,
            "ok": self.ok,
            "errors": self.errors,
            "throttled": self.throttled,
            "error_share": round(self.share(self.errors), 4),
            "throttled_share": round(self.share(self.throttled), 4),
            "latency_ms": {"p50": self.p(0.50), "p95": self.p(0.95), "p99": self.p(0.99)},
            "statuses": dict(sorted(self.statuses.items())),
            "paused_s": round(self.paused_s, 3),
            "seconds": round(self.seconds, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "held": self.held,
            "reason": self.reason,
        }


def p95_limit(options: RampOptions, first: StageTally) -> float | None:
    """``--max-p95-ms``, or 3x the first stage's p95 (at least 50 ms); None before any answer."""
    if options.max_p95_ms is not None:
        return options.max_p95_ms
    base = first.p(0.95)
    return None if base is None else max(RELATIVE_P95 * base, MIN_P95_LIMIT_MS)


def judge(stage: StageTally, limit_ms: float | None, options: RampOptions) -> None:
    """Mark ``stage`` held or not, with the reason: its errors and 429s together above
    ``max_error_share``, its p95 above the limit, or less than 90% of its rate sent, or
    served (achieved). A stage
    with no answer at all did not hold."""
    bad = stage.errors + stage.throttled
    p95 = stage.p(0.95)
    if stage.attempts == 0:
        stage.held, stage.reason = False, "no request was answered"
    elif stage.share(bad) > options.max_error_share:
        what = f"errors {_pct(stage.share(stage.errors))}, 429 {_pct(stage.share(stage.throttled))}"
        stage.held, stage.reason = False, f"{what} > {_pct(options.max_error_share)}"
    elif p95 is not None and limit_ms is not None and p95 > limit_ms:
        stage.held, stage.reason = False, f"p95 {p95:.1f} ms > {limit_ms:.1f} ms"
    elif stage.sent_per_s < MIN_SENT_SHARE * stage.offered:
        stage.held = False
        stage.reason = f"sent only {stage.sent_per_s:.1f} of {_rate(stage.offered)} req/s"
        if stage.paused_s > 0:
            stage.reason += f" (paused {stage.paused_s:.1f} s after 429s)"
    elif stage.achieved < MIN_SENT_SHARE * stage.offered:  # sent, but not served at that rate
        stage.held = False
        stage.reason = f"achieved only {stage.achieved:.1f} of {_rate(stage.offered)} req/s"
        if stage.paused_s > 0:
            stage.reason += f" (paused {stage.paused_s:.1f} s after 429s)"
    else:
        stage.held, stage.reason = True, None


def knee(stages: list[StageTally]) -> StageTally | None:
    """The highest stage that held before the first that did not (the ramp stops there)."""
    best = None
    for stage in stages:
        if not stage.held:
            break
        best = stage
    return best


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == math.floor(value) else f"{value:.1f}"


def format_table(stages: list[StageTally]) -> str:
    """The per-stage table of stdout."""
    header = (
        "stage",
        "offered/s",
        "sent/s",
        "achieved/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "429",
        "held",
    )
    rows: list[tuple[str, ...]] = [header]
    for number, stage in enumerate(stages, 1):
        held = "-" if stage.held is None else ("yes" if stage.held else f"no: {stage.reason}")
        rows.append(
            (
                str(number),
                _rate(stage.offered),
                f"{stage.sent_per_s:.1f}",
                f"{stage.achieved:.1f}",
                _ms(stage.p(0.50)),
                _ms(stage.p(0.95)),
                _ms(stage.p(0.99)),
                _pct(stage.share(stage.errors)),
                _pct(stage.share(stage.throttled)),
                held,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [c.rjust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def knee_line(stages: list[StageTally], limit_ms: float | None, interrupted: bool = False) -> str:
    found = knee(stages)
    limit = "" if limit_ms is None else f"; p95 limit {limit_ms:.1f} ms"
    if interrupted and stages and stages[-1].held is None:
        cut = f", interrupted during stage {len(stages)}"
    else:
        cut = ", interrupted" if interrupted else ""
    if found is None:
        if cut:
            return f"knee: none, no stage held before the bench was stopped ({cut[2:]}){limit}"
        return f"knee: none, the first stage did not hold{limit}"
    last = stages[-1]
    if last is found and last.held and not cut:
        return f"knee: {_rate(found.offered)} req/s or more, every stage held{limit}"
    return (
        f"knee: {_rate(found.offered)} req/s (p95 {_ms(found.p(0.95))} ms, "
        f"achieved {found.achieved:.1f} req/s{limit}{cut})"
    )
