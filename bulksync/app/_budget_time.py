"""How long a number of requests takes at the configured windows, as the budget spends them.

The budget (bulksync.engine.budget) paces evenly at the tightest window of an hour or less
(or [limits] pace), and enforces every window as a sliding log remembered 1% longer than its
period. A window lets at most ``limit`` requests through in any period: N requests take
``ceil(N / limit) - 1`` full periods, then the rest at the pace. A window longer than an hour
(a quota: Quable's 300,000 a day) is not paced, so its first ``limit`` requests go at the
pace of the others, then the run waits for the quota to roll over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bulksync.engine.budget import PACED_WINDOW_MAX_S, WINDOW_MARGIN

Window = tuple[int, float]


@dataclass(frozen=True, slots=True)
class BudgetTime:
    """The time ``requests`` take; ``None`` when nothing limits them (the target's speed)."""

    seconds: float | None
    binding: Window | None = None  # the window that decides; None: the pace alone
    paced_s: float | None = None  # the time the paced windows alone would take


def budget_time(requests: int, windows: Sequence[Window], pace: float | None = None) -> BudgetTime:
    paced = [limit / period for limit, period in windows if period <= PACED_WINDOW_MAX_S]
    rate = pace if pace is not None else min(paced, default=None)
    pace_s = requests / rate if rate else 0.0
    best, binding = pace_s, None
    paced_s = pace_s
    for window in windows:
        seconds = window_time(requests, window, rate)
        if window[1] <= PACED_WINDOW_MAX_S:
            paced_s = max(paced_s, seconds)
        if seconds > best:
            best, binding = seconds, window
    if rate is None and binding is None:
        return BudgetTime(None)  # unpaced, and within every window
    return BudgetTime(best, binding, paced_s)


def window_time(requests: int, window: Window, rate: float | None) -> float:
    """Full periods of ``limit`` requests, then the remainder at ``rate`` (None: at once)."""
    limit, period = window
    full = max(0, math.ceil(requests / limit) - 1)
    rest = requests - full * limit
    return full * period * (1 + WINDOW_MARGIN) + (rest / rate if rate else 0.0)


def quota(window: Window | None) -> bool:
    return window is not None and window[1] > PACED_WINDOW_MAX_S


def format_duration(seconds: float) -> str:
    """Two units at most, rounded: "42 s", "26 min", "3 h 5 min", "5 d 1 h"."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 59.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h" if rest == 0 else f"{hours} h {rest} min"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d" if hours == 0 else f"{days} d {hours} h"


def format_period(period: float) -> str:
    """A window's period as people say it: "24 h", "10 min", "1 s"."""
    if period >= 3600 and period % 3600 == 0:
        return f"{period / 3600:g} h"
    if period >= 60 and period % 60 == 0:
        return f"{period / 60:g} min"
    return f"{period:g} s"


def format_window(window: Window) -> str:
    return f"{window[0]:,} per {format_period(window[1])}"


def describe_time(
    requests: int, windows: Sequence[Window], pace: float | None, *, short: bool = False
) -> str:
    """ "26 min at 6,000 per 10 min", or why there is no figure; ``short``: no aside."""
    timed = budget_time(requests, windows, pace)
    if timed.seconds is None:
        return "no request rate documented or configured: as fast as the target answers"
    when = format_duration(timed.seconds)
    if timed.binding is None:
        paced = [w for w in windows if w[1] <= PACED_WINDOW_MAX_S]
        if pace is not None or not paced:
            return f"{when} at {pace:g} requests/s ([limits] pace)"
        tightest = min(paced, key=lambda w: w[0] / w[1])
        return f"{when} at {format_window(tightest)}"
    text = f"{when} at {format_window(timed.binding)}"
    if quota(timed.binding) and not short:
        rate_name = "the pace" if pace is not None else _paced_name(windows)
        if rate_name is None:
            return f"{text} (quota-bound)"
        alone = format_duration(timed.paced_s or 0)
        text += f" (quota-bound; {rate_name} alone would allow {alone})"
    return text


def _paced_name(windows: Sequence[Window]) -> str | None:
    """The paced window in words ("the 10-minute window"), None when there is none."""
    paced = [w for w in windows if w[1] <= PACED_WINDOW_MAX_S]
    if not paced:
        return None
    period = min(paced, key=lambda w: w[0] / w[1])[1]
    for unit, name in ((3600, "hour"), (60, "minute")):
        if period >= unit and period % unit == 0:
            return f"the {period / unit:g}-{name} window"
    return f"the {period:g}-second window"
