"""RateBudget: one shared request budget per target, paced evenly, several windows at once.

Why not a plain token bucket: a bucket as large as the window lets a whole window's worth of
requests out in the first instant, and a bucket of one loses every late timer wake-up and runs
slow. Here a GCRA pacer with a small tolerance spaces requests evenly and absorbs timer
lateness, while a sliding log per window is the hard guarantee that no window is ever exceeded.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio

from bulksync.engine._pace import PaceController
from bulksync.spi._errors import QuotaExhausted, TargetUnreachable, utc_time, window_span

Clock = Callable[[], float]
log = logging.getLogger("bulksync.budget")
Sleep = Callable[[float], Awaitable[None]]

# Windows longer than this are quotas (Quable's 300,000 a day): enforced, but not paced, because
# pacing a daily quota evenly would make every run shorter than a day up to three times slower.
PACED_WINDOW_MAX_S = 3600.0

# The budget remembers each grant this share of a window's period longer than the server does.
# Our clock stamps a request when it leaves; the server's when it arrives, a varying delay later
# (a new connection, a busy event loop, the network). Paced exactly at the limit, two requests a
# period apart on our clock can land less than a period apart on the server's, and the second
# is refused. 1% of the period (0.1 s of a 10 s window, 6 s of Quable's 10 minutes) absorbs that
# jitter for 1% of the throughput.
WINDOW_MARGIN = 0.01


class SlidingWindow:
    """At most ``limit`` grants in any ``period`` seconds, in constant memory.

    Grants are counted in buckets of period/1000 and each bucket is stamped with its end, so a
    grant is remembered a little longer than it needs to be, never shorter.
    """

    def __init__(
        self, limit: int, period: float, buckets: int = 1000, margin_s: float = 0.0
    ) -> None:
        if limit < 1 or period <= 0 or margin_s < 0:
            raise ValueError(f"invalid rate window: {limit} per {period} s")
        self.limit = limit
        self.period = period
        self._span = period + margin_s  # how long a grant is remembered
        self._resolution = period / buckets
        self._log: deque[list[float]] = deque()  # [bucket end, count]
        self._count = 0

    def _expire(self, now: float) -> None:
        horizon = now - self._span
        while self._log and self._log[0][0] <= horizon:
            self._count -= int(self._log.popleft()[1])

    def wait_time(self, now: float) -> float:
        """Seconds until one more grant fits (0 when it fits now)."""
        self._expire(now)
        if self._count < self.limit:
            return 0.0
        return max(self._log[0][0] + self._span - now, 1e-6)

    def record(self, now: float) -> None:
        end = (math.floor(now / self._resolution) + 1) * self._resolution
        if self._log and self._log[-1][0] == end:
            self._log[-1][1] += 1
        else:
            self._log.append([end, 1])
        self._count += 1

    def used(self, now: float) -> int:
        self._expire(now)
        return self._count

    def seed(self, end: float, count: int) -> None:
        """``count`` grants an earlier run made, remembered as if made at ``end`` (entries in
        time order, before this run's own grants)."""
        if self._log and self._log[-1][0] >= end:
            self._log[-1][1] += count
        else:
            self._log.append([end, count])
        self._count += count


class RateBudget:
    """Every request to a target, retries and logins included, is charged here first.

    ``windows`` are ``(requests, seconds)`` pairs, all enforced. ``pace`` overrides the even
    pace, which by default is the tightest window of an hour or less. A 429 from the server
    slows the whole budget to the limit it learns from it (bulksync.engine._pace), and
    pauses it for ``Retry-After`` when the server sends one.
    """

    shared = False  # this process alone (bulksync.engine._redis_budget: every process)

    def __init__(
        self,
        windows: Sequence[tuple[int, float]] = (),
        *,
        pace: float | None = None,
        tolerance_s: float = 0.05,
        max_pause_s: float = 300.0,
        max_quota_wait_s: float = math.inf,
        wait_for_quota: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        self.windows = [
            SlidingWindow(limit, period, margin_s=period * WINDOW_MARGIN)
            for limit, period in windows
        ]
        paced = [w.limit / w.period for w in self.windows if w.period <= PACED_WINDOW_MAX_S]
        self.base_rate: float | None = pace if pace is not None else min(paced, default=None)
        self._rate = self.base_rate
        self._tolerance_s = tolerance_s
        # A Retry-After longer than this pauses no one for longer: the items that met it give up
        # on their own limits, and the others must not sleep for a day behind the lock.
        self._max_pause_s = max_pause_s
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        # A window that needs longer than this to free up is a quota used up: the run stops
        # (QuotaExhausted, exit 6) rather than sleep for hours, unless told to wait for it.
        self.max_quota_wait_s = max_quota_wait_s
        self.wait_for_quota = wait_for_quota
        self.exhausted: QuotaExhausted | None = None  # once raised, every acquire raises it
        # A shared budget's server out of reach (exit 4), as the breaker's tripped: the items
        # it stopped say so (bulksync.engine._redis_budget).
        self.failure: TargetUnreachable | None = None
        self._lock = anyio.Lock()
        self._tat = -math.inf  # GCRA theoretical arrival time of the next request
        self._paused_until = -math.inf
        # What the 429s taught: the pace, the limit and window learned (bulksync.engine._pace).
        self._pace = PaceController(self.base_rate)
        self.granted = 0
        self.throttled = 0
        self.pauses = 0  # times everyone was paused (Retry-After, or the first 429 unpaced)
        self.paused_total_s = 0.0  # how long, overlapping pauses counted once
        self.pause_reason: str | None = None  # why the current (or last) pause

    def paused_for(self) -> float:
        """Seconds left of the pause in force (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def _pause(self, now: float, seconds: float, reason: str) -> None:
        until = now + seconds
        if until <= self._paused_until:
            return
        if self._paused_until <= now:
            self.pauses += 1
        self.paused_total_s += until - max(self._paused_until, now)
        self._paused_until = until
        self.pause_reason = reason

    @property
    def rate(self) -> float | None:
        """The pace in force now, in requests per second (None: unpaced)."""
        return self._rate

    async def acquire(self) -> None:
        if not self._lock.locked():
            # Nobody is waiting: a request that may go now is granted without taking the lock
            # (whose acquire and release each yield to the event loop, once per request).
            now = self._clock()
            if self._wait(now) <= 0:
                self._grant(now)
                return
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._grant(now)

    def _wait(self, now: float) -> float:
        """How long the next request must wait from ``now`` (raises once the quota is out)."""
        if self.exhausted is not None:
            raise self.exhausted.with_traceback(None)  # no traceback piling up
        self._recover(now)
        wait = max(self._pacer_wait(now), self._paused_until - now)
        for window in self.windows:
            window_wait = window.wait_time(now)
            if window_wait > self.max_quota_wait_s:
                self._quota_used_up(now, window, window_wait)
            wait = max(wait, window_wait)
        return wait

    def _quota_used_up(
        self, now: float, window: SlidingWindow, wait: float, used: int | None = None
    ) -> None:
        """Stop the run (raise, and every later acquire too), or with ``wait_for_quota`` pause
        everyone until the window frees up, the display saying why. ``used``: the window's
        count when another budget keeps it (the shared one)."""
        resume_at = self._wall_clock() + wait
        if self.wait_for_quota:
            spent = f"quota {window.limit:,} per {window_span(window.period)} used"
            self._pause(now, wait, f"{spent}; next request at {utc_time(resume_at, window.period)}")
            return
        count = window.used(now) if used is None else used
        self.exhausted = QuotaExhausted(window.limit, window.period, count, resume_at)
        log.info(
            "%s",
            self.exhausted,
            extra={"event": "quota_exhausted", "limit": window.limit, "period_s": window.period},
        )
        raise self.exhausted

    def seed(self, history: Iterable[tuple[float, int]], resolution_s: float = 1.0) -> int:
        """Count earlier runs' requests to the same target (the quota ledger) in the windows.

        ``history`` is ``(wall-clock end of a bucket, requests in it)`` in time order. Each
        bucket counts as if all its requests went at its end: remembered a little longer than
        they need to be, never shorter. Windows shorter than ten buckets are left out: that
        coarse a history would hold them shut for no reason. Returns the requests seeded."""
        offset = self._clock() - self._wall_clock()
        windows = [w for w in self.windows if w.period >= 10 * resolution_s]
        total = 0
        for end, count in history:
            if count <= 0:
                continue
            total += count
            for window in windows:
                window.seed(end + offset, count)
        return total

    async def open(self) -> None:
        """Nothing to reach in memory; a shared budget checks its server before the run."""

    async def aclose(self) -> None:
        """Nothing to close in memory; a shared budget closes its connection."""

    def _pacer_wait(self, now: float) -> float:
        if self._rate is None:
            return 0.0
        interval = 1.0 / self._rate
        tolerance = max(self._tolerance_s, interval)
        # The learned limit is also a window: the pacer's tolerance alone would let 5% of a
        # 1 s window through early.
        return max(self._tat - tolerance - now, self._pace.wait_time(now))

    def _grant(self, now: float) -> None:
        if self._rate is not None:
            # Advancing from the schedule rather than from `now` keeps late wake-ups from
            # being lost: within the tolerance, the next request may go early to catch up.
            self._tat = max(self._tat, now) + 1.0 / self._rate
        for window in self.windows:
            window.record(now)
        self._pace.granted(now)
        self.granted += 1

    def on_throttled(self, retry_after: float | None = None) -> None:
        """The server said 429: :meth:`_throttle`, and one log line (``-v``) saying what the
        budget did about it, so the log's 429 lines and the summary's ``throttled`` agree."""
        rate, paused_until = self._rate, self._paused_until
        lowered = self._throttle(retry_after)
        now = self._clock()
        fields: dict[str, object] = {"event": "throttled", "retry_after": retry_after}
        done: list[str] = []
        if self._paused_until > max(paused_until, now):
            fields["pause_s"] = pause = round(self._paused_until - now, 3)
            done.append(f"pausing every request for {pause:.1f} s")
        elif paused_until > now:
            done.append("already paused")
        if self._rate != rate:
            fields.update(pace_from=rate, pace=self._rate)
            done.append(f"pace {_pace(rate)} -> {_pace(self._rate)} req/s")
        if not done:
            done.append("pace unchanged")
            if not lowered:
                done.append("lowered less than 1 s ago: one burst of 429s is one signal")
        what = "; ".join(done)
        after = "" if retry_after is None else f" (Retry-After {retry_after:g} s)"
        log.info("HTTP 429%s: %s", after, what, extra=fields)

    def _throttle(self, retry_after: float | None = None) -> bool:
        """The server said 429: slow everyone down, not only the worker that saw it. True when
        the pace was decided anew, False for one more 429 of a burst already acted on.

        With ``Retry-After`` the whole budget pauses as told; with it or without, the pace
        drops to the limit the 429 reveals: what the server took over its window, which the
        429 says is full (bulksync.engine._pace). After a pause (Retry-After, or the first 429
        of an unpaced budget, which pauses everyone for a second) it goes on at 99% of that
        limit; without one, by 30% below it the first time and by 10% when throttled again
        about where it was last time (at most once a second: one burst of 429s is one signal,
        though each further 429 of it takes one more request off what the server took), and
        climbs back to 99% in a few seconds. It probes above gently, and 429s that go on
        after a pause tell a window of seconds, which it learns. A configured pace is lowered
        too (the server is the truth) and recovers to the configured one.
        """
        now = self._clock()
        self.throttled += 1
        if retry_after is not None:
            retry_after = min(retry_after, self._max_pause_s)
        outcome = self._pace.throttled(now, retry_after)
        if outcome.pause_s > 0:
            self._pause(now, outcome.pause_s, outcome.reason)
        self._rate = self._pace.rate
        return outcome.lowered

    def _recover(self, now: float) -> None:
        if self._pace.recover(now):
            log.info(
                "pace back to %s req/s, the configured rate",
                _pace(self._pace.rate),
                extra={"event": "pace", "pace": self._pace.rate},
            )
        self._rate = self._pace.rate


def _pace(rate: float | None) -> str:
    return "unpaced" if rate is None else f"{rate:.1f}"
