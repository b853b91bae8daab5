"""The bench's table in the HTML report: one row per stage, the knee marked (the rest of the
report is a sync's: requests, 429s and latency over time, the latency histogram)."""

from __future__ import annotations

import html
from typing import Any

from bulksync.spi._redact import redacted_excerpt

_COLUMNS = ("offered/s", "sent/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "errors", "429")


def _cell(value: Any, limit: int = 80) -> str:
    return html.escape(redacted_excerpt("—" if value is None else str(value), limit))


def _share(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "—"


def bench_section(summary: dict[str, Any]) -> str:
    """The stages of a bench's summary as a table; empty for a sync's."""
    bench = summary.get("bench")
    if not isinstance(bench, dict) or not isinstance(bench.get("stages"), list):
        return ""
    knee = bench.get("knee_rps")
    rows = []
    for number, stage in enumerate(bench["stages"][:100], 1):
        if not isinstance(stage, dict):
            continue
        given = stage.get("latency_ms")
        latency: dict[str, Any] = given if isinstance(given, dict) else {}
        held = stage.get("held")
        verdict = "—" if held is None else ("held" if held else f"no: {stage.get('reason')}")
        if knee is not None and stage.get("offered_rps") == knee and held:
            verdict = "held · the knee"
        cells = [
            stage.get("offered_rps"),
            stage.get("sent_rps"),
            stage.get("achieved_rps"),
            latency.get("p50"),
            latency.get("p95"),
            latency.get("p99"),
            _share(stage.get("error_share")),
            _share(stage.get("throttled_share")),
        ]
        rows.append(
            f"<tr><th>{number}</th>"
            + "".join(f"<td class='num'>{_cell(c)}</td>" for c in cells)
            + f"<td>{_cell(verdict, 200)}</td></tr>"
        )
    head = "".join(f"<th class='num'>{c}</th>" for c in _COLUMNS)
    knee_text = "none" if knee is None else f"{knee:g} req/s"
    limit = bench.get("p95_limit_ms")
    hint = f"knee: {knee_text}; p95 limit {_cell(limit)} ms; mode {_cell(bench.get('mode'))}"
    return (
        f"<section class='card'><h2>Bench stages</h2><p class='hint'>{hint}</p>"
        f"<table class='counts'><thead><tr><th>stage</th>{head}<th>held</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )
