"""The runs of a merge in the HTML report (``bulksync runs merge``): one row per run, its shard,
times, outcome and counts, so a shard that failed or lagged shows beside the job's totals."""

from __future__ import annotations

import html
from typing import Any

from bulksync.spi._redact import redacted_excerpt

MAX_ROWS = 1000  # a merge of more runs lists the first ones; its totals hold them all
_COUNTS = ("total", "succeeded", "failed", "skipped", "requests", "throttled")


def _cell(value: Any, limit: int = 80) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    elif isinstance(value, float):
        value = f"{value:,.1f}"
    return html.escape(redacted_excerpt("—" if value is None else str(value), limit))


def shards_section(summary: dict[str, Any]) -> str:
    """The merged runs as a table; empty for a run's own report."""
    rows = summary.get("shards")
    if not isinstance(summary.get("merged_from"), list) or not isinstance(rows, list):
        return ""
    body = []
    for row in rows[:MAX_ROWS]:
        if not isinstance(row, dict):
            continue
        status = ", ".join(str(m) for m in row.get("messages") or []) or "—"
        bad = row.get("exit_code") not in (0, None)
        cells = [
            f"<th>{_cell(row.get('shard'), 20)}</th>",
            f"<td><code>{_cell(row.get('run_id'))}</code></td>",
            f"<td>{_cell(str(row.get('started_at') or '')[:19].replace('T', ' ') or None)}</td>",
            f"<td class='num'>{_cell(row.get('elapsed_s'))} s</td>",
            f"<td class='num{' bad' if bad else ''}'>{_cell(row.get('exit_code'), 10)}</td>",
            *(f"<td class='num'>{_cell(row.get(name))}</td>" for name in _COUNTS),
            f"<td>{_cell(status, 200)}</td>",
        ]
        body.append(f"<tr class='shard-row'>{''.join(cells)}</tr>")
    head = "".join(
        f"<th{' class=num' if name in (*_COUNTS, 'took', 'exit') else ''}>{name}</th>"
        for name in ("shard", "run", "started", "took", "exit", *_COUNTS, "status")
    )
    hint = f"{len(rows):,} runs merged; totals above are their sums, elapsed the wall span"
    budget = summary.get("budget")
    if isinstance(budget, dict) and isinstance(budget.get("share"), int | float):
        hint += (
            f"; {summary.get('requests_per_s')} requests/s of the {budget.get('limit_per_s')}/s "
            f"the budget allows ({budget['share']:.1%})"
        )
    missing = summary.get("shards_missing")
    if isinstance(missing, list) and missing:
        hint += f"; missing: {', '.join(str(m) for m in missing[:50])}"
    if len(rows) > MAX_ROWS:
        hint += f"; the first {MAX_ROWS:,} listed"
    return (
        f"<section class='card' id='merged-runs'><h2>Merged runs</h2>"
        f"<p class='hint'>{_cell(hint, 2000)}</p>"
        f"<table class='counts shards'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )
