"""When to try again, how long to wait first, and the one loop that does it.

Items at a stage, logins and listing pages are all retried through :class:`Retrier`, so the
budget of attempts and time, the Retry-After floor and the run's retry count are the same
whatever is retried. Connectors never retry: they only classify.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio

T = TypeVar("T")

log = logging.getLogger("bulksync.retry")


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

    def wait_for(self, attempts: int, started_at: float, retry_after: float | None) -> float | None:
        """The wait before trying again after ``attempts`` tries begun at ``started_at``
        (monotonic), or None when the policy says stop."""
        delay = self.delay(attempts, retry_after)
        if self.allows(attempts, time.monotonic() - started_at, delay):
            return delay
        return None


class TryAgain(Exception):
    """Raised by one attempt that may succeed if repeated: the failure, and the server's
    Retry-After if it gave one. The original error, if any, is its ``__cause__``."""

    def __init__(self, failure: str, retry_after: float | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.retry_after = retry_after


class RetryCounter(Protocol):
    retries: int


def count_retry(stats: RetryCounter, what: str, cause: str, delay: float, items: int = 1) -> None:
    """One request about to be sent again: counted in the run's ``retries`` and logged on one
    line (``-v``), so the log's retry lines and the summary's count are the same number."""
    stats.retries += 1
    log.info(
        "retry %s in %.2f s: %s",
        what,
        delay,
        cause,
        extra={
            "event": "retry",
            "what": what,
            "cause": cause,
            "delay": round(delay, 3),
            "items": items,
        },
    )


class Retrier:
    """The engine's one retry loop: every wait between two tries of the same thing (an item
    at a stage, a batch, a login, a listing page) is decided, counted and slept here.

    ``retries`` in the run's stats counts requests sent again: a try repeated counts once
    whatever it carries (a batch of 50 items retried together is one request re-sent, not 50),
    so the summary shows the load a run put on the target beyond one request per thing.
    """

    def __init__(self, policy: RetryPolicy, stats: RetryCounter) -> None:
        self.policy = policy
        self._stats = stats

    def wait_for(self, attempts: int, started_at: float, retry_after: float | None) -> float | None:
        return self.policy.wait_for(attempts, started_at, retry_after)

    def resent(self, what: str, cause: str, delay: float = 0.0, items: int = 1) -> None:
        """Count (and log) one request sent again, ``delay`` seconds from now."""
        count_retry(self._stats, what, cause, delay, items)

    async def pause(self, delay: float, what: str, cause: str, items: int = 1) -> None:
        """Wait ``delay`` before one request carrying ``items`` things is sent again (a batch
        retried together is one request)."""
        self.resent(what, cause, delay, items)
        await self.sleep(delay)

    async def sleep(self, delay: float) -> None:
        """The wait alone, for requests already counted with :meth:`resent`."""
        await anyio.sleep(delay)

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        give_up: Callable[[int, TryAgain], BaseException],
        on_retry: Callable[[TryAgain, float], None] | None = None,
        what: str = "request",
    ) -> T:
        """``attempt()`` until it returns, raises anything but :class:`TryAgain`, or the policy
        stops it: then ``give_up(attempts, last)`` is raised. ``what`` names the thing in the
        log's retry lines."""
        started = time.monotonic()
        tries = 0
        while True:  # bounded by the policy: no wait is allowed after max_attempts tries
            tries += 1
            try:
                return await attempt()
            except TryAgain as again:
                last = again
            delay = self.wait_for(tries, started, last.retry_after)
            if delay is None:
                raise give_up(tries, last) from None
            if on_retry is not None:
                on_retry(last, delay)
            await self.pause(delay, what, last.failure)
