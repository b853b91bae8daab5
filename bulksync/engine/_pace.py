"""The pace a budget learns from the server's 429s, when nobody told it the limit.

A 429 says the server's window was full when the request arrived, so what we had sent over
that window and not seen refused is the server's limit, to within a few requests in flight.
The controller keeps that count (:class:`AcceptedLog`), paces at just under it, enforces it as
a sliding window of its own (the even pace alone lets bursts of its tolerance through, 5% of a
1 s window), and probes above it slowly, ever faster the longer no 429 comes (as CUBIC does),
so that a limit that was underestimated or has been raised is found again.

Which window: 1 s unless the server keeps refusing after a pause. A server that still refuses
``D`` seconds after it first did has a window longer than ``D`` (nothing it accepted since
could have filled it), full of what we sent before; the window that best explains that is the
one over which our accepted rate was highest (:meth:`AcceptedLog.best_window`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

BUCKET_S = 0.1  # the accepted log's resolution
HISTORY_S = 60.0  # the longest window the controller can learn; longer ones are quotas
# Multiplicative decrease on a 429: the first, or one far below the last ceiling, by 30% (the
# limit is unknown); by 10% when throttled again about where it was last time.
DECREASE = 0.7
DECREASE_NEAR = 0.9
NEAR = 0.75  # "about where": at least this share of the last ceiling
HOLD = 0.99  # the pace is held at this share of the learned limit ...
RECOVERY = 0.1  # ... and climbs back to it by this share of the limit per second
# Above the hold, the pace grows by 1% of it after PROBE_S seconds without a 429, 8% after
# twice that, 27% after three times (cubic in time): gentle where the limit was, fast when the
# limit was underestimated or the server raised it.
PROBE_S = 45.0
# When 429s carry Retry-After, a probe that finds the limit costs everyone that pause: +1%
# pays for a 1 s pause only if it runs for 100 s, so the probing is that much slower then.
PROBE_PER_PAUSE_S = 100.0
PROBE_MAX_S = 600.0
# A 429 less than this after a pause ended answers one of the first requests after it: the
# pause did not help, the window is still full (a 429 later means we went on too fast).
STREAK_GAP_S = 0.25
FIRST_PAUSE_S = 1.0  # an unpaced budget's first 429: it burst into a window, most often 1 s
# Still refused after a pause, without Retry-After: everyone waits this share of how long the
# server has refused (within bounds) and then one request alone probes whether it still does.
# Short and single, so the reopening is met within a few percent of the window at the cost of
# one 429 a probe; growing, so a window of minutes is not probed four times a second.
STREAK_PAUSE = 0.03
STREAK_PAUSE_S = (0.25, 5.0)
PROBE_GAP_S = (0.05, 1.0)  # the probe's answer is awaited twice its last latency, within these
LONG_STREAK_S = 1.5  # refused for longer than this: the window is longer than a second
MARGIN = 0.01  # as budget.WINDOW_MARGIN: our clock stamps a request before the server does
# ... and by a delay that varies by milliseconds (tens, on a busy server), which matters in a
# short window. A 429 without Retry-After costs one retry; with it, a pause of everyone for a
# second or more: each such 429 widens the learned window by this much more, up to a tenth
# of it, so that the limit is kept further away (a 1 s window: 1%, 2%, ... of the pace).
PAUSED_MARGIN_S = 0.01


class AcceptedLog:
    """What was granted and not refused, per 0.1 s, over the last minute."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [bucket index, granted, refused]

    def granted(self, now: float) -> None:
        index = math.floor(now / BUCKET_S)
        if self._buckets and self._buckets[-1][0] == index:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([index, 1, 0])
        horizon = index - round((HISTORY_S + 10.0) / BUCKET_S)
        while self._buckets[0][0] < horizon:
            self._buckets.popleft()

    def refused(self) -> None:
        """A 429 answers the latest request not yet known refused: in a full window, whatever
        went last is what the server turned away."""
        for bucket in reversed(self._buckets):
            if bucket[1] > bucket[2]:
                bucket[2] += 1
                return

    def since(self, since: float) -> list[tuple[float, int]]:
        """(bucket end, accepted) of the buckets ending after ``since``, oldest first."""
        return [(start + BUCKET_S, n) for start, n in reversed(self._newest_first(since))]

    def _newest_first(self, since: float) -> list[tuple[float, int]]:
        """(bucket start, accepted) for every bucket ending after ``since``, newest first."""
        out: list[tuple[float, int]] = []
        for index, granted, refused in reversed(self._buckets):
            if (index + 1) * BUCKET_S <= since:
                break
            out.append((index * BUCKET_S, granted - refused))
        return out

    def accepted(self, since: float) -> int:
        return sum(n for _, n in self._newest_first(since))

    def best_window(self, now: float, reopen: float, shortest: float) -> tuple[float, int]:
        """The window of at least ``shortest`` seconds ending at ``reopen`` over which the
        accepted rate was highest, and its count (nothing is accepted between now and
        ``reopen``: everyone is paused)."""
        best, best_rate, count = max(shortest, BUCKET_S), -1.0, 0
        total = 0
        for start, n in self._newest_first(reopen - HISTORY_S):
            total += n
            span = reopen - start
            if span >= shortest and total / span > best_rate:
                best, best_rate, count = span, total / span, total
        return best, count


class LearnedWindow:
    """At most ``limit`` accepted requests in any ``span`` seconds: a SlidingWindow (budget.py)
    that also forgets the requests the server refused, since those did not count there."""

    def __init__(self, span: float, history: list[tuple[float, int]]) -> None:
        self.span = span
        self.limit = 1
        self._resolution = span / 1000
        self._log: deque[list[float]] = deque([end, n] for end, n in history if n > 0)
        self._count = sum(n for _, n in history)

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.span:
            self._count -= int(self._log.popleft()[1])

    def wait_time(self, now: float) -> float:
        self._expire(now)
        if self._count < self.limit:
            return 0.0
        excess = self._count - self.limit + 1
        for end, n in self._log:  # the oldest leave first
            excess -= int(n)
            if excess <= 0:
                return max(end + self.span - now, 1e-6)
        return 1e-6  # unreachable: the count is the sum of the log

    def record(self, now: float) -> None:
        end = (math.floor(now / self._resolution) + 1) * self._resolution
        if self._log and self._log[-1][0] == end:
            self._log[-1][1] += 1
        else:
            self._log.append([end, 1])
        self._count += 1

    def refused(self) -> None:
        for entry in reversed(self._log):
            if entry[1] > 0:
                entry[1] -= 1
                self._count -= 1
                return


@dataclass(slots=True)
class Throttled:
    """What the controller made of one 429."""

    pause_s: float  # everyone waits this long (0: no pause)
    reason: str  # why, for the pause's log line
    lowered: bool  # the pace was decided anew (not one more 429 of the same burst)


class PaceController:
    """The pace of one budget under 429s: learned limit, decrease, recovery, probing."""

    def __init__(self, base_rate: float | None) -> None:
        self.base_rate = base_rate
        self.log = AcceptedLog()
        self._forget()

    def _forget(self) -> None:
        """Back to the configured pace, nothing learned (what was sent is still logged)."""
        self.rate = self.base_rate
        self.window_s = 1.0  # the server window we believe in
        self.ceiling: float | None = None  # the learned limit, requests per second
        self._reference: float | None = None  # the first ceiling: the floor's scale
        self._decrease = DECREASE
        self.lowered_at = -math.inf
        self._recovered_at = -math.inf
        self._held_since: float | None = None  # when the pace reached the hold
        self._streak_start: float | None = None  # first 429 of a run of refusals
        self._pause_end = -math.inf  # the end of the last pause we asked for
        self._reopen_slack = 0.0  # how much sooner than that the server may have reopened
        self._cap: LearnedWindow | None = None  # the learned limit, enforced
        self._probe_gap = 0.25  # how long a probe's 429 is awaited before the others follow
        self._probing = False  # after a streak pause, one request goes alone
        self._probe_sent: float | None = None
        self._last_grant = -math.inf
        self._margin_s = 0.0  # grows with each 429 that made everyone pause
        self._probe_s = PROBE_S  # the probing's time scale

    def granted(self, now: float) -> None:
        self._last_grant = now
        self.log.granted(now)
        if self._probing and self._probe_sent is None:
            self._probe_sent = now
        if self._cap is not None:
            self._cap.record(now)

    def measured(self) -> float:
        """Our accepted rate over the believed window up to the last request sent: what the
        server had taken when it said no (a 429 answered during a pause must not make the
        limit look lower)."""
        return self.log.accepted(self._last_grant - self.window_s) / self.window_s

    def _refused_again(self, now: float) -> bool:
        """The 429 answers the first request after a pause: the window is still full."""
        if self._streak_start is None or now < self._pause_end:
            return False
        if self._probing:
            return self._probe_sent is not None
        return now < self._pause_end + STREAK_GAP_S

    def throttled(self, now: float, retry_after: float | None) -> Throttled:
        self.log.refused()
        if self._cap is not None:
            self._cap.refused()
        # What the server had taken when it refused this one: its limit, its window being full.
        measured = self.measured()
        pause, reason = 0.0, ""
        if retry_after is not None and retry_after < 1.0:
            # Retry-After is whole seconds: 0 (or a fraction, from a test double) asks for a
            # moment's wait, not for a slower pace; a server that sheds load this way is
            # otherwise read as a limit and the pace spirals down to the floor.
            return Throttled(retry_after, "Retry-After", False)
        if retry_after is not None:
            pause, reason = retry_after, "Retry-After"
            self._probe_s = min(PROBE_MAX_S, max(PROBE_S, PROBE_PER_PAUSE_S * retry_after))
            if now >= self._pause_end:
                self._streak_start = now
                if self.ceiling is not None:  # not the first: it met the limit we learned
                    widened = self._margin_s + PAUSED_MARGIN_S
                    self._margin_s = min(widened, 0.1 * self.window_s)
            self._probing = False
        elif self._refused_again(now):
            assert self._streak_start is not None
            low, high = STREAK_PAUSE_S
            pause = min(high, max(low, STREAK_PAUSE * (now - self._streak_start)))
            reason = "429 again after a pause"
            if self._probe_sent is not None:
                low, high = PROBE_GAP_S
                self._probe_gap = min(high, max(low, 2.0 * (now - self._probe_sent)))
            self._probing, self._probe_sent = True, None
        elif now < self._pause_end:
            pass  # the answer to a request sent before the pause
        elif self.rate is None:
            pause, reason = FIRST_PAUSE_S, "first 429"
            self._streak_start = now
        else:
            self._streak_start = None
        reopen = now + pause
        if reopen > self._pause_end:
            self._pause_end = reopen
            # When the server would have taken a request again, as best we know: Retry-After
            # is whole seconds, so up to one more than the server's own wait; our probes are
            # a pause apart, and it reopened between the last refused one and the next.
            self._reopen_slack = min(0.5, pause / 2) if retry_after is not None else pause / 2
        start = self._streak_start
        if start is not None and self._pause_end - start >= LONG_STREAK_S:
            reopened = self._pause_end - self._reopen_slack
            self._learn_window(now, reopened, reopened - start)
            return Throttled(pause, reason, True)
        if now - self.lowered_at < 1.0:
            self._refine()
            return Throttled(pause, reason, False)
        self.recover(now)
        peak = measured if self.rate is None else min(self.rate, measured)
        peak = max(peak, 1.0 / self.window_s)
        near = self.ceiling is not None and peak >= NEAR * self.ceiling
        self._decrease = DECREASE_NEAR if near else DECREASE
        self._held_since = None
        if pause > 0:
            # Everyone waits while the window empties: the pause is the backing off, and the
            # pace can go on just under the limit the 429 told once it is over.
            self._decrease, self._held_since = HOLD, reopen
        self._set_ceiling(peak, now)
        self.rate = max(self._floor(), min(self._target(peak), peak * self._decrease))
        self.lowered_at = self._recovered_at = now
        return Throttled(pause, reason, True)

    def _set_ceiling(self, ceiling: float, now: float) -> None:
        span = self.window_s * (1.0 + MARGIN) + self._margin_s
        if self._cap is None or self._cap.span != span:
            self._cap = LearnedWindow(span, self.log.since(now - span))
        self.ceiling = ceiling
        if self._reference is None:
            self._reference = ceiling

    def _refine(self) -> None:
        """More 429s of one burst: each takes one more request off what the server accepted
        (the first came back while others were still in flight)."""
        measured = max(self.measured(), 1.0 / self.window_s)
        if self.ceiling is not None and self.rate is not None and measured < self.ceiling:
            self.ceiling = measured
            target = min(self._target(measured), measured * self._decrease)
            self.rate = max(self._floor(), min(self.rate, target))

    def _learn_window(self, now: float, reopen: float, refused_for: float) -> None:
        """Still refused ``refused_for`` s on: the window is longer than that and full of what
        we sent before. Its limit is what we sent over it: pace there from the reopening."""
        window, count = self.log.best_window(now, reopen, refused_for)
        self.window_s = window
        self._set_ceiling(max(count, 1) / window, now)
        assert self.ceiling is not None
        self.rate = max(self._floor(), self._target(self.ceiling))
        self.lowered_at = self._recovered_at = now
        self._held_since = reopen

    def _target(self, ceiling: float) -> float:
        target = HOLD * ceiling
        return target if self.base_rate is None else min(self.base_rate, target)

    def _floor(self) -> float:
        return max(0.1, 0.05 * (self.base_rate or self._reference or 1.0))

    def recover(self, now: float) -> bool:
        """Climb back towards the learned limit, then probe above it. True when the pace is
        back at the configured one, and what was learned is forgotten."""
        if self.rate is None or self.ceiling is None:
            return False
        elapsed = max(0.0, now - self._recovered_at)
        self._recovered_at = now
        target = self._target(self.ceiling)
        if self._held_since is None:
            climbed = RECOVERY * self.ceiling * elapsed
            if self.rate + climbed < target:
                self.rate += climbed
                return False
            # reached the hold on the way: the probing started then
            self._held_since = now - (self.rate + climbed - target) / (RECOVERY * self.ceiling)
            self.rate = target
        if now > self._held_since:
            probe = target * (1.0 + 0.01 * ((now - self._held_since) / self._probe_s) ** 3)
            self.rate = max(self.rate, probe)
        if self.base_rate is not None and self.rate >= self.base_rate:
            self._forget()
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds until the learned window has room: the pace over it, as a hard limit."""
        wait = 0.0
        if self._probing and self._probe_sent is not None:
            wait = self._probe_sent + self._probe_gap - now
            if wait <= 0:  # no 429 came back: the server takes requests again
                self._probing = False
        if self._cap is None or self.rate is None:
            return max(wait, 0.0)
        # Rounded, not floored: 99% of a limit of 10 in 1 s is still 10 (floored, 9 would cost
        # a tenth of a low limit), and it is below the limit from 50 up.
        self._cap.limit = max(1, round(self.rate * self.window_s))
        return max(wait, self._cap.wait_time(now))
