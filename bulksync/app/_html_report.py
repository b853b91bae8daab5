"""The HTML run report: one self-contained file a person opens offline after a run.

Everything is inline (the charting library, uPlot, is vendored under ``_assets/``): the page
makes no request to any host, and its Content-Security-Policy forbids it to, so a hostile
error message echoed by a server cannot load anything either. Text from the run (messages, keys,
the target's address) is masked for secrets, cut, and HTML-escaped; the chart data travels as
JSON in a ``<script type="application/json">`` block with every ``<`` escaped, so no value can
close the block. The size stays bounded whatever the run: the timeline is downsampled to at
most 2000 points (see :mod:`bulksync.app._report_series`) and the errors table to a budget.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from bulksync._version import __version__
from bulksync.app._error_groups import ErrorGroup, group_errors
from bulksync.app._html_bench import bench_section
from bulksync.app._html_shards import shards_section
from bulksync.app._report_series import downsample, histogram_bins
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import read_json_lines

REPORT_NAME = "report.html"
MESSAGE_CHARS = 300  # a group's cause as shown
EXAMPLE_CHARS = 200  # an example line's message as shown
MAX_BYTES = 1_450_000  # the page's size limit (the issue asks for about 1.5 MB at most)
NOTE_BYTES = 2_000  # kept free for the errors section's frame and its "more causes" note
CHARTS = ("stages", "requests", "latency", "trouble", "histogram")


def render_report(
    summary: dict[str, Any], timeline: Iterable[dict[str, Any]], error_groups: list[ErrorGroup]
) -> str:
    """The report as one HTML document. ``timeline`` is streamed (one dict per second)."""
    series = downsample(timeline)
    edges, counts = histogram_bins(summary.get("latency_histogram"))
    data = {
        "timeline": series,
        "histogram": {"upper_ms": edges, "count": counts},
        "limit_known": any(v is not None for v in series["limit"]),
    }
    run_id = _text(summary.get("run_id") or "run", 80)
    parts = [
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        # Belt and braces for "no request to any host": even injected markup could not fetch.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>bulksync {run_id}</title>",
        f"<style>{_asset('uPlot.min.css')}\n{_asset('report.css')}</style>",
        "</head><body><main>",
        _header(summary),
        # One part: "" is the errors' placeholder.
        _counts(summary) + bench_section(summary) + shards_section(summary),
        _charts(series, bool(counts)),
        "",  # the errors table: last made, in the room the rest leaves
        _footer(series),
        "</main>",
        f"<script>{_asset('uPlot.iife.min.js')}</script>",
        f"<script type='application/json' id='report-data'>{script_json(data)}</script>",
        f"<script>{_asset('report.js')}</script>",
        "</body></html>\n",
    ]
    # The timeline and header are bounded; the errors table is what may grow, so it gets the
    # room left under the limit and counts the causes that did not fit.
    room = MAX_BYTES - NOTE_BYTES - sum(len(part.encode()) + 1 for part in parts)
    parts[parts.index("")] = _errors(error_groups, room)
    return "\n".join(parts)


def write_report_html(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of the run in ``run_dir`` (``summary.json``, ``timeline.jsonl``,
    ``results.jsonl``, each optional but the summary) to ``out`` (default: the run folder's
    ``report.html``), replacing it whole, and return its path. Called at the end of every run
    and by ``bulksync report --html``; the timeline and results are streamed, not loaded."""
    out = out if out is not None else run_dir / REPORT_NAME
    summary_file = run_dir / "summary.json"
    try:
        summary = orjson.loads(summary_file.read_bytes())
    except FileNotFoundError:
        raise ReportError(f"{run_dir}: not a run folder (no summary.json)") from None
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"{summary_file}: not a run summary ({exc})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{summary_file}: not a run summary (not a JSON object)")
    groups = group_errors(read_json_lines(run_dir / "results.jsonl"))
    document = render_report(summary, read_json_lines(run_dir / "timeline.jsonl"), groups)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    os.replace(tmp, out)
    return out


class ReportError(ValueError):
    """A run folder the report cannot be made from; the message is one line for the user."""


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<`` (hence ``</script>`` and
    ``<!--``), ``>`` and ``&`` as escapes JSON.parse reads back, and the line separators
    old parsers choke on."""
    text = orjson.dumps(value).decode()
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _asset(name: str) -> str:
    text = resources.files("bulksync.app").joinpath("_assets", name).read_text("utf-8")
    # Inlined as is: a closing tag inside would end the element early.
    assert "</script" not in text.lower() and "</style" not in text.lower(), name
    return text


def _text(value: Any, limit: int = MESSAGE_CHARS) -> str:
    """Text from the run as HTML: secrets masked before cutting, then escaped."""
    return html.escape(redacted_excerpt("" if value is None else str(value), limit))


def _header(summary: dict[str, Any]) -> str:
    target = _object(summary, "target")
    status = ", ".join(str(m) for m in summary.get("messages") or []) or "—"
    exit_code = summary.get("exit_code")
    if exit_code is not None:
        status += f" · exit {exit_code}"
    ok = exit_code == 0 if exit_code is not None else not summary.get("failed")
    meta = [
        ("target", f"{target.get('kind') or '—'} · {target.get('base_url') or '—'}"),
        ("started", summary.get("started_at")),
        ("ended", summary.get("ended_at")),
        ("elapsed", _seconds(summary.get("elapsed_s"))),
        ("exit code", exit_code),
        ("version", summary.get("version")),
        ("config", summary.get("config_hash")),
    ]
    latency = _object(summary, "latency_ms")
    pauses = _object(summary, "pauses")
    figures = [
        ("items", summary.get("total")),
        ("succeeded", summary.get("succeeded")),
        ("failed", summary.get("failed")),
        ("skipped", summary.get("skipped")),
        ("items/s", summary.get("items_per_s")),
        ("requests", summary.get("requests")),
        ("retries", summary.get("retries")),
        ("429s", summary.get("throttled")),
        ("pauses", _pauses(pauses)),
        ("token refreshes", summary.get("token_refreshes")),
        ("p50", _ms(latency.get("p50"))),
        ("p95", _ms(latency.get("p95"))),
        ("p99", _ms(latency.get("p99"))),
    ]
    return (
        f"<header><h1>bulksync {'merge' if 'merged_from' in summary else 'run'} "
        "<span class='run-id'>"
        f"{_text(summary.get('run_id') or '—', 80)}</span>"
        f"<span class='badge {'ok' if ok else 'bad'}'>{_text(status, 80)}</span></h1>"
        "<dl class='meta'>"
        + "".join(f"<div><dt>{k}</dt><dd>{_text(_dash(v), 200)}</dd></div>" for k, v in meta)
        + "</dl><div class='figures'>"
        + "".join(
            f"<div class='figure{' bad' if k in ('failed', '429s') and v else ''}'>"
            f"<b>{_text(_figure(v), 40)}</b><span>{k}</span></div>"
            for k, v in figures
        )
        + "</div></header>"
    )


def _counts(summary: dict[str, Any]) -> str:
    counts = summary.get("counts")
    if not isinstance(counts, dict) or not counts:
        return ""
    kinds = [k for k, v in counts.items() if isinstance(v, dict)][:20]
    actions: list[str] = []
    for kind in kinds:
        actions.extend(a for a in counts[kind] if a not in actions)
    actions = actions[:20]
    head = "".join(f"<th class='num'>{_text(a, 40)}</th>" for a in actions)
    rows = "".join(
        f"<tr><th>{_text(kind, 40)}</th>"
        + "".join(
            f"<td class='num'>{_text(_figure(counts[kind].get(a, 0)), 20)}</td>" for a in actions
        )
        + "</tr>"
        for kind in kinds
    )
    return (
        "<section class='card'><h2>Items per kind and action</h2>"
        f"<table class='counts'><thead><tr><th>kind</th>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


_CHART_TEXT = {
    "stages": ("Items per second, per stage", "done + failed + skipped each second"),
    "requests": (
        "Requests per second against the budget",
        "requests sent; the pace in force and the budget's limit; requests in flight (right axis)",
    ),
    "latency": ("Latency over time", "p50, p95 and p99 of the requests answered, in ms"),
    "trouble": (
        "Retries, 429s and pauses",
        "retries and 429s per second, failed items per second; share of the time paused "
        "(right axis)",
    ),
    "histogram": ("Latency histogram", "requests per latency bucket over the whole run"),
}


def _charts(series: dict[str, Any], has_histogram: bool) -> str:
    out = ["<section class='charts'>"]
    for name in CHARTS:
        title, hint = _CHART_TEXT[name]
        present = has_histogram if name == "histogram" else series["points"] > 0
        body = (
            f"<div class='chart' id='chart-{name}' data-chart='{name}'></div>"
            if present
            else "<p class='empty'>No data was recorded for this chart.</p>"
        )
        out.append(f"<div class='card'><h2>{title}</h2><p class='hint'>{hint}</p>{body}</div>")
    out.append("</section>")
    return "".join(out)


def _errors(groups: list[ErrorGroup], room: int) -> str:
    if not groups:
        return "<section class='card'><h2>Errors</h2><p class='empty'>No item failed.</p></section>"
    rows: list[str] = []
    used = 0
    shown = 0
    for group in groups:
        examples = "".join(
            "<li><span class='where'>"
            f"{_text(ex.get('source'), 120)}:{_text(ex.get('line'), 20)}"
            f"{(' · ' + _text(ex.get('key'), 120)) if ex.get('key') is not None else ''}"
            f"</span> {_text(ex.get('message'), EXAMPLE_CHARS)}</li>"
            for ex in group.examples
        )
        row = (
            f"<tr><td class='num'>{group.count:,}</td><td><code>{_text(group.type, 80)}</code>"
            f"</td><td class='cause'>{_text(group.message)}<ul>{examples}</ul></td></tr>"
        )
        used += len(row.encode())
        if used > room:
            break
        rows.append(row)
        shown += 1
    total = sum(g.count for g in groups)
    note = ""
    if shown < len(groups):
        rest = groups[shown:]
        note = (
            f"<p class='hint'>{len(rest):,} more causes ({sum(g.count for g in rest):,} items) "
            "are not listed here to keep this file small; <code>bulksync report</code> lists "
            "them all.</p>"
        )
    return (
        f"<section class='card'><h2>Errors <span class='hint'>{_n(total, 'failed item')} in "
        f"{_n(len(groups), 'cause')}</span></h2>"
        "<table class='errors'><thead><tr><th class='num'>items</th><th>type</th>"
        f"<th>cause and examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{note}</section>"
    )


def _footer(series: dict[str, Any]) -> str:
    width = series["width_s"]
    sampling = f"timeline: {series['samples']:,} seconds shown as {series['points']:,} points" + (
        f" of {width} s each (counters summed, p95/p99 their maximum)" if width > 1 else ""
    )
    made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"<footer>bulksync {__version__} · report written {made} · {sampling}</footer>"


def _object(summary: dict[str, Any], key: str) -> dict[str, Any]:
    value = summary.get(key)
    return value if isinstance(value, dict) else {}


def _dash(value: Any) -> Any:
    return "—" if value is None or value == "" else value


def _figure(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _ms(value: Any) -> str:
    return f"{value:,.1f} ms" if isinstance(value, (int, float)) else "—"


def _seconds(value: Any) -> str | None:
    if not isinstance(value, (int, float)):
        return None
    hours, rest = divmod(float(value), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{int(hours)} h {int(minutes):02d} min"
    return f"{int(minutes)} min {seconds:04.1f} s" if minutes else f"{seconds:.2f} s"


def _pauses(pauses: dict[str, Any]) -> str | None:
    count = pauses.get("count")
    if count is None:
        return None
    total = pauses.get("total_s")
    return f"{count} ({total:.0f} s)" if isinstance(total, (int, float)) and count else str(count)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
