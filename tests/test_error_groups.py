"""Failed results are grouped by cause, whatever line or value each one names."""

from __future__ import annotations

from bulksync.app._error_groups import EXAMPLES, group_errors, pattern_of


def _failed(line: int, kind: str, message: str) -> dict[str, object]:
    return {
        "status": "failed",
        "source": "links.csv",
        "line": line,
        "key": f"k{line}",
        "error": {"type": kind, "message": message},
    }


def test_lines_of_one_cause_are_one_group_with_three_examples() -> None:
    items = [
        _failed(n, "InvalidRecord", f"links.csv:{n}: field 'id{n}' missing") for n in range(2, 7)
    ]
    items.append(_failed(9, "HTTPError", "HTTP 422: asset 9 is unknown"))
    items.append({"status": "succeeded", "line": 10})
    groups = group_errors(items)
    assert [(g.type, g.count) for g in groups] == [("InvalidRecord", 5), ("HTTPError", 1)]
    assert groups[0].message == "field '…' missing"
    assert len(groups[0].examples) == EXAMPLES
    assert [e["line"] for e in groups[0].examples] == [2, 3, 4]


def test_different_types_with_the_same_message_stay_apart() -> None:
    groups = group_errors([_failed(1, "A", "boom"), _failed(2, "B", "boom")])
    assert sorted(g.type for g in groups) == ["A", "B"]


def test_pattern_masks_numbers_and_quoted_values_only() -> None:
    assert pattern_of('a.jsonl:3: HTTP 503 for "x"') == "HTTP N for '…'"
    assert pattern_of("timeout") == "timeout"
