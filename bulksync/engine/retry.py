"""When to try an item again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped in attempts and in time per item.

    Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of
    many workers that failed together, so they do not hit the server again in one wave.
    """

    max_attempts: int = 8
    max_elapsed_s: float = 300.0
    base_s: float = 0.25
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before attempt ``attempt + 1``, never shorter than ``retry_after``."""
        # The exponent is capped so a huge attempt count cannot overflow a float.
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(0, attempt - 1), 60))
        wait = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def allows(self, attempt: int, elapsed_s: float, next_delay: float) -> bool:
        """Whether another attempt may start after ``next_delay`` more seconds."""
        return attempt < self.max_attempts and elapsed_s + next_delay <= self.max_elapsed_s
