"""The status line's pause reads at the scale of the pause: tenths, seconds, or a clock."""

from __future__ import annotations

import pytest

from bulksync.app._stats_lines import status_text
from bulksync.app._telemetry import Snapshot


def snapshot(paused_s: float, reason: str | None) -> Snapshot:
    return Snapshot(
        at=0.0,
        elapsed_s=75.0,
        requests=1200,
        retries=3,
        throttled=2,
        in_flight=4,
        pace=9.5,
        limit=10.0,
        paused_s=paused_s,
        pause_reason=reason,
        pauses=1,
        paused_total_s=paused_s,
        token_refreshes=0,
        stages=(),
    )


@pytest.mark.parametrize(
    ("paused_s", "shown"),
    [
        (0.4, "paused 0.4 s: Retry-After"),
        (42.0, "paused 42 s: Retry-After"),
        (51234.0, "paused 14:13:54: Retry-After"),
    ],
)
def test_the_pause_reads_at_its_scale(paused_s: float, shown: str) -> None:
    text = status_text(snapshot(paused_s, "Retry-After"), None)
    assert shown in text
    assert "elapsed 1:15" in text and "429s 2" in text


def test_no_pause_no_pause_part() -> None:
    assert "paused" not in status_text(snapshot(0.0, None), None)
