"""The HTML run report without a browser: downsampling, escaping, size, the run folder."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import orjson
import pytest
from html_report_fixtures import START, hostile_results, results, summary, timeline, write_run

from bulksync.app._error_groups import ErrorGroup, group_errors
from bulksync.app._html_report import (
    ReportError,
    render_report,
    script_json,
    write_report_html,
)
from bulksync.app._report_series import MAX_POINTS, MAX_STAGES, downsample, histogram_bins
from bulksync.spi._redact import register_secret

ROOT = Path(__file__).resolve().parents[1]
SIZE_LIMIT = 1_500_000


def test_a_long_timeline_is_cut_to_at_most_max_points_with_its_counters_kept() -> None:
    seconds = 10_000  # buckets of 8 s: 1250 points, all full
    series = downsample(timeline(seconds))
    assert series["points"] <= MAX_POINTS
    assert series["width_s"] == 8
    assert series["samples"] == seconds
    width = series["width_s"]
    # Rates times the bucket's seconds give back the totals of the seconds.
    assert round(sum(series["throttled"]) * width) == sum(1 for t in range(seconds) if t % 97 == 0)
    sent = sum(line["requests"] for line in timeline(seconds))
    assert sum(series["requests"]) * width == pytest.approx(sent, rel=1e-3)
    assert series["x"][1] - series["x"][0] == width
    assert set(series["stages"]) == {"assets: upload", "links: create"}
    assert all(len(column) == series["points"] for column in series["stages"].values())


def test_a_bucket_keeps_its_worst_second_and_weights_p50_by_requests() -> None:
    lines = [
        {"t": t, "requests": 10, "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0}}
        for t in range(8)
    ]
    lines[3] = {"t": 3, "requests": 30, "latency_ms": {"p50": 50.0, "p95": 900.0, "p99": 950.0}}
    series = downsample(lines, max_points=1)
    assert series["points"] == 1
    assert series["p95"] == [900.0]
    assert series["p99"] == [950.0]
    assert series["p50"] == [pytest.approx((7 * 10 * 10 + 30 * 50) / 100)]
    assert series["requests"] == [pytest.approx((7 * 10 + 30) / 8)]


def test_a_short_timeline_is_kept_per_second_and_odd_lines_are_skipped() -> None:
    lines: list[object] = list(timeline(5))
    lines += ["not a dict", {"ts": "no t"}, {"t": "5"}, {"t": 5, "requests": "many", "pace": None}]
    series = downsample(lines)  # type: ignore[arg-type]
    assert series["width_s"] == 1
    assert series["points"] == 6
    assert series["requests"][-1] == 0.0
    assert series["pace"][-1] is None
    assert series["time"] is True
    assert series["x"][0] == START.timestamp()  # epoch seconds of t = 0, from "ts"


def test_more_stages_than_charted_share_one_series() -> None:
    line = {"t": 0, "stages": {f"s{i}": {"done": 1} for i in range(MAX_STAGES + 5)}}
    series = downsample([line])
    assert len(series["stages"]) == MAX_STAGES + 1
    assert series["stages"]["other stages"] == [5.0]


def test_the_histogram_is_merged_into_few_bars_with_every_request_counted() -> None:
    fine = summary(1000, 0, 10)["latency_histogram"]
    edges, counts = histogram_bins(fine)
    assert len(edges) == len(counts) <= 41
    assert sum(counts) == sum(c for _, c in fine)
    assert edges == sorted(edges)
    assert histogram_bins([[5, 1], [10, 2], ["x", 3], [20]]) == ([5.0, 10.0], [1, 2])
    assert histogram_bins(None) == ([], [])


def test_json_in_a_script_element_cannot_close_it() -> None:
    value = {"m": "</script><!-- <b>&amp; \u2028", "n": [1, None]}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value


def _page(extra: list[dict[str, object]] | None = None, seconds: int = 120) -> str:
    items = list(results(300, 4)) + (extra or [])
    return render_report(summary(300, 10, seconds), timeline(seconds), group_errors(items))


def test_hostile_messages_are_shown_as_text_only() -> None:
    page = _page(hostile_results())
    assert page.count("<script") == 3  # uPlot, the data, the page's own
    assert "<img" not in page
    assert "__pwned=1</script>" not in page
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;!--" in page


def test_the_page_refers_to_nothing_outside_itself() -> None:
    page = _page(hostile_results())
    # Hostile text carries "src=" too, escaped: look at tags only.
    assert re.findall(r"<[a-z][^>]*\s(?:src|href)\s*=|url\(|@import", page) == []
    assert "src=" in page  # the hostile text is there, escaped
    assert "default-src 'none'" in page


def test_secrets_are_masked_in_the_page() -> None:
    register_secret("s3cr3t-token-value")
    leaked = dict(hostile_results()[0], key="SKU-s3cr3t-token-value")
    leaked["error"] = {"type": "Auth", "message": "bad token s3cr3t-token-value"}
    page = _page([leaked])
    assert "s3cr3t-token-value" not in page
    assert "bad token ***" in page


def test_a_run_folder_becomes_report_html(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seconds=60, total=500)
    with open(run / "timeline.jsonl", "ab") as fh:
        fh.write(b'{"t": 60, "requests": 1')  # a crashed run's cut last line
    out = write_report_html(run)
    assert out == run / "report.html"
    page = out.read_text("utf-8")
    assert "20261203T110000Z-a1b2" in page
    assert page.count("data-chart=") == 5
    assert "Rejectedaaa" in page
    assert not list(run.glob("*.tmp"))


def test_a_run_folder_without_timeline_or_results_still_has_a_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_bytes(orjson.dumps(summary(10, 0, 5)))
    page = write_report_html(run, tmp_path / "elsewhere.html").read_text("utf-8")
    assert page.count("data-chart=") == 1  # the histogram, from the summary
    assert "No data was recorded for this chart." in page
    assert "No item failed." in page


@pytest.mark.parametrize("content", [None, b"{not json", b"[1, 2]"])
def test_a_folder_that_is_no_run_is_one_clear_error(tmp_path: Path, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_bytes(content)
    with pytest.raises(ReportError) as caught:
        write_report_html(tmp_path)
    assert "\n" not in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_a_million_item_run_of_three_hours_stays_under_the_size_limit() -> None:
    total, seconds = 1_000_000, 3 * 3600
    groups = group_errors(results(total, causes=1000))  # streamed, 20,000 failures
    assert len(groups) == 1000
    page = render_report(summary(total, 20_000, seconds), timeline(seconds), groups)
    size = len(page.encode())
    assert size < SIZE_LIMIT, size
    assert page.count("<tr><td class='num'>") == 1000  # every cause listed
    assert "more causes" not in page


def test_the_worst_errors_table_is_cut_to_keep_the_size_limit() -> None:
    hostile = '<&"' * 400  # each character grows when escaped
    groups = [
        ErrorGroup(
            f"T{i}{hostile}",
            f"{i}{hostile}",
            count=5,
            examples=[
                {"source": hostile, "line": i, "key": hostile, "message": hostile} for _ in range(3)
            ],
        )
        for i in range(1000)
    ]
    page = render_report(summary(10**6, 5000, 86_400), timeline(86_400), groups)
    assert len(page.encode()) < SIZE_LIMIT
    assert "more causes" in page and "bulksync report" in page


def test_every_asset_ships_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bulksync.app"]
    assets = sorted((ROOT / "bulksync" / "app" / "_assets").iterdir())
    assert {a.name for a in assets} >= {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"}
    for asset in assets:
        name = f"_assets/{asset.name}"
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
