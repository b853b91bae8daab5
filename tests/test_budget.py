"""Tests for bulksync.engine.budget: RateBudget pacing and SlidingWindow bookkeeping.

Everything except one short real-clock test runs on an injected fake clock: ``sleep(d)``
advances fake time by ``d`` (plus, when asked, a random oversleep that imitates a late timer)
and then yields once, so thousands of grants take milliseconds and the results are exact.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from bulksync.engine.budget import PACED_WINDOW_MAX_S, RateBudget, SlidingWindow

Windows = Sequence[tuple[int, float]]

MAX_SLEEPS = 200_000  # every fake run is bounded: a budget that spins fails instead of hanging


class FakeClock:
    """A clock whose time only moves when somebody sleeps on it."""

    def __init__(
        self, start: float = 1000.0, *, late_s: float = 0.0, rng: random.Random | None = None
    ) -> None:
        self.t = start
        self.late_s = late_s
        self.rng = rng or random.Random(0)
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.sleeps += 1
        if self.sleeps > MAX_SLEEPS:
            raise AssertionError("the budget slept too many times: it is spinning")
        assert delay >= 0, f"negative sleep {delay}"
        self.t += delay
        if self.late_s:
            self.t += self.rng.uniform(0.0, self.late_s)
        await anyio.lowlevel.checkpoint()


def fake_budget(
    windows: Windows = (), clock: FakeClock | None = None, **kwargs: float
) -> tuple[RateBudget, FakeClock]:
    clock = clock or FakeClock()
    budget = RateBudget(windows, clock=clock.now, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]
    return budget, clock


async def collect_grants(
    budget: RateBudget, clock: FakeClock, total: int, tasks: int = 1
) -> list[float]:
    """Acquire ``total`` grants from ``tasks`` concurrent workers; return the grant times.

    The time is read right after ``acquire`` returns: between the grant and the return there
    is no await, and only the lock holder ever sleeps, so it is the grant's own time.
    """
    times: list[float] = []
    per_task, extra = divmod(total, tasks)
    granted_before = budget.granted

    async def worker(count: int) -> None:
        for _ in range(count):
            await budget.acquire()
            times.append(clock.now())

    async with anyio.create_task_group() as tg:
        for k in range(tasks):
            tg.start_soon(worker, per_task + (1 if k < extra else 0))
    assert len(times) == total
    assert budget.granted - granted_before == total
    return times


def max_in_any_window(times: Sequence[float], period: float) -> int:
    """The most grants in any half-open interval of length ``period`` (two pointers, O(n))."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - period:
            start += 1
        best = max(best, end - start + 1)
    return best


def count_in(times: Sequence[float], lo: float, hi: float) -> int:
    return sum(1 for t in times if lo <= t < hi)


def assert_windows_respected(times: Sequence[float], windows: Windows) -> None:
    for limit, period in windows:
        worst = max_in_any_window(times, period)
        assert worst <= limit, f"{worst} grants within {period} s, limit {limit}"


# --- (a) several windows at once, checked over every sliding interval -----------------------

QUABLE_SCALED = [(60, 6.0), (3000, 864.0)]  # Quable's (6000/600 s, 300000/day) over 100
QUABLE_QUOTA = [(60, 6.0), (300, 86400.0)]  # a real day-long quota, small enough to hit


@pytest.mark.parametrize("tasks", [1, 50])
@pytest.mark.parametrize(
    ("windows", "total"),
    [
        ([(10, 1.0), (25, 5.0)], 300),
        (QUABLE_SCALED, 3300),
        (QUABLE_QUOTA, 400),
        ([(200, 1.0)], 1000),
        ([(5, 0.1), (7, 0.2), (40, 2.0)], 500),
    ],
)
@pytest.mark.parametrize("start", [0.0, 1_000_000.123])
async def test_every_window_is_respected(
    windows: Windows, total: int, tasks: int, start: float
) -> None:
    budget, clock = fake_budget(windows, FakeClock(start))
    times = await collect_grants(budget, clock, total, tasks)
    assert_windows_respected(times, windows)
    assert times == sorted(times)


async def test_windows_respected_with_late_wakeups_and_many_tasks() -> None:
    windows = [(10, 1.0), (25, 5.0)]
    budget, clock = fake_budget(windows, FakeClock(late_s=0.003, rng=random.Random(7)))
    times = await collect_grants(budget, clock, 300, tasks=50)
    assert_windows_respected(times, windows)


@pytest.mark.parametrize("seed", range(12))
async def test_random_window_sets_are_respected(seed: int) -> None:
    rng = random.Random(seed)
    windows = []
    for _ in range(rng.randint(1, 3)):
        period = rng.choice([0.05, 0.3, 1.0, 2.5, 10.0, 60.0, 5000.0])
        windows.append((rng.randint(1, 40), period))
    late = rng.choice([0.0, 0.002, 0.02])
    budget, clock = fake_budget(
        windows, FakeClock(rng.uniform(0, 1e5), late_s=late, rng=random.Random(seed))
    )
    times = await collect_grants(budget, clock, 250, tasks=rng.choice([1, 3, 20]))
    assert_windows_respected(times, windows)


async def test_quable_quota_blocks_until_the_day_is_over() -> None:
    budget, clock = fake_budget(QUABLE_QUOTA, FakeClock(0.0))
    times = await collect_grants(budget, clock, 301)
    # The quota is not paced: the 300 go at the 6 s window's pace (10/s), the 301st waits a day.
    assert budget.rate == pytest.approx(10.0)
    assert times[299] < 60.0
    assert times[300] >= 86400.0


# --- (b) steady-state throughput and no initial burst -----------------------------------------


@pytest.mark.parametrize("tasks", [1, 50])
@pytest.mark.parametrize(
    ("windows", "tightest"),
    [
        ([(10, 1.0), (25, 5.0)], 5.0),
        ([(200, 1.0)], 200.0),
        (QUABLE_SCALED, 3000 / 864.0),
        ([(6000, 600.0), (300000, 86400.0)], 10.0),  # Quable as is: the day is not paced
    ],
)
async def test_steady_state_rate_is_close_to_the_tightest_window(
    windows: Windows, tightest: float, tasks: int
) -> None:
    clock = FakeClock(0.0)
    budget, _ = fake_budget(windows, clock)
    times = await collect_grants(budget, clock, 2000, tasks)
    rate = len(times) / (times[-1] - 0.0)
    assert rate >= 0.95 * tightest, f"{rate:.2f}/s, tightest window {tightest:.2f}/s"
    assert_windows_respected(times, windows)


@pytest.mark.parametrize("tasks", [1, 50])
@pytest.mark.parametrize("budget_args", [{"windows": [(200, 1.0)]}, {"pace": 200.0}])
async def test_no_initial_burst(budget_args: dict[str, object], tasks: int) -> None:
    # aiolimiter's AsyncLimiter(200, 1) lets 399 requests out in the first second.
    clock = FakeClock(0.0)
    budget = RateBudget(clock=clock.now, sleep=clock.sleep, **budget_args)  # type: ignore[arg-type]
    times = await collect_grants(budget, clock, 1000, tasks)
    first_second = count_in(times, 0.0, 1.0)
    assert first_second <= 200 * 1.1, first_second
    # and no burst anywhere else either
    assert max_in_any_window(times, 1.0) <= 200 * 1.1
    # the first 100 ms holds roughly 100 ms worth of grants, not a window's worth
    assert count_in(times, 0.0, 0.1) <= 20 + 11


async def test_pace_override_wins_over_windows() -> None:
    budget, clock = fake_budget([(100, 1.0)], pace=20.0)
    assert budget.base_rate == 20.0
    times = await collect_grants(budget, clock, 200)
    assert max_in_any_window(times, 1.0) <= 20 + 2


def test_default_pace_is_the_tightest_paced_window() -> None:
    assert RateBudget([(10, 1.0), (25, 5.0)]).rate == pytest.approx(5.0)
    assert RateBudget([(6000, 600.0), (300000, 86400.0)]).rate == pytest.approx(10.0)
    assert RateBudget([(3600, PACED_WINDOW_MAX_S)]).rate == pytest.approx(1.0)
    assert RateBudget([(100, 7200.0)]).rate is None
    assert RateBudget().rate is None


# --- (c) late timer wake-ups are not lost ------------------------------------------------------


@pytest.mark.parametrize("tasks", [1, 50])
@pytest.mark.parametrize("budget_args", [{"pace": 200.0}, {"windows": [(200, 1.0)]}])
async def test_late_wakeups_do_not_slow_the_pace(
    budget_args: dict[str, object], tasks: int
) -> None:
    # aiolimiter's AsyncLimiter(1, 1/200) loses every late wake-up and runs 12% slow.
    clock = FakeClock(0.0, late_s=0.003, rng=random.Random(42))
    budget = RateBudget(clock=clock.now, sleep=clock.sleep, **budget_args)  # type: ignore[arg-type]
    times = await collect_grants(budget, clock, 2000, tasks)
    rate = len(times) / times[-1]
    assert rate >= 0.98 * 200, f"{rate:.1f}/s"
    assert max_in_any_window(times, 1.0) <= 200 * 1.1
    if "windows" in budget_args:
        assert max_in_any_window(times, 1.0) <= 200


# --- (e) 429s: Retry-After pauses everyone; without it the pace drops, then recovers ----------


@pytest.mark.parametrize("tasks", [1, 50])
async def test_retry_after_pauses_every_acquirer(tasks: int) -> None:
    clock = FakeClock(0.0)
    budget, _ = fake_budget([(100, 1.0)], clock)
    times: list[float] = []
    paused_at: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            await budget.acquire()
            times.append(clock.now())
            if len(times) == 50:
                paused_at.append(clock.now())
                budget.on_throttled(retry_after=2.0)

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(worker, 200 // tasks)
    assert len(times) == 200 and budget.throttled == 1
    (pause,) = paused_at
    after = times[50:]
    assert min(after) >= pause + 2.0
    # the pause is not followed by a burst either
    assert max_in_any_window(times, 1.0) <= 100


async def test_shorter_retry_after_does_not_shorten_a_pause() -> None:
    budget, clock = fake_budget(pace=100.0)
    budget.on_throttled(retry_after=5.0)
    budget.on_throttled(retry_after=1.0)
    assert budget.throttled == 2
    await budget.acquire()
    assert clock.now() >= 1000.0 + 5.0


async def test_throttle_without_retry_after_slows_then_recovers() -> None:
    clock = FakeClock(0.0)
    budget, _ = fake_budget(pace=100.0, clock=clock)
    before = await collect_grants(budget, clock, 300)  # three seconds at full pace
    assert budget.rate == 100.0

    budget.on_throttled(None)
    slowed = budget.rate
    assert slowed is not None
    assert 60.0 <= slowed <= 71.0  # 30% off the observed pace
    budget.on_throttled(None)  # the same burst of 429s: no second decrease within a second
    assert budget.rate == slowed
    assert budget.throttled == 2

    t0 = clock.now()
    after = await collect_grants(budget, clock, 100)  # these come at the lowered pace
    assert count_in(before + after, t0 + 0.1, t0 + 1.1) <= 80
    assert budget.rate is not None and slowed < budget.rate < 100.0  # recovering

    more = await collect_grants(budget, clock, 1200)
    # back just under where the server said no within seconds (10% of it per second) ...
    assert budget.rate is not None and 99.0 <= budget.rate < 100.0
    assert more[-1] - t0 < 20.0
    last = more[-1]
    assert count_in(more, last - 5.0, last + 1e-9) >= 0.95 * 500
    # ... and, probing gently above it, at the configured pace again within a minute
    await collect_grants(budget, clock, 5000)
    assert budget.rate == 100.0


async def test_repeated_throttling_stops_at_a_floor() -> None:
    budget, clock = fake_budget(pace=100.0)
    for _ in range(40):
        await budget.acquire()
        budget.on_throttled(None)
        await clock.sleep(1.0)
    assert budget.rate is not None
    assert budget.rate >= 5.0  # 5% of the configured pace
    assert budget.rate < 100.0


async def test_throttling_an_unpaced_budget_starts_pacing_it() -> None:
    clock = FakeClock(0.0)
    budget, _ = fake_budget([(100_000, 7200.0)], clock)
    assert budget.rate is None
    for _ in range(50):  # 50 at once, unpaced
        await budget.acquire()
    assert clock.now() == 0.0
    budget.on_throttled(None)
    # It burst into a limit it was not told: everyone waits a second for the server's window
    # to empty, then goes on at 99% of what the server took (49 of the 50 in that second).
    assert budget.paused_for() == pytest.approx(1.0)
    assert budget.rate == pytest.approx(0.99 * 49)
    times = await collect_grants(budget, clock, 100)
    assert times[0] >= 1.0 and times[-1] > 2.0  # the next 100 are spread over 2 s
    assert max_in_any_window(times, 1.0) <= 50  # never more than the server took
    rate_then = budget.rate
    await clock.sleep(10.0)
    await budget.acquire()
    assert budget.rate is not None and budget.rate > rate_then  # and it recovers


# --- (f) windows longer than an hour are quotas: enforced, not paced ---------------------------


async def test_long_window_is_enforced_but_not_paced() -> None:
    budget, clock = fake_budget([(100, 7200.0)], FakeClock(0.0))
    assert budget.rate is None
    times = await collect_grants(budget, clock, 101)
    assert times[:100] == [0.0] * 100  # all at once
    assert times[100] >= 7200.0


async def test_long_window_blocks_on_the_real_clock() -> None:
    budget = RateBudget([(100, 7200.0)])
    with anyio.fail_after(2.0):
        for _ in range(100):
            await budget.acquire()
    with anyio.move_on_after(0.05) as scope:
        await budget.acquire()
    assert scope.cancelled_caught
    assert budget.granted == 100
    # the cancelled waiter released the lock: a further waiter is not stuck behind it
    with anyio.move_on_after(0.02) as scope:
        await budget.acquire()
    assert scope.cancelled_caught


# --- (g) SlidingWindow --------------------------------------------------------------------------


def test_sliding_window_counts_and_waits() -> None:
    window = SlidingWindow(3, 1.0)
    assert window.used(10.0) == 0
    assert window.wait_time(10.0) == 0.0
    for t in (10.0, 10.1, 10.2):
        assert window.wait_time(t) == 0.0
        window.record(t)
    assert window.used(10.2) == 3
    wait = window.wait_time(10.2)
    # the oldest grant (10.0) frees its slot one period later, plus at most one bucket (1 ms)
    assert 0.8 - 1e-9 <= wait <= 0.8 + 0.001 + 1e-9
    assert window.used(10.2 + wait) == 2
    assert window.wait_time(10.2 + wait) == 0.0
    assert window.used(11.0 + 0.1 + 0.002) == 1
    assert window.used(12.3) == 0


def test_sliding_window_never_forgets_a_grant_early() -> None:
    # Time only moves forward, as it does for the budget; grants and probes interleave.
    rng = random.Random(3)
    window = SlidingWindow(1000, 2.0)
    log: list[float] = []
    t = 5000.0
    for _ in range(3000):
        t += rng.expovariate(200.0)
        if rng.random() < 0.7:
            window.record(t)
            log.append(t)
        exact = sum(1 for g in log if g > t - 2.0)
        remembered_longer = sum(1 for g in log if t - 2.0 - 0.002 - 1e-9 < g <= t - 2.0)
        used = window.used(t)
        assert exact <= used <= exact + remembered_longer
        log = [g for g in log if g > t - 3.0]


def test_sliding_window_wait_time_is_positive_when_full() -> None:
    window = SlidingWindow(2, 0.5)
    window.record(0.0)
    window.record(0.0)
    wait = window.wait_time(0.0)
    assert wait > 0
    assert wait <= 0.5 + 0.0005 + 1e-9
    assert window.wait_time(wait - 1e-4) > 0  # (time only moves forward: probe early first)
    assert window.wait_time(wait + 1e-6) == 0.0  # the slot is free once the wait is over


@pytest.mark.parametrize(("limit", "period"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -2.0)])
def test_sliding_window_rejects_nonsense(limit: int, period: float) -> None:
    with pytest.raises(ValueError):
        SlidingWindow(limit, period)
    with pytest.raises(ValueError):
        RateBudget([(limit, period)])


# --- one short run on the real clock ------------------------------------------------------------


async def test_real_clock_never_exceeds_a_window() -> None:
    windows = [(10, 0.05), (30, 0.2)]  # 200/s, with a second, looser window
    last = [0.0]

    def clock() -> float:
        last[0] = time.monotonic()
        return last[0]

    budget = RateBudget(windows, clock=clock)
    times: list[float] = []

    async def worker() -> None:
        for _ in range(10):
            await budget.acquire()
            times.append(last[0])  # the clock reading the grant was made at

    with anyio.fail_after(5.0):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(worker)
    assert len(times) == 40 and budget.granted == 40
    assert_windows_respected(times, windows)
    assert all(math.isfinite(t) for t in times)
