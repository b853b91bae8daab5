"""The quota ledger (bulksync.store._quota_ledger) and the run's side of it (bulksync.app._quota):
constant space per instance, pruning, folding finer buckets, counts that concurrent writers add
to rather than overwrite, and the budget seeded from it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from bulksync.app._quota import QuotaBook, instance_of, open_quota_book
from bulksync.app.config import Config, InputsConfig, LimitsConfig, TargetConfig
from bulksync.engine.budget import RateBudget
from bulksync.spi._errors import ConfigError
from bulksync.store._quota_ledger import (
    MAX_BUCKETS,
    QuotaLedger,
    bucket_width,
    default_ledger_path,
)

DAY = 86400.0
START = 1_800_000_000.0


class WallClock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def ledger(path: Path, clock: WallClock, longest: float = DAY, instance: str = "q") -> QuotaLedger:
    return QuotaLedger(path / "ledger.sqlite", instance, longest, clock=clock)


def total(book: QuotaLedger) -> int:
    return sum(count for _, count in book.history())


def test_bucket_widths_keep_a_window_within_max_buckets() -> None:
    assert bucket_width(DAY) == 60
    assert bucket_width(600.0) == 1 and bucket_width(20.0) == 1
    assert bucket_width(7 * DAY) * MAX_BUCKETS >= 7 * DAY


def test_three_days_of_requests_keep_constant_rows(tmp_path: Path) -> None:
    clock = WallClock()
    book = ledger(tmp_path, clock)
    for second in range(3 * int(DAY) // 10):  # every 10 s for three days, a flush each time
        book.add(3)
        clock.t += 10.0
        if second % 6 == 0:
            book.flush()
    book.flush()
    # About one bucket per minute of the last day (and its margin), whatever ran before.
    assert book.rows() <= MAX_BUCKETS * 1.01 + 3
    # Everything of the last day is there: 3 every 10 s, remembered a little longer.
    assert 3 * DAY / 10 <= total(book) <= 3 * DAY * 1.01 / 10 + 3 * 13
    clock.t += 2 * DAY
    book.flush()
    assert book.rows() == 0 and book.history() == []


def test_requests_are_never_remembered_shorter_than_they_matter(tmp_path: Path) -> None:
    clock = WallClock()
    book = ledger(tmp_path, clock)
    book.add(7, at=clock.t)
    book.flush()
    end, count = book.history()[0]
    assert count == 7 and end >= clock.t  # the bucket's end, never before the request
    clock.t += DAY  # a day on, still counted (the margin) ...
    assert total(book) == 7
    clock.t += DAY * 0.02 + 60  # ... and gone after it
    assert total(book) == 0


def test_a_shorter_window_job_folds_into_the_day_and_loses_nothing(tmp_path: Path) -> None:
    clock = WallClock()
    day = ledger(tmp_path, clock)  # a job with Quable's day declared the instance's horizon
    short = ledger(tmp_path, clock, longest=20.0)  # another job's client sees only 20 s
    for _ in range(3000):
        short.add(2)
        clock.t += 1.0
        short.flush()
    # The short job's fine buckets older than its window are folded into minutes: the day
    # job still counts them all, in constant space.
    assert total(day) == 6000
    assert short.rows() <= 3000 / 60 + 2 + 25
    fine = [end for end, _ in day.history() if end % 60]
    assert len(fine) <= 25  # only the last 20 s (and margin) stay at one second


def test_two_runs_writing_at_once_add_up(tmp_path: Path) -> None:
    clock = WallClock()
    one, two = ledger(tmp_path, clock), ledger(tmp_path, clock)
    for _ in range(50):
        one.add(1)
        two.add(2)
        one.flush()
        two.flush()
    assert total(one) == total(two) == 150
    other = ledger(tmp_path, clock, instance="another")
    assert total(other) == 0  # instances are apart


def test_the_default_path_follows_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_ledger_path() == tmp_path / "bulksync" / "quota-ledger.sqlite"


def job(tmp_path: Path, **limits: object) -> Config:
    (tmp_path / "links.jsonl").write_text("")
    return Config(
        target=TargetConfig(kind="quable", base_url="https://Acme.quable.com/", token_env="T"),
        inputs=InputsConfig(links=tmp_path / "links.jsonl"),
        limits=LimitsConfig(rate=[(300000, DAY)], **limits),  # type: ignore[arg-type]
    )


def test_the_next_run_starts_from_what_earlier_runs_sent(tmp_path: Path) -> None:
    config = job(tmp_path, quota_ledger=tmp_path / "ledger.sqlite")
    assert instance_of(config) == "quable https://acme.quable.com"  # no credential in it
    first = RateBudget([(300000, DAY)])
    with ExitStack() as stack:
        book = open_quota_book(config, first, stack)
        assert isinstance(book, QuotaBook)
        first.granted = 1234  # as many requests charged
    # The book wrote them on closing; the next run's budget counts them in its day.
    second = RateBudget([(300000, DAY)])
    with ExitStack() as stack:
        open_quota_book(config, second, stack)
        assert second.windows[0].used(second._clock()) == 1234


def test_no_window_no_ledger_and_a_bad_configured_ledger_is_a_config_error(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        assert open_quota_book(job(tmp_path), RateBudget([]), stack) is None
        (tmp_path / "file").write_text("")
        config = job(tmp_path, quota_ledger=tmp_path / "file" / "ledger.sqlite")
        with pytest.raises(ConfigError, match="quota ledger"):
            open_quota_book(config, RateBudget([(10, DAY)]), stack)


def test_a_run_that_crashes_still_writes_what_it_sent(tmp_path: Path) -> None:
    config = job(tmp_path, quota_ledger=tmp_path / "ledger.sqlite")
    budget = RateBudget([(300000, DAY)])
    with pytest.raises(RuntimeError), ExitStack() as stack:
        open_quota_book(config, budget, stack)
        budget.granted = 42
        raise RuntimeError("a bug mid-run")
    after = RateBudget([(300000, DAY)])
    with ExitStack() as stack:
        open_quota_book(config, after, stack)
        assert after.windows[0].used(after._clock()) == 42


def test_instances_no_run_writes_again_are_forgotten(tmp_path: Path) -> None:
    clock = WallClock()
    gone = ledger(tmp_path, clock, instance="sandbox on a port never seen again")
    gone.add(5)
    gone.flush()
    gone.close()
    clock.t += DAY / 2
    assert total(ledger(tmp_path, clock, instance=gone.instance)) == 5
    clock.t += DAY
    ledger(tmp_path, clock, instance="another").close()  # any run opening the file prunes
    left = QuotaLedger(tmp_path / "ledger.sqlite", "x", DAY, clock=clock)
    tables = left._query("SELECT COUNT(*) FROM quota_buckets", ())[0][0]
    instances = left._query("SELECT instance FROM quota_instances ORDER BY instance", ())
    assert tables == 0
    assert [row[0] for row in instances] == ["x"]  # "another" wrote nothing either
