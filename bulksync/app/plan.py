"""`--dry-run`: what a run would do, read from the inputs and the state, sending nothing, and
what it would cost in requests and time (also the first line of every run)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulksync.app._request_plan import RequestPlan, RequestTally, estimate
from bulksync.app.config import Config
from bulksync.app.prune import doomed_items, max_delete_limit, scope_size
from bulksync.app.registry import target_spec
from bulksync.engine._identities import IdentityIndex
from bulksync.engine._resume import PREFETCH, prefetching
from bulksync.spi._connector import Connector
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Record
from bulksync.spi._spec import CREDENTIAL_ENV, CredentialKind
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
    requests: int | None = None  # what its creates, updates and deletes cost (None: unknown)

    def add(self, action: str, example: str) -> None:
        self.counts[action] += 1
        shown = self.examples.setdefault(action, [])
        if len(shown) < EXAMPLES:
            shown.append(example)


# Records planned between two steps of :func:`plan_steps`: a run's event loop waits no longer
# than this many (a few milliseconds) for a Ctrl-C to be seen.
STEP = 500


def make_plan(
    inputs: Sequence[tuple[Kind, Iterable[Record | BadRecord]]],
    judge: Judge,
    *,
    prune: bool = False,
    connector: Connector | None = None,
    max_delete: str = "5%",
    tally: RequestTally | None = None,
) -> list[KindPlan]:
    """Classify every input item as the engine would: create, update, skip or invalid (a bad
    line, or a duplicate of an earlier line's item on the target). ``tally`` is told every
    item that would cost requests."""
    steps = plan_steps(
        inputs, judge, prune=prune, connector=connector, max_delete=max_delete, tally=tally
    )
    while True:
        try:
            next(steps)
        except StopIteration as done:
            plans: list[KindPlan] = done.value
            return plans


def plan_steps(
    inputs: Sequence[tuple[Kind, Iterable[Record | BadRecord]]],
    judge: Judge,
    *,
    prune: bool = False,
    connector: Connector | None = None,
    max_delete: str = "5%",
    tally: RequestTally | None = None,
) -> Generator[None, None, list[KindPlan]]:
    """:func:`make_plan` in steps of :data:`STEP` records (a run plans between them, on its
    event loop); returns the plans."""
    plans = []
    identities = IdentityIndex()
    try:
        state = judge.state
        for kind, records in inputs:
            if state is not None and not judge.full and kind not in judge.empty_kinds:
                records = prefetching(state, kind, records, PREFETCH)  # as the engine asks
            plan = KindPlan(kind)
            plans.append(plan)
            for n, record in enumerate(records, 1):
                _plan_one(plan, record, judge, identities, connector, tally)
                if n % STEP == 0:
                    yield
    finally:
        identities.close()
    if prune and judge.state is not None:
        doomed = []
        for plan in plans:
            for removal in doomed_items(plan.kind, judge.state, judge.remote):
                plan.add("delete", f"{removal.key} ({removal.origin.path})")
                doomed.append(removal)
        refusals = _prune_refusals(plans, judge, max_delete) if plans else []
        if plans:
            plans[-1].notes.extend(refusals)
        if tally is not None and not refusals:  # a refused prune deletes nothing
            for removal in doomed:
                tally.add("delete", removal, removal.remote_id)
    if tally is not None:
        costs = tally.per_kind()
        for plan in plans:
            plan.requests = costs.get(plan.kind, 0)
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


def _plan_one(
    plan: KindPlan,
    record: Record | BadRecord,
    judge: Judge,
    identities: IdentityIndex,
    connector: Connector | None,
    tally: RequestTally | None,
) -> None:
    if isinstance(record, BadRecord):
        plan.add("invalid", f"{record.origin}: {record.reason}")
        return
    assert isinstance(record, AssetRecord | LinkRecord)
    refusal = None if connector is None else connector.refuse(record)
    if refusal is not None:
        plan.add("invalid", f"{record.origin}: {refusal}")
        return
    identity = record.key if connector is None else connector.identity(record)
    first = identities.claim(plan.kind, identity, record.origin.line)
    if first is not None:
        plan.add("invalid", f"{record.origin}: duplicate of line {first}")
        return
    verdict = judge.judge(record)
    plan.add(verdict.action, f"{record.key} ({record.origin})")
    if tally is not None and verdict.action != "skip":
        tally.add(verdict.action, record, verdict.remote_id)


def format_plan(plans: Sequence[KindPlan], requests: RequestPlan | None = None) -> str:
    lines = ["dry run: nothing was sent"]
    for plan in plans:
        counts = ", ".join(f"{n:,} {action}" for action, n in plan.counts.items())
        cost = "" if plan.requests is None else f" ({_requests(plan.requests)})"
        lines.append(f"{plan.kind}s: {counts}{cost}")
        for action, shown in plan.examples.items():
            for example in shown:
                lines.append(f"  {action:<7} {example}")
        lines.extend(f"  {note}" for note in plan.notes)
    if requests is not None:
        lines.extend(_request_lines(requests))
    return "\n".join(lines)


def _requests(n: int) -> str:
    return f"{n:,} request" if n == 1 else f"{n:,} requests"


def _count(n: int, what: str) -> str:
    """ "1 login", "2 logins", "1 listing page" (``what`` is the plural)."""
    return f"{n:,} {what[:-1] if n == 1 and what.endswith('s') else what}"


def _request_lines(requests: RequestPlan) -> list[str]:
    """The total and its time; what besides the items it counts; a cheaper setting."""
    lines = [f"total: {requests.describe()}"]
    fixed = ", ".join(_count(n, what) for what, n in requests.fixed.items() if n)
    if fixed:
        lines.append(f"  of which {fixed}; retries are not counted")
    for setting, total in requests.alternatives:
        lines.append(f"  with {setting}: {requests.describe(total, short=True)}")
    return lines


def plan_line(plans: Sequence[KindPlan], requests: RequestPlan | None) -> str:
    """The plan in one line, for the start of a run."""
    parts = []
    for plan in plans:
        counts = plan.counts
        shown = ", ".join(
            f"{counts[a]:,} {a}"
            for a in ("create", "update", "skip", "delete", "invalid")
            if counts[a]
        )
        parts.append(f"{plan.kind}s {shown or 'nothing'}")
    text = f"bulksync: plan: {'; '.join(parts)}"
    if requests is None:
        return text
    text += f"; {requests.describe()}"
    for setting, total in requests.alternatives[:1]:
        text += f"; with {setting}: {requests.describe(total, short=True)}"
    return text


def plan_json(plans: Sequence[KindPlan], requests: RequestPlan | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        p.kind: {"counts": p.counts, "examples": p.examples, "notes": p.notes} for p in plans
    }
    if requests is not None:
        out["requests"] = requests.as_json()
    return out


@dataclass(frozen=True, slots=True)
class PlanCosts:
    """What the request count of a plan needs from the job's configuration."""

    tally: RequestTally
    credentials: CredentialKind
    windows: tuple[tuple[int, float], ...]
    pace: float | None
    preflight: int

    def estimate(self, listing_pages: int = 0) -> RequestPlan:
        return estimate(
            self.tally,
            self.credentials,
            self.windows,
            self.pace,
            preflight=self.preflight,
            listing_pages=listing_pages,
        )


def plan_costs(config: Config, connector: Connector) -> PlanCosts | None:
    """The target's request model with the job's settings; None when the target states none."""
    spec = target_spec(config.target.kind)
    if spec.requests is None:
        return None
    model = spec.requests(config.settings(spec.name, spec.options))
    # The form of secrets the run would read (as wiring.read_credentials picks it), unread.
    target = config.target
    forms = [f for f in spec.credentials if all(getattr(target, k) for k in CREDENTIAL_ENV[f])]
    credentials = forms[0] if forms else spec.credentials[-1]
    rate = config.limits.rate
    windows = tuple(rate) if rate is not None else tuple(spec.rate_windows)
    preflight = 0 if connector.preflight_request() is None else 1
    return PlanCosts(RequestTally(model), credentials, windows, config.limits.pace, preflight)
