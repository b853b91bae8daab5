"""Seeded fault injection and latency.

Every decision for request number *n* (in arrival order, counting every request to any of the
three APIs) is derived from ``blake2b(seed, n)``, never from a shared RNG stream or the
clock. The same seed and the same request sequence therefore give the same faults and the same
jitter, whatever the timing, rate limiting or concurrency of earlier requests did.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from ._settings import FaultSettings, LatencySettings

FaultKind = Literal["error", "disconnect", "drop_after_write", "slow"]
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: a fault (or None), its status for errors, and a jitter draw."""

    number: int
    fault: FaultKind | None
    status: int | None
    jitter: float  # uniform in [0, 1)

    def delay_seconds(self, latency: LatencySettings) -> float:
        return (latency.fixed_ms + latency.jitter_ms * self.jitter) / 1000.0


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self._settings = settings
        self._seed = str(settings.seed).encode()
        self.counter = 0
        self.active = any(
            (
                settings.error_rate,
                settings.disconnect_rate,
                settings.drop_after_write_rate,
                settings.slow_rate,
            )
        )

    def applies_to(self, api: str) -> bool:
        return api in self._settings.apis

    def decide(self, is_write: bool, eligible: bool = True, *, jitter: bool = True) -> Decision:
        """Draw for the next request; ``eligible`` False (API not faulted) still spends a rank.

        With no fault rates and no jitter wanted there is nothing to draw: the hash is skipped
        (it is a measurable share of a request at benchmark rates) but the rank still advances.
        """
        self.counter += 1
        number = self.counter
        if not jitter and not (self.active and eligible):
            return Decision(number, None, None, 0.0)
        digest = hashlib.blake2b(self._seed + b":" + str(number).encode(), digest_size=24).digest()
        u_fault = int.from_bytes(digest[0:8], "big") / _SCALE
        u_status = int.from_bytes(digest[8:16], "big") / _SCALE
        u_jitter = int.from_bytes(digest[16:24], "big") / _SCALE
        fault, status = (
            self._pick(u_fault, u_status, is_write) if self.active and eligible else (None, None)
        )
        return Decision(number, fault, status, u_jitter)

    def _pick(
        self, u: float, u_status: float, is_write: bool
    ) -> tuple[FaultKind | None, int | None]:
        s = self._settings
        edge = s.error_rate
        if u < edge:
            statuses = s.error_statuses
            return "error", statuses[min(int(u_status * len(statuses)), len(statuses) - 1)]
        edge += s.disconnect_rate
        if u < edge:
            return "disconnect", None
        edge += s.drop_after_write_rate
        if u < edge:
            # Reads have nothing to duplicate: the draw is spent, so later decisions don't shift.
            return ("drop_after_write", None) if is_write else (None, None)
        edge += s.slow_rate
        if u < edge:
            return "slow", None
        return None, None

    def reset(self) -> None:
        self.counter = 0
