"""The budget and a used-up quota (issue 16), on the fake clock of test_budget: a window that
would keep the next request waiting longer than ``max_quota_wait_s`` raises QuotaExhausted (and
keeps raising it), or with ``wait_for_quota`` pauses everyone, saying why; short waits and the
pace are unaffected. Seeding from the ledger counts earlier runs' requests in the windows."""

from __future__ import annotations

import math

import pytest
from test_budget import FakeClock, collect_grants

from bulksync.engine.budget import RateBudget
from bulksync.spi._errors import QuotaExhausted

DAY = 86400.0
QUOTA = [(60, 6.0), (300, DAY)]  # a pace window and a day-long quota small enough to hit
WALL = 1_800_000_000.0  # the fake wall clock at fake monotonic time 0


def budget_on(clock: FakeClock, windows: list[tuple[int, float]], **kwargs: object) -> RateBudget:
    return RateBudget(
        windows,
        clock=clock.now,
        sleep=clock.sleep,
        wall_clock=lambda: WALL + clock.now(),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_used_up_quota_raises_with_the_window_and_the_resume_time() -> None:
    clock = FakeClock(0.0)
    budget = budget_on(clock, QUOTA, max_quota_wait_s=600.0)
    times = await collect_grants(budget, clock, 300)
    assert times[-1] < 60.0  # the day's 300 went at the 6 s window's pace
    with pytest.raises(QuotaExhausted) as caught:
        await budget.acquire()
    quota = caught.value
    assert (quota.limit, quota.period_s, quota.used) == (300, DAY, 300)
    assert quota.exit_code == 6
    # The first grant's bucket leaves the day (plus the budget's 1% margin) about a day on.
    assert WALL + DAY <= quota.resume_at <= WALL + DAY * 1.01 + DAY / 1000 + 60
    assert "300 per 24 h used; next request possible at" in str(quota)
    assert clock.t == pytest.approx(times[-1], abs=1.0)  # it did not sleep for the day
    assert budget.granted == 300
    # Every later request fails at once too: nothing more goes out.
    for _ in range(3):
        with pytest.raises(QuotaExhausted):
            await budget.acquire()
    assert budget.granted == 300 and budget.exhausted is quota


async def test_a_window_freeing_up_within_the_limit_is_waited_for() -> None:
    clock = FakeClock(0.0)
    budget = budget_on(clock, [(5, 100.0)], max_quota_wait_s=200.0)
    times = await collect_grants(budget, clock, 6)
    assert times[5] >= 100.0  # waited for the window: 100 s is within the 200 s allowed
    assert budget.exhausted is None


async def test_with_wait_for_quota_everyone_pauses_and_the_pause_says_why() -> None:
    clock = FakeClock(0.0)
    seen: list[tuple[float, str | None]] = []

    async def sleep(delay: float) -> None:
        seen.append((budget.paused_for(), budget.pause_reason))  # what the display shows
        await clock.sleep(delay)

    budget = RateBudget(
        QUOTA,
        clock=clock.now,
        sleep=sleep,
        wall_clock=lambda: WALL + clock.now(),
        max_quota_wait_s=600.0,
        wait_for_quota=True,
    )
    await collect_grants(budget, clock, 300)
    seen.clear()
    await budget.acquire()
    assert clock.t >= DAY
    assert seen[0][0] > DAY - 3600.0
    assert str(seen[0][1]).startswith("quota 300 per 24 h used; next request at 2027-")
    assert budget.exhausted is None and budget.granted == 301
    assert budget.pauses == 1


async def test_the_default_budget_waits_as_before() -> None:
    # Without max_quota_wait_s (code building a budget of its own), a quota is waited for.
    clock = FakeClock(0.0)
    budget = budget_on(clock, QUOTA)
    times = await collect_grants(budget, clock, 301)
    assert times[300] >= DAY and budget.max_quota_wait_s == math.inf


async def test_seeded_requests_count_in_the_windows() -> None:
    clock = FakeClock(0.0)
    budget = budget_on(clock, QUOTA, max_quota_wait_s=600.0)
    # An earlier run sent 250 in the last hour (ends of 60 s buckets, wall clock), and 500 more
    # over a day ago that no longer count.
    history = [(WALL - 2 * DAY, 500), (WALL - 3600.0, 200), (WALL - 60.0, 50)]
    assert budget.seed(history, resolution_s=60.0) == 750
    assert budget.windows[1].used(clock.now()) == 250
    # The 6 s window is shorter than ten buckets: a minute's history would hold it shut.
    assert budget.windows[0].used(clock.now()) == 0
    await collect_grants(budget, clock, 50)
    with pytest.raises(QuotaExhausted) as caught:
        await budget.acquire()
    # The first of the 200 leaves the day a day after its bucket's end, an hour from "now".
    assert caught.value.resume_at == pytest.approx(WALL - 3600.0 + DAY * 1.01, abs=DAY * 0.01 + 120)
    assert caught.value.resume_at > WALL + DAY - 3600.0
