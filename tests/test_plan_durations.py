"""The plan's time: durations as people read them, which window binds, and the batches the
plan counts as the engine makes them."""

from __future__ import annotations

import inspect
from pathlib import Path

import orjson
import pytest

from bulksync.app._budget_time import (
    budget_time,
    describe_time,
    format_duration,
    format_window,
    window_time,
)
from bulksync.app._request_plan import MAX_HELD_JOBS, MAX_OPEN_GROUPS, RequestTally, estimate
from bulksync.app.config import Config, InputsConfig, OutputConfig, TargetConfig
from bulksync.app.runner import RunOptions, run_job
from bulksync.connectors.ocapi._requests import OcapiRequests
from bulksync.connectors.propeller._requests import PropellerRequests
from bulksync.connectors.quable._requests import QuableRequests
from bulksync.engine._engine import EngineOptions
from bulksync.engine._stages import group_jobs
from bulksync.spi import AssetRecord, LinkRecord, Origin, Removal

QUABLE = ((6000, 600.0), (300000, 86400.0))
HOUR, DAY = 3600.0, 86400.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "under 1 s"),
        (0.5, "under 1 s"),
        (1.4, "1 s"),
        (42.4, "42 s"),
        (59.6, "1 min"),
        (26 * 60 + 20, "26 min"),
        (HOUR, "1 h"),
        (3 * HOUR + 5 * 60, "3 h 5 min"),
        (DAY, "1 d"),
        (5 * DAY + HOUR + 10, "5 d 1 h"),
        (2 * DAY + 22 * HOUR + 1700, "2 d 22 h"),
    ],
)
def test_durations_read_in_two_units_at_most(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_windows_read_as_people_say_them() -> None:
    assert format_window((300000, DAY)) == "300,000 per 24 h"
    assert format_window((6000, 600.0)) == "6,000 per 10 min"
    assert format_window((50, 1.0)) == "50 per 1 s"
    assert format_window((7, 2.5)) == "7 per 2.5 s"


def test_a_window_takes_full_periods_then_the_rest_at_the_pace() -> None:
    # Within one window: the pace alone (10 a second).
    assert window_time(6000, (6000, 600.0), 10.0) == pytest.approx(600.0)
    # 6,001: one full period (the budget remembers a grant 1% longer), then one request.
    assert window_time(6001, (6000, 600.0), 10.0) == pytest.approx(606.0 + 0.1)
    # A quota the pace never meets in its period is no bound: the paced window decides,
    # 10 requests per 1.01 s.
    timed = budget_time(1000, ((10, 1.0), (100000, DAY)))
    assert timed.binding == (10, 1.0) and timed.seconds == pytest.approx(99 * 1.01 + 1.0)


def test_the_quota_binds_a_long_job_and_the_paced_window_is_named() -> None:
    timed = budget_time(1_512_340, QUABLE)
    assert timed.binding == (300000, DAY)
    # 5 full days (each remembered 1% longer), then 12,340 requests at 10 a second
    assert timed.seconds == pytest.approx(5 * DAY * 1.01 + 1234.0)
    text = describe_time(1_512_340, QUABLE, None)
    assert text.startswith("5 d 2 h at 300,000 per 24 h (quota-bound; the 10-minute window")
    # the 10-minute window alone: 252 full windows of 606 s, then 340 requests
    assert text.endswith(f"alone would allow {format_duration(252 * 606 + 34)})")


def test_a_short_job_is_bound_by_the_paced_window() -> None:
    timed = budget_time(15_830, QUABLE)
    assert timed.binding == (6000, 600.0)
    assert describe_time(15_830, QUABLE, None) == "27 min at 6,000 per 10 min"
    assert describe_time(100, QUABLE, None) == "10 s at 6,000 per 10 min"


def test_the_configured_pace_and_no_limit_at_all() -> None:
    assert describe_time(600, (), 5.0) == "2 min at 5 requests/s ([limits] pace)"
    assert budget_time(600, ()).seconds is None
    assert describe_time(600, (), None).startswith("no request rate documented or configured")
    # a quota alone, unpaced: what is over it waits for the next period
    assert describe_time(500_000, ((300000, DAY),), None) == "1 d at 300,000 per 24 h (quota-bound)"
    # a pace override names the pace as what would allow it alone
    assert "the pace alone would allow" in describe_time(400_000, QUABLE, 10.0)


def test_the_grouping_bounds_are_the_engines() -> None:
    assert EngineOptions().max_open_groups == MAX_OPEN_GROUPS
    held = inspect.signature(group_jobs).parameters["max_held_jobs"].default
    assert held == MAX_HELD_JOBS


def link(source: str, target: str, link_type: str = "t") -> LinkRecord:
    return LinkRecord(Origin("links.jsonl", 1), source, target, link_type)


def test_quable_costs_per_item_and_v4_groups() -> None:
    v5 = RequestTally(QuableRequests())
    asset = AssetRecord(Origin("a", 1), "a1", file=Path("a.png"))
    v5.add("create", asset)
    v5.add("update", AssetRecord(Origin("a", 2), "a2", remote_path="https://x/a.jpg"))
    v5.add("create", link("d1", "a1"))
    v5.add("update", link("d1", "a2"), remote_id="7")  # delete + create
    v5.add("update", link("d1", "a3"))  # no id kept: a lookup first
    v5.add("delete", Removal(Origin("state", 0), "link", "d1->a4:t", None))  # lookup + delete
    assert v5.per_kind() == {"asset": 3, "link": 1 + 2 + 3 + 2}
    v4 = RequestTally(QuableRequests("v4", v4_batch=3))
    for i in range(7):  # one group: 3 + 3 + 1
        v4.add("create", link("d1", f"x{i}"))
    v4.add("update", link("d2", "x"))  # its own group, listed first: 2
    assert v4.per_kind() == {"link": 3 + 2}
    # the v5 plan names v4 as its alternative
    assert [label for label, _, _ in v5.alternatives()] == ['links_api = "v4"']


def test_grouped_items_flush_early_when_too_many_groups_are_open() -> None:
    """As group_jobs does: past MAX_OPEN_GROUPS open groups the oldest is sent, full or not,
    and a later item of that group starts a batch of its own."""
    tally = RequestTally(QuableRequests("v4", v4_batch=3))
    tally.add("create", link("d0", "x"))
    for i in range(1, MAX_OPEN_GROUPS + 1):
        tally.add("create", link(f"d{i}", "x"))
    tally.add("create", link("d0", "y"))
    assert tally.per_kind() == {"link": MAX_OPEN_GROUPS + 2}
    # Propeller groups by lookup key: 1,005 links by id are 11 chunks of 100
    chunks = RequestTally(PropellerRequests(chunk=100))
    for i in range(1005):
        chunks.add("create", LinkRecord(Origin("l", i), {"class": "product", "id": i}, {}, "t"))
    assert chunks.per_kind() == {"link": 11}


def test_ocapi_single_puts_name_the_batch_api() -> None:
    tally = RequestTally(OcapiRequests())
    for i in range(120):
        tally.add("create", link("c1", f"c{i}"))
    plan = estimate(tally, "client_credentials", (), None)
    assert plan.per_kind == {"link": 120} and plan.fixed == {"logins": 1, "preflight": 1}
    assert plan.alternatives == (("batch = true", 3 + 2),)
    assert plan.describe(5, short=True) == "5 requests"  # no rate: said once, on the total


def test_long_runs_renew_their_session() -> None:
    tally = RequestTally(QuableRequests())
    for i in range(72_000):  # 2 h at 10 a second
        tally.add("create", link("d", f"x{i}"))
    plan = estimate(tally, "login", QUABLE, None)
    assert plan.fixed["logins"] == 3  # at the start, then after each hour
    assert estimate(tally, "token", QUABLE, None).fixed["logins"] == 0


def test_the_dry_run_prints_the_requests_and_their_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.png").write_bytes(b"png")
    assets = [{"id": "a", "file": "media/a.png"}, {"id": "b", "remotePath": "https://x/b.jpg"}]
    (tmp_path / "assets.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in assets))
    links = [{"from": "d", "to": f"x{i}", "type": "t"} for i in range(30)]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in links))
    config = Config(
        target=TargetConfig(kind="quable", base_url="https://acme.quable.com", token_env="T"),
        inputs=InputsConfig(assets=tmp_path / "assets.jsonl", links=tmp_path / "links.jsonl"),
        output=OutputConfig(results=tmp_path / "out" / "results.jsonl", progress=False),
    )
    report = run_job(config, options=RunOptions(dry_run=True))
    out = capsys.readouterr().out.splitlines()
    assert "assets: 2 create, 0 update, 0 skip, 0 invalid, 0 delete (3 requests)" in out
    assert "links: 30 create, 0 update, 0 skip, 0 invalid, 0 delete (30 requests)" in out
    # a token: no login; the preflight GET
    assert "total: 34 requests: 3 s at 6,000 per 10 min" in out
    assert "  of which 1 preflight; retries are not counted" in out
    assert report.summary["plan"]["requests"]["requests"] == 34
    # v4 would send the 30 links of one group in one request: named, being far cheaper
    assert '  with links_api = "v4": 5 requests: under 1 s at 6,000 per 10 min' in out


def test_the_runs_own_requests_are_counted_in_words() -> None:
    from bulksync.app.plan import _count

    assert _count(1, "logins") == "1 login" and _count(3, "logins") == "3 logins"
    assert (
        _count(1, "listing pages") == "1 listing page" and _count(1, "preflight") == "1 preflight"
    )
