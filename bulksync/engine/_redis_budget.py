"""RedisBudget: one target's budget shared by every process that names the same Redis key.

Behind the same interface as RateBudget (the engine and its client cannot tell them apart):
``acquire`` runs the one Lua script of bulksync.engine._redis_script, which grants or says how
long to wait, on Redis's clock, for all processes at once. A 429 is not a round trip of its
own: ``on_throttled`` is called without an await, so it pauses this process at once for a
Retry-After and is sent with its next ``acquire``, which every process then reads.

Redis unreachable (refused, timed out, a password it refuses) is not a reason to go on with
a budget nobody else sees: every acquire raises :class:`SharedBudgetUnreachable` (exit 4),
before anything is sent, so a rerun resumes from the state as after any stop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio

from bulksync.engine._redis_script import SCRIPT
from bulksync.engine.budget import WINDOW_MARGIN, RateBudget
from bulksync.spi._errors import ConfigError, TargetUnreachable

log = logging.getLogger("bulksync.budget")

US = 1_000_000
BUCKETS = 1000  # per window, as SlidingWindow's
# Redis's retries of one command: a blip (a restart, a failover) is ridden out, a Redis that
# is gone stops the run within (RETRIES + 1) x timeout + 1 s (16 s by default), under 30 s.
RETRIES = 2


class SharedBudgetUnreachable(TargetUnreachable):
    """The shared budget's Redis cannot be used: the run stops (exit 4), never unshared."""


class RedisBudget(RateBudget):
    """:class:`RateBudget` whose windows, pace, pauses and 429 slow-down live in Redis.

    ``url`` is redis://, rediss:// or unix://, its password (if any) already registered as a
    secret; ``shown`` is the URL as messages may name it (no password). ``key`` names the
    budget: every process with the same key shares it, whatever its job.
    """

    shared = True

    def __init__(
        self,
        windows: Sequence[tuple[int, float]],
        *,
        url: str,
        shown: str,
        key: str,
        timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(windows, **kwargs)
        self.url_shown = shown
        self.key = key
        self.timeout_s = timeout_s
        self._url = url
        self._client: Any = None
        self._script: Any = None
        self._throttles = 0
        self._retry_after: float | None = None
        self.round_trips = 0  # script calls: what sizing a Redis is about
        # One hash tag: every key of a budget lands on one Redis Cluster slot, as a script
        # touching several keys needs.
        prefix = f"bulksync:budget:{{{key}}}"
        self._keys = [f"{prefix}:pace", f"{prefix}:recent", f"{prefix}:recent:n"]
        self._window_args: list[int] = []
        for window in self.windows:
            period_us = round(window.period * US)
            self._keys += [f"{prefix}:w:{period_us}", f"{prefix}:w:{period_us}:n"]
            span = round(window.period * (1 + WINDOW_MARGIN) * US)
            self._window_args += [window.limit, span, max(1, period_us // BUCKETS)]

    def _connect(self) -> Any:
        try:
            import redis.asyncio as redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
        except ImportError:
            raise ConfigError(
                "[budget] backend = \"redis\" needs the redis client: pip install 'bulksync[redis]'"
            ) from None
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._url,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), RETRIES),
                retry_on_timeout=True,
            )
            self._script = self._client.register_script(SCRIPT)
        return self._client

    async def _call(self, op: str, throttles: int = 0, retry_after: float | None = None) -> Any:
        """One script call; any failure of Redis becomes the run's stop."""
        if self.failure is not None:
            raise self.failure.with_traceback(None)
        self._connect()
        interval = 0 if self.base_rate is None else round(US / self.base_rate)
        after = -1 if retry_after is None else round(retry_after * US)
        args = [op, interval, round(self._tolerance_s * US), throttles, after, len(self.windows)]
        from redis.exceptions import RedisError

        # redis-py's retries nest (a reconnect retries too): this bounds the whole call, so a
        # Redis that hangs stops the run within the time the README says.
        limit = self.timeout_s * (RETRIES + 1) + 1.0
        try:
            self.round_trips += 1
            with anyio.fail_after(limit):
                return await self._script(keys=self._keys, args=[*args, *self._window_args])
        except TimeoutError:
            detail = f"no answer within {limit:g} s"
            self.failure = SharedBudgetUnreachable(self._unreachable(detail))
            log.info("%s", self.failure, extra={"event": "shared_budget_unreachable"})
            raise self.failure from None
        except (RedisError, OSError) as exc:
            self.failure = SharedBudgetUnreachable(self._unreachable(exc))
            log.info("%s", self.failure, extra={"event": "shared_budget_unreachable"})
            raise self.failure from None

    def _unreachable(self, exc: BaseException | str) -> str:
        detail = exc if isinstance(exc, str) else " ".join(str(exc).split()) or type(exc).__name__
        return (
            f"shared budget: Redis at {self.url_shown} cannot be used ({detail}); the run stops "
            "rather than send with a budget the other processes do not see: is redis-server "
            "running, is [budget] url right? A rerun resumes"
        )

    async def open(self) -> None:
        """Reach Redis before the run sends anything (the first acquire would, later)."""
        await self._call("peek")

    async def usage(self) -> list[int]:
        """What every process has sent within each window, as Redis counts it now."""
        reply = await self._call("peek")
        return [int(n) for n in reply[1:]]

    async def acquire(self) -> None:
        # The slot reserved for this request, slept out after the lock: the others may take
        # the next slots meanwhile (the script keeps them a pace apart).
        delay, asked = await self._grant_or_wait()
        # From when the call went out, not from its answer: the slot is on Redis's clock,
        # and the round trip already spent part of the wait.
        delay -= self._clock() - asked
        if delay > 0:
            await self._sleep(delay)

    async def _grant_or_wait(self) -> tuple[float, float]:
        """The wait before the reserved slot, and when the call that granted it went out."""
        async with self._lock:
            while True:
                if self.exhausted is not None:
                    raise self.exhausted.with_traceback(None)
                throttles, after = self._throttles, self._retry_after
                asked = self._clock()
                reply = await self._call("acquire", throttles, after)
                self._throttles -= throttles
                if self._retry_after == after:
                    self._retry_after = None
                granted, wait_us, index, window_wait_us, used, now_us, paused_us, mhz, _ = (
                    int(x) for x in reply
                )
                now = self._clock()
                self._rate = None if mhz < 0 else mhz / 1000
                if paused_us > now_us:
                    self._pause(now, (paused_us - now_us) / US, self.pause_reason or "HTTP 429")
                if granted:
                    self.granted += 1
                    return wait_us / US, asked
                if index and window_wait_us / US > self.max_quota_wait_s:
                    # Raises, or with wait_for_quota pauses everyone here until it frees up.
                    self._quota_used_up(now, self.windows[index - 1], window_wait_us / US, used)
                await self._sleep(max(wait_us / US, 1e-6))

    def on_throttled(self, retry_after: float | None = None) -> None:
        """Counted here, and sent with this process's next acquire (this call cannot await),
        which slows every process on the budget: the pace is decided there, on what all of
        them sent over the last second."""
        self._throttles += 1
        self.throttled += 1
        if retry_after is not None:
            retry_after = min(retry_after, self._max_pause_s)
            self._retry_after = max(self._retry_after or 0.0, retry_after)
            if retry_after >= 1.0:
                self._pause(self._clock(), retry_after, "Retry-After")
        after = "" if retry_after is None else f" (Retry-After {retry_after:g} s)"
        log.info(
            "HTTP 429%s: slowing every process on the shared budget %s",
            after,
            self.key,
            extra={"event": "throttled", "retry_after": retry_after, "shared": True},
        )

    def seed(self, history: Any, resolution_s: float = 1.0) -> int:
        """Nothing to seed: the windows in Redis are the ledger, every earlier run in them."""
        return 0

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout_s):
                await client.aclose()
