"""The human view of `bulksync report`: totals, counts per kind and action, the run's figures
from its summary, and the failures grouped by cause with a few example lines each.

One pass over the results: memory holds the counters and the error groups (bounded by
:data:`bulksync.app._error_groups.MAX_GROUPS`), never the lines, so a 1M-line file is fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from bulksync.app._error_groups import ErrorGroup, group_errors
from bulksync.app.report import ResultsFile, results_items
from bulksync.store.results import action_of

# Actions in the order people read a sync: what was written, what was already there, what
# was left alone, what went wrong. Others (a plug-in's own words) come after, by name.
ORDER = (
    "created",
    "updated",
    "linked",
    "exists",
    "succeeded",
    "deleted",
    "gone",
    "unchanged",
    "skipped",
    "failed",
)
MAX_ACTIONS = 30  # distinct action names kept per kind; a plug-in's free text cannot grow it
OTHER_SKIP = "skipped-other"
MESSAGE_CHARS = 200


class Tally:
    """Counts per status and per (kind, action), fed one item at a time."""

    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.actions: dict[str, Counter[str]] = {}

    def add(self, item: dict[str, Any]) -> None:
        self.status[str(item.get("status"))] += 1
        kind = str(item.get("kind") or "item")
        actions = self.actions.setdefault(kind, Counter())
        action = action_of(item)
        if action not in actions and len(actions) >= MAX_ACTIONS:
            action = OTHER_SKIP if item.get("status") == "skipped" else "other"
        actions[action] += 1

    def counted(self, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            self.add(item)
            yield item

    @property
    def total(self) -> int:
        return sum(self.status.values())


def write_text_report(found: ResultsFile, out: TextIO, *, failed_only: bool = False) -> Tally:
    """Write the human view of ``found``; returns the counts it shows."""
    tally = Tally()
    groups = group_errors(tally.counted(results_items(found.results)))
    summary = found.summary_doc()
    lines = [f"results  {found.results}"]
    if summary is not None:
        lines += _summary_lines(summary)
    if not failed_only:
        lines += ["", _totals(tally), ""]
        lines += _action_lines(tally)
    lines += ["", *_error_lines(groups, tally.status["failed"])]
    out.write("\n".join(lines) + "\n")
    return tally


def _n(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _totals(tally: Tally) -> str:
    parts = [f"total {_n(tally.total)}"]
    for status in ("succeeded", "skipped", "failed"):
        parts.append(f"{status} {_n(tally.status[status])}")
    return "  ".join(parts)


def _rank(action: str) -> tuple[int, str]:
    return (ORDER.index(action), "") if action in ORDER else (ORDER.index("skipped"), action)


def _action_lines(tally: Tally) -> list[str]:
    if not tally.actions:
        return ["(no items)"]
    width = max(len(kind) for kind in tally.actions)
    lines = []
    for kind in sorted(tally.actions):
        actions = tally.actions[kind]
        cells = [f"{action} {_n(actions[action])}" for action in sorted(actions, key=_rank)]
        lines.append(f"{kind.ljust(width)}  " + "  ".join(cells))
    return lines


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    """The run's own figures: only what the summary holds (older summaries hold less)."""
    lines = []
    messages = summary.get("messages")
    if isinstance(messages, list) and messages:
        lines.append("status   " + ", ".join(str(m) for m in messages))
    run = [
        f"{name} {summary[key]}"
        for name, key in (("run", "run_id"), ("started", "started_at"), ("exit", "exit_code"))
        if summary.get(key) is not None
    ]
    elapsed = summary.get("elapsed_s")
    if isinstance(elapsed, int | float):
        run.append(f"elapsed {elapsed:.1f} s")
    rate = summary.get("items_per_s")
    if isinstance(rate, int | float):
        run.append(f"{rate} items/s")
    if run:
        lines.append("run      " + "  ".join(run))
    figures = [
        f"{name} {_n(summary[key])}"
        for name, key in (("requests", "requests"), ("retries", "retries"), ("429s", "throttled"))
        if key in summary
    ]
    pauses = summary.get("pauses")
    if isinstance(pauses, dict) and pauses.get("count"):
        figures.append(f"pauses {_n(pauses['count'])} ({pauses.get('total_s', 0)} s)")
    latency = summary.get("latency_ms")
    if isinstance(latency, dict) and any(latency.get(k) is not None for k in ("p50", "p95")):
        shown = " / ".join(_ms(latency.get(k)) for k in ("p50", "p95", "p99"))
        figures.append(f"latency p50/p95/p99 {shown} ms")
    if figures:
        lines.append("target   " + "  ".join(figures))
    return lines


def _ms(value: object) -> str:
    return "-" if value is None else str(value)


def _error_lines(groups: list[ErrorGroup], failed: int) -> list[str]:
    if not groups:
        return ["no failures"]
    plural = "s" if len(groups) != 1 else ""
    lines = [f"failures  {_n(failed)} in {len(groups)} group{plural} (by type and message)"]
    width = max(len(_n(group.count)) for group in groups)
    for group in groups:
        cause = _one_line(f"{group.type}: {group.message}")
        lines.append(f"  {_n(group.count).rjust(width)}  {cause}")
        for example in group.examples:
            lines.append(" " * (width + 4) + _example(example))
        more = group.count - len(group.examples)
        if more > 0:
            lines.append(" " * (width + 4) + f"... {_n(more)} more")
    return lines


def _example(example: dict[str, Any]) -> str:
    """``source:line  key  message``, the message without the source:line it may repeat."""
    source, line = example.get("source"), example.get("line")
    where = f"{source}:{line}" if line else str(source)
    message = _one_line(str(example.get("message") or ""))
    prefix = f"{where}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    key = example.get("key")
    return "  ".join(part for part in (where, _one_line(str(key)) if key else "", message) if part)


def _one_line(text: str) -> str:
    """A server's multi-line answer kept to one line, and to a length a terminal shows."""
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"
