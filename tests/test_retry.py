"""Tests for bulksync.engine.retry.RetryPolicy: full-jitter backoff, Retry-After floor, limits."""

from __future__ import annotations

import random
import time

import pytest

from bulksync.engine.retry import Retrier, RetryPolicy, TryAgain


def policy(seed: int = 1, **kwargs: float) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("base", "cap"), [(0.25, 30.0), (1.0, 5.0), (0.01, 0.05)])
def test_delay_stays_within_the_jittered_ceiling(seed: int, base: float, cap: float) -> None:
    retry = policy(seed, base_s=base, cap_s=cap)
    for attempt in range(1, 20):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        draws = [retry.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws), (attempt, max(draws), ceiling)
        # full jitter: draws spread over the whole range, not clustered at the top
        assert min(draws) < 0.2 * ceiling
        assert max(draws) > 0.8 * ceiling


def test_ceiling_doubles_then_caps() -> None:
    retry = policy(base_s=0.25, cap_s=3.0)
    maxima = [max(retry.delay(n) for _ in range(400)) for n in range(1, 8)]
    assert maxima[0] <= 0.25
    assert 0.25 < maxima[1] <= 0.5
    assert 0.5 < maxima[2] <= 1.0
    assert 1.0 < maxima[3] <= 2.0
    assert all(2.0 < m <= 3.0 for m in maxima[4:])


def test_attempt_zero_uses_the_base() -> None:
    retry = policy(base_s=0.5, cap_s=10.0)
    assert all(0.0 <= retry.delay(0) <= 0.5 for _ in range(100))
    assert all(0.0 <= retry.delay(1024) <= 10.0 for _ in range(100))  # 2**1023 still a float


def test_delay_for_a_very_high_attempt_is_capped_not_an_error() -> None:
    # [limits] max_attempts has no upper bound, and the engine calls delay() before allows().
    retry = policy(base_s=0.25, cap_s=30.0, max_attempts=100_000, max_elapsed_s=86400.0)
    assert 0.0 <= retry.delay(1025) <= 30.0
    assert 0.0 <= retry.delay(5000) <= 30.0


def test_seeded_policies_are_reproducible() -> None:
    a, b = policy(42), policy(42)
    assert [a.delay(n) for n in range(1, 10)] == [b.delay(n) for n in range(1, 10)]


def test_retry_after_is_a_floor() -> None:
    retry = policy(base_s=0.25, cap_s=30.0)
    for attempt in range(1, 10):
        for retry_after in (0.0, 0.1, 2.0, 45.0):
            ceiling = min(30.0, 0.25 * 2 ** (attempt - 1))
            d = retry.delay(attempt, retry_after)
            assert d >= retry_after
            assert d <= max(ceiling, retry_after)  # jitter above it only up to the ceiling
    # beyond the cap too: the server's word wins over our own cap
    assert policy(cap_s=1.0).delay(3, retry_after=60.0) == 60.0


def test_retry_after_zero_keeps_the_jitter() -> None:
    retry = policy(7, base_s=1.0, cap_s=1.0)
    draws = [retry.delay(1, 0.0) for _ in range(100)]
    assert len(set(draws)) > 50


def test_allows_stops_at_max_attempts() -> None:
    retry = policy(max_attempts=3, max_elapsed_s=1000.0)
    assert retry.allows(1, 0.0, 0.0)
    assert retry.allows(2, 0.0, 0.0)
    assert not retry.allows(3, 0.0, 0.0)
    assert not retry.allows(4, 0.0, 0.0)


def test_allows_stops_at_max_elapsed() -> None:
    retry = policy(max_attempts=100, max_elapsed_s=10.0)
    assert retry.allows(1, 5.0, 5.0)  # exactly at the limit
    assert not retry.allows(1, 5.0, 5.01)  # the next attempt would start too late
    assert not retry.allows(1, 10.5, 0.0)
    assert retry.allows(1, 0.0, 9.99)


def test_a_retry_loop_is_bounded_by_both_limits() -> None:
    retry = policy(3, max_attempts=8, max_elapsed_s=300.0)
    attempts, elapsed = 0, 0.0
    while True:
        attempts += 1
        delay = retry.delay(attempts)
        if not retry.allows(attempts, elapsed, delay):
            break
        elapsed += delay
        assert attempts < 100
    assert attempts <= 8
    assert elapsed <= 300.0

    retry = policy(3, max_attempts=1000, max_elapsed_s=2.0, base_s=1.0, cap_s=1.0)
    attempts, elapsed = 0, 0.0
    while True:
        attempts += 1
        delay = retry.delay(attempts, retry_after=0.5)
        if not retry.allows(attempts, elapsed, delay):
            break
        elapsed += delay
        assert attempts < 100
    assert attempts <= 5  # 0.5 s at least per wait, 2 s at most in all
    assert elapsed <= 2.0


def test_defaults() -> None:
    retry = RetryPolicy()
    assert retry.max_attempts == 8
    assert retry.max_elapsed_s == 300.0
    assert 0.0 <= retry.delay(1) <= retry.base_s


# --- the one loop ---------------------------------------------------------------------------

FAST = dict(max_attempts=3, max_elapsed_s=10.0, base_s=0.001, cap_s=0.001)


class Counter:
    retries = 0


@pytest.mark.anyio
async def test_retrier_runs_until_success_and_counts_each_retry() -> None:
    stats = Counter()
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TryAgain("busy")
        return "ok"

    retrier = Retrier(policy(**FAST), stats)
    assert await retrier.run(attempt, lambda n, last: RuntimeError(last.failure)) == "ok"
    assert len(calls) == 3 and stats.retries == 2


@pytest.mark.anyio
async def test_retrier_gives_up_at_max_attempts_with_the_last_failure() -> None:
    stats = Counter()
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        raise TryAgain(f"busy {len(calls)}")

    retrier = Retrier(policy(**FAST), stats)
    with pytest.raises(RuntimeError, match="3 tries: busy 3"):
        await retrier.run(attempt, lambda n, last: RuntimeError(f"{n} tries: {last.failure}"))
    assert len(calls) == 3 and stats.retries == 2


@pytest.mark.anyio
async def test_retrier_lets_other_errors_through_at_once() -> None:
    stats = Counter()

    async def attempt() -> str:
        raise ValueError("not retryable")

    with pytest.raises(ValueError, match="not retryable"):
        await Retrier(policy(**FAST), stats).run(attempt, lambda n, last: RuntimeError())
    assert stats.retries == 0


@pytest.mark.anyio
async def test_retrier_waits_at_least_retry_after_and_stops_at_max_elapsed() -> None:
    stats = Counter()
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        raise TryAgain("throttled", retry_after=0.2)

    # Elapsed 0 + 0.2 fits in 0.3 s; a second wait would not: two tries, one retry.
    retrier = Retrier(policy(max_attempts=50, max_elapsed_s=0.3, base_s=0.001, cap_s=0.001), stats)
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        await retrier.run(attempt, lambda n, last: RuntimeError())
    assert len(calls) == 2 and stats.retries == 1
    assert time.monotonic() - started >= 0.2
