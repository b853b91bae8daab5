"""The pace a RateBudget learns from 429s (bulksync.engine._pace), on a fake clock against the
sandbox's own sliding-window limiter: a Retry-After lowers the pace as well as pausing, the
learned limit holds as a window, a window of seconds that nobody disclosed is learned, and a
configured limit that is right is never met with a 429.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from test_budget import FakeClock, fake_budget, max_in_any_window

from bulksync.engine._pace import AcceptedLog, LearnedWindow
from bulksync.sandbox._knobs import RateWindow
from bulksync.sandbox._ratelimit import SlidingWindowLimiter, retry_after_header

MAX_ATTEMPTS = 50_000  # every drive is bounded in requests, whatever the budget does


@dataclass
class Served:
    accepted: list[float]  # when the server took each request
    refused: int

    def share_refused(self) -> float:
        return self.refused / (len(self.accepted) + self.refused)


async def drive(
    budget: object, clock: FakeClock, server: SlidingWindowLimiter, items: int, *, hint: bool
) -> Served:
    """One worker sends ``items`` requests through ``budget`` to ``server`` (answers take no
    time), each retried until taken, as the engine does; ``hint``: 429s carry Retry-After."""
    from bulksync.engine.budget import RateBudget

    assert isinstance(budget, RateBudget)
    served = Served([], 0)
    for _ in range(MAX_ATTEMPTS):
        if len(served.accepted) == items:
            return served
        await budget.acquire()
        wait = server.acquire(clock.now())
        if wait is None:
            served.accepted.append(clock.now())
            continue
        served.refused += 1
        budget.on_throttled(float(retry_after_header(wait)) if hint else None)
    raise AssertionError(f"{items} items not served in {MAX_ATTEMPTS} requests")


def limiter(limit: int, seconds: float) -> SlidingWindowLimiter:
    return SlidingWindowLimiter([RateWindow(limit, seconds)])


async def test_a_retry_after_pauses_and_lowers_the_pace() -> None:
    budget, _ = fake_budget(clock=FakeClock(0.0))
    for _ in range(120):  # unpaced: 120 at once; the server took 100 of them
        await budget.acquire()
    for _ in range(20):
        budget.on_throttled(1.0)
    assert budget.paused_for() == pytest.approx(1.0)
    # paced now, just under what the server took in its window, not left unpaced to burst
    # into the limit again once the pause is over
    assert budget.rate == pytest.approx(99.0)
    assert budget.throttled == 20


async def test_a_limit_the_server_keeps_to_itself_is_learned_with_retry_after() -> None:
    budget, clock = fake_budget(clock=FakeClock(0.0))
    served = await drive(budget, clock, limiter(100, 1.0), 3000, hint=True)
    assert budget.rate is not None and 95.0 <= budget.rate <= 101.0
    assert budget.pauses <= 2  # the burst into the limit, then no more
    assert served.share_refused() <= 0.02
    elapsed = served.accepted[-1] - served.accepted[0]
    assert len(served.accepted) / elapsed >= 0.95 * 100


async def test_a_limit_the_server_keeps_to_itself_is_learned_without_retry_after() -> None:
    budget, clock = fake_budget(clock=FakeClock(0.0))
    served = await drive(budget, clock, limiter(100, 1.0), 3000, hint=False)
    assert served.share_refused() <= 0.01
    elapsed = served.accepted[-1] - served.accepted[0]
    assert len(served.accepted) / elapsed >= 0.97 * 100


@pytest.mark.parametrize("hint", [False, True])
async def test_a_window_of_seconds_nobody_disclosed_is_learned(hint: bool) -> None:
    """1,000 per 10 s: the unpaced budget bursts 1,000 out at once, then the server refuses
    everything for 10 s. The budget must not spend those seconds on 429s, nor come back at
    the pace it burst at, nor crawl at a pace lowered every second in the meantime."""
    budget, clock = fake_budget(clock=FakeClock(0.0))
    served = await drive(budget, clock, limiter(1000, 10.0), 6000, hint=hint)
    assert served.share_refused() <= 0.02
    assert budget._pace.window_s >= 9.0  # it knows the window is about 10 s
    elapsed = served.accepted[-1] - served.accepted[0]
    # 6,000 at 100/s take 50 s after the first 1,000
    assert len(served.accepted) / max(elapsed, 50.0) >= 0.9 * 100


async def test_a_low_limit_is_learned_whole() -> None:
    """10 per second: 99% of it must not become 9 a second once counted in whole requests."""
    budget, clock = fake_budget(clock=FakeClock(0.0))
    served = await drive(budget, clock, limiter(10, 1.0), 600, hint=False)
    elapsed = served.accepted[-1] - served.accepted[0]
    assert len(served.accepted) / elapsed >= 0.95 * 10
    assert served.share_refused() <= 0.02


async def test_the_learned_limit_holds_as_a_window() -> None:
    """The pacer's tolerance lets requests go early after a late wake-up; the learned limit
    still holds over any second, as a known one does."""
    clock = FakeClock(0.0, late_s=0.03)
    budget, _ = fake_budget(clock=clock)
    for _ in range(60):
        await budget.acquire()
    budget.on_throttled(1.0)  # the server took 60 in its second
    times: list[float] = []
    for _ in range(600):
        await budget.acquire()
        times.append(clock.now())
    assert max_in_any_window(times, 1.0) <= 60


async def test_a_configured_pace_is_lowered_by_the_server_and_comes_back() -> None:
    budget, clock = fake_budget(pace=100.0, clock=FakeClock(0.0))
    served = await drive(budget, clock, limiter(50, 1.0), 1000, hint=False)
    # the server is the truth: it takes 50/s, so the budget goes at about that ...
    assert budget.rate is not None and budget.rate < 55.0
    assert served.share_refused() <= 0.02
    # ... and, with the server no longer refusing, probes its way back to the configured pace
    for _ in range(30_000):
        await budget.acquire()
        if budget.rate == 100.0:
            break
    assert budget.rate == 100.0


async def test_a_known_limit_is_never_met_with_a_429() -> None:
    budget, clock = fake_budget([(1000, 10.0)], FakeClock(0.0, late_s=0.02))
    served = await drive(budget, clock, limiter(1000, 10.0), 3000, hint=True)
    assert served.refused == 0
    assert budget.rate == 100.0


async def test_a_retry_after_of_less_than_a_second_only_pauses() -> None:
    """Retry-After is whole seconds; 0 asks for a moment, not for a slower pace."""
    budget, _ = fake_budget(clock=FakeClock(0.0))
    for _ in range(100):
        await budget.acquire()
    budget.on_throttled(0.0)
    budget.on_throttled(0.5)
    assert budget.rate is None  # still unpaced
    assert budget.paused_for() == pytest.approx(0.5)


def test_a_429_takes_the_last_request_off_what_was_accepted() -> None:
    log = AcceptedLog()
    for i in range(10):
        log.granted(5.0 + i * 0.01)
    log.refused()
    log.refused()
    assert log.accepted(4.0) == 8
    assert log.best_window(5.1, 7.0, 1.5) == (pytest.approx(2.0), 8)


def test_the_learned_window_forgets_refused_requests() -> None:
    window = LearnedWindow(1.0, [(0.5, 3)])  # three accepted, remembered until 1.5
    window.limit = 4
    assert window.wait_time(0.6) == 0.0
    window.record(0.6)
    assert window.wait_time(0.6) == pytest.approx(0.9)  # until the first three expire
    window.refused()  # the one just sent was refused: it does not count
    assert window.wait_time(0.6) == 0.0
