"""Server-side sliding-window rate limits, one limiter per API.

A sliding log (the accept time of each request) is exact where a fixed-bucket counter is not:
Quable counts "6,000 requests in any 10 minutes", so a client that bursts at a bucket edge must
still be refused here, or bulksync would pass tests that production then fails.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from bulksync.sandbox._knobs import RateWindow


class SlidingWindowLimiter:
    """All windows are enforced together; refused requests do not count against any window."""

    def __init__(self, windows: Sequence[RateWindow], time_scale: float = 1.0) -> None:
        self._windows = [(w.limit, w.seconds / time_scale, deque[float]()) for w in windows]

    @property
    def enabled(self) -> bool:
        return bool(self._windows)

    def acquire(self, now: float) -> float | None:
        """Record a request at ``now``; return None if accepted, else seconds until a slot frees."""
        wait = 0.0
        for limit, span, log in self._windows:
            horizon = now - span
            while log and log[0] <= horizon:
                log.popleft()
            if len(log) >= limit:
                wait = max(wait, log[0] - horizon)
        if wait > 0:
            return wait
        for _, _, log in self._windows:
            log.append(now)
        return None

    def usage(self) -> list[dict[str, float]]:
        """Each window's limit, span (real seconds) and current count, for /_sandbox/stats."""
        return [
            {"limit": lim, "seconds": span, "used": len(log)} for lim, span, log in self._windows
        ]

    def reset(self) -> None:
        for _, _, log in self._windows:
            log.clear()


def retry_after_header(wait: float) -> int:
    """Retry-After is whole seconds; never advertise 0, a client would spin."""
    return max(1, math.ceil(wait))
