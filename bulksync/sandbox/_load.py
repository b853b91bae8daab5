"""How busy each API is right now: the requests that arrived over the last real second.

It drives ``latency.degrade_above_rps``, a server that slows down past a given load so that
``bulksync bench`` has a knee to find. Real seconds, not ``time_scale``d ones: a rate of
requests per second is what the client offers, whatever the API's windows are scaled to.
"""

from __future__ import annotations

from collections import deque

SPAN_S = 1.0


class LoadMeter:
    """Arrivals over the last :data:`SPAN_S`; constant work per request (amortised)."""

    def __init__(self) -> None:
        self._arrivals: deque[float] = deque()

    def arrive(self, now: float) -> float:
        """Count one arrival at ``now``; the rate in requests per second, this one included."""
        arrivals = self._arrivals
        arrivals.append(now)
        horizon = now - SPAN_S
        while arrivals and arrivals[0] <= horizon:
            arrivals.popleft()
        return len(arrivals) / SPAN_S

    def reset(self) -> None:
        self._arrivals.clear()
