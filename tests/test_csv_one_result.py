"""A bug met while failing a multi-line CSV row still leaves one result per line."""

from __future__ import annotations

from pathlib import Path

import pytest

import bulksync.inputs._csv as csv_module
from bulksync.inputs.readers import read_records


def test_a_bug_in_a_swallowed_line_neither_duplicates_nor_loses_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "links.csv"
    # Line 2 opens a quote that is never closed: lines 2-4 are one failed row; lines 3 and 4
    # are reported on their own, by their key.
    path.write_text('from,to,type\n"a1,b1,t\na2,b2,t\na3,b3,t\n', encoding="utf-8")

    def broken(*_: object) -> None:
        raise RuntimeError("bug while naming a swallowed line")

    monkeypatch.setattr(csv_module, "record_key", broken)
    with read_records(path, "link") as stream:
        lines = [record.origin.line for record in stream]
    assert lines == [2, 3, 4]
