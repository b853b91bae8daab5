"""`--dry-run`: what a run would do, read from the inputs and the state, sending nothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulksync.app.prune import doomed_items, max_delete_limit, scope_size
from bulksync.engine._identities import IdentityIndex
from bulksync.spi._connector import Connector
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Record
from bulksync.store.verdict import Judge

EXAMPLES = 3


@dataclass(slots=True)
class KindPlan:
    kind: Kind
    counts: dict[str, int] = field(
        default_factory=lambda: {"create": 0, "update": 0, "skip": 0, "invalid": 0, "delete": 0}
    )
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the run would refuse or stop at

    def add(self, action: str, example: str) -> None:
        self.counts[action] += 1
        shown = self.examples.setdefault(action, [])
        if len(shown) < EXAMPLES:
            shown.append(example)


def make_plan(
    inputs: Sequence[tuple[Kind, Iterable[Record | BadRecord]]],
    judge: Judge,
    *,
    prune: bool = False,
    connector: Connector | None = None,
    max_delete: str = "5%",
) -> list[KindPlan]:
    """Classify every input item as the engine would: create, update, skip or invalid (a bad
    line, or a duplicate of an earlier line's item on the target)."""
    plans = []
    identities = IdentityIndex()
    try:
        for kind, records in inputs:
            plans.append(_plan_kind(kind, records, judge, identities, connector))
    finally:
        identities.close()
    if prune and judge.state is not None:
        for plan in plans:
            for removal in doomed_items(plan.kind, judge.state, judge.remote):
                plan.add("delete", f"{removal.key} ({removal.origin.path})")
        if plans:
            plans[-1].notes.extend(_prune_refusals(plans, judge, max_delete))
    return plans


def _prune_refusals(plans: Sequence[KindPlan], judge: Judge, max_delete: str) -> list[str]:
    """Why the run would delete nothing after all: prune's own guards, applied as it does."""
    state = judge.state
    assert state is not None
    invalid = sum(p.counts["invalid"] for p in plans)
    if invalid:
        return [
            f"prune would be skipped: {invalid} input line(s) could not be read or were "
            "refused; nothing would be deleted"
        ]
    total = sum(p.counts["delete"] for p in plans)
    known = sum(scope_size(p.kind, state, judge.remote) for p in plans)
    limit = max_delete_limit(max_delete, known)
    if total > limit:
        return [
            f"prune would stop before deleting anything: {total} of {known} items, above "
            f"--max-delete {max_delete} ({limit})"
        ]
    return []


def _plan_kind(
    kind: Kind,
    records: Iterable[Record | BadRecord],
    judge: Judge,
    identities: IdentityIndex,
    connector: Connector | None,
) -> KindPlan:
    plan = KindPlan(kind)
    for record in records:
        if isinstance(record, BadRecord):
            plan.add("invalid", f"{record.origin}: {record.reason}")
            continue
        assert isinstance(record, AssetRecord | LinkRecord)
        refusal = None if connector is None else connector.refuse(record)
        if refusal is not None:
            plan.add("invalid", f"{record.origin}: {refusal}")
            continue
        identity = record.key if connector is None else connector.identity(record)
        first = identities.claim(kind, identity, record.origin.line)
        if first is not None:
            plan.add("invalid", f"{record.origin}: duplicate of line {first}")
            continue
        verdict = judge.judge(record)
        plan.add(verdict.action, f"{record.key} ({record.origin})")
    return plan


def format_plan(plans: Sequence[KindPlan]) -> str:
    lines = ["dry run: nothing was sent"]
    for plan in plans:
        counts = ", ".join(f"{n} {action}" for action, n in plan.counts.items())
        lines.append(f"{plan.kind}s: {counts}")
        for action, shown in plan.examples.items():
            for example in shown:
                lines.append(f"  {action:<7} {example}")
        lines.extend(f"  {note}" for note in plan.notes)
    return "\n".join(lines)


def plan_json(plans: Sequence[KindPlan]) -> dict[str, Any]:
    return {p.kind: {"counts": p.counts, "examples": p.examples, "notes": p.notes} for p in plans}
