"""retry-failed's selection by key, on records built in memory."""

from __future__ import annotations

import pytest

from bulksync._retry_select import SHOWN, RetrySelection
from bulksync.records import BadRecord, LinkRecord, Origin


def link(line: int, to: str) -> LinkRecord:
    return LinkRecord(Origin("/in/links.jsonl", line), "a", to, "t")


def test_a_failed_key_gone_from_the_input_is_reported_and_nothing_else_is_retried(
    capsys: pytest.CaptureFixture[str],
) -> None:
    selection = RetrySelection({"/in/links.jsonl": {2: "a->gone:t", 3: None}})
    records = [link(1, "x"), link(2, "y"), BadRecord(Origin("/in/links.jsonl", 3), "link", "bad")]
    chosen = list(selection.select("/in/links.jsonl", records))
    # Line 3 could not be read then: it had no key, so its number is all there is.
    assert [r.origin.line for r in chosen] == [3]
    err = capsys.readouterr().err
    assert "links.jsonl:2 now holds a->y:t, not the failed a->gone:t (not retried)" in err
    assert "a->gone:t is no longer in the input" in err


def test_many_mismatches_are_shown_up_to_a_few_then_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed: dict[int, str | None] = {n: f"a->old{n}:t" for n in range(1, 21)}
    selection = RetrySelection({"/in/links.jsonl": failed})
    assert (
        list(selection.select("/in/links.jsonl", [link(n, f"new{n}") for n in range(1, 21)])) == []
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == SHOWN + 1
    assert lines[-1] == f"bulksync: retry-failed: ... and {20 - SHOWN} more input change(s)"
