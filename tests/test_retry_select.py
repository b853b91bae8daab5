"""retry-failed's selection by key, on records built in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulksync.app._retry_select import SHOWN, RetrySelection
from bulksync.spi._records import BadRecord, LinkRecord, Origin


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


def test_failed_items_of_a_file_this_job_does_not_read_are_not_dropped_silently(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bulksync.spi._errors import ConfigError

    selection = RetrySelection({"/old/links.jsonl": {2: "a->b:t"}})
    with pytest.raises(ConfigError, match=r"come from /old/links\.jsonl, which this job"):
        selection.check_sources(["/new/links.jsonl"])
    both = RetrySelection({"/old/links.jsonl": {2: "a->b:t"}, "/in/assets.jsonl": {1: "a"}})
    both.check_sources(["/in/assets.jsonl"])
    err = capsys.readouterr().err
    assert "1 failed item(s) of /old/links.jsonl not retried" in err
    selection.check_sources(["/old/links.jsonl"])  # matching: nothing said
    assert capsys.readouterr().err == ""


def test_retry_failed_on_another_input_file_says_so_instead_of_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bulksync.app.cli import main

    (tmp_path / "x.bin").write_bytes(b"x")
    (tmp_path / "a.jsonl").write_text('{"id": "a1", "file": "x.bin"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "a1", "file": "x.bin"}\n', encoding="utf-8")
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[fake]\npermanent_rate = 1.0\n'
        '[inputs]\nassets = "a.jsonl"\n[output]\nprogress = false\n',
        encoding="utf-8",
    )
    assert main(["run", "--config", str(config)]) == 1
    results = tmp_path / "results.jsonl"
    capsys.readouterr()
    # The failed a1 of a.jsonl is not in b.jsonl's results: nothing retried is no success.
    code = main(
        [
            "retry-failed",
            str(results),
            "--config",
            str(config),
            "--assets",
            str(tmp_path / "b.jsonl"),
        ]
    )
    assert code == 2
    assert "which this job does not read" in capsys.readouterr().err
