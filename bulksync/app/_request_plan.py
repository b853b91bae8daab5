"""The plan's request count: each planned item's cost, from the connector's request model,
with batched items grouped the way the engine groups them (bulksync.engine._stages)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulksync.app._budget_time import Window, budget_time, describe_time, quota
from bulksync.spi._records import AssetRecord, Kind, LinkRecord, Removal
from bulksync.spi._requests import ItemCost, PlannedAction, PlannedItem, RequestModel
from bulksync.spi._spec import CredentialKind

# The engine's grouping bounds (EngineOptions.max_open_groups, group_jobs' max_held_jobs): a
# group is sent before it is full when more are open or more jobs are held than this, and
# that is one request more. tests/test_plan_durations.py checks they stay the engine's.
MAX_OPEN_GROUPS = 1000
MAX_HELD_JOBS = 10_000


@dataclass(slots=True)
class _Open:
    count: int = 0
    per_batch: int = 0


@dataclass(slots=True)
class _Grouping:
    """One grouped stage's batches, simulated as :func:`group_jobs` makes them."""

    groups: dict[Hashable, _Open] = field(default_factory=dict)
    held: int = 0
    requests: int = 0

    def add(self, cost: ItemCost) -> None:
        group = self.groups.setdefault(cost.group, _Open())
        group.count += 1
        group.per_batch = max(group.per_batch, cost.per_batch)
        self.held += 1
        if group.count >= cost.batch:
            self._send(cost.group)
        elif len(self.groups) > MAX_OPEN_GROUPS or self.held > MAX_HELD_JOBS:
            self._send(next(iter(self.groups)))

    def _send(self, key: Hashable) -> None:
        group = self.groups.pop(key)
        self.held -= group.count
        self.requests += group.per_batch

    def close(self) -> int:
        while self.groups:
            self._send(next(iter(self.groups)))
        return self.requests


@dataclass(slots=True)
class _Tally:
    """The requests of one model, per kind."""

    model: RequestModel
    single: dict[Kind, int] = field(default_factory=dict)
    grouped: dict[tuple[Kind, bool], _Grouping] = field(default_factory=dict)

    def add(self, item: PlannedItem) -> None:
        kind = item.record.kind
        cost = self.model.cost(item)
        self.single[kind] = self.single.get(kind, 0) + cost.requests
        if cost.group is not None:
            # Pushes and deletes go through different stages, each grouping its own.
            stage = (kind, item.action == "delete")
            self.grouped.setdefault(stage, _Grouping()).add(cost)

    def per_kind(self) -> dict[Kind, int]:
        totals = dict(self.single)
        for (kind, _), grouping in self.grouped.items():
            totals[kind] = totals.get(kind, 0) + grouping.close()
        return totals


class RequestTally:
    """Fed every item the plan would push or delete; tells the requests per kind, for the
    configured model and for each alternative it names."""

    def __init__(self, model: RequestModel) -> None:
        self.model = model
        self._tallies = [_Tally(model)] + [_Tally(alt) for _, alt in model.alternatives()]
        self.labels = [label for label, _ in model.alternatives()]

    def add(
        self,
        action: PlannedAction,
        record: AssetRecord | LinkRecord | Removal,
        remote_id: str | None = None,
    ) -> None:
        item = PlannedItem(action, record, remote_id)
        for tally in self._tallies:
            tally.add(item)

    def per_kind(self) -> dict[Kind, int]:
        return self._tallies[0].per_kind()

    def alternatives(self) -> Sequence[tuple[str, RequestModel, dict[Kind, int]]]:
        return [
            (label, tally.model, tally.per_kind())
            for label, tally in zip(self.labels, self._tallies[1:], strict=True)
        ]


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """The requests a job takes and how long at the configured windows."""

    per_kind: dict[Kind, int]
    fixed: dict[str, int]  # logins, the preflight, --full listing pages
    windows: tuple[Window, ...] = ()
    pace: float | None = None
    alternatives: tuple[tuple[str, int], ...] = ()  # (a setting, its total), fewer requests

    @property
    def total(self) -> int:
        return sum(self.per_kind.values()) + sum(self.fixed.values())

    def describe(self, requests: int | None = None, *, short: bool = False) -> str:
        """ "15,830 requests: 27 min at 6,000 per 10 min"."""
        count = self.total if requests is None else requests
        if count == 0:
            return "0 requests: nothing to send"
        what = f"{count:,} {'request' if count == 1 else 'requests'}"
        if short and budget_time(count, self.windows, self.pace).seconds is None:
            return what  # the main line said already that nothing limits the rate
        return f"{what}: {describe_time(count, self.windows, self.pace, short=short)}"

    def as_json(self) -> dict[str, Any]:
        timed = budget_time(self.total, self.windows, self.pace)
        return {
            "requests": self.total,
            "per_kind": self.per_kind,
            "fixed": self.fixed,
            "seconds": None if timed.seconds is None else round(timed.seconds, 1),
            "quota_bound": quota(timed.binding),
            "text": self.describe(),
            "alternatives": [{"setting": s, "requests": n} for s, n in self.alternatives],
        }


# An alternative is named when it would take at most this share of the requests.
WORTH_NAMING = 0.5


def estimate(
    tally: RequestTally,
    credentials: CredentialKind,
    windows: Sequence[Window],
    pace: float | None,
    *,
    preflight: int = 1,
    listing_pages: int = 0,
) -> RequestPlan:
    """The plan of ``tally``'s items, with the run's own requests: logins (renewed over a long
    run), the preflight and the ``--full`` listing."""

    def fixed(model: RequestModel, items: int) -> dict[str, int]:
        counts = {"logins": model.logins(credentials), "preflight": preflight}
        if listing_pages:
            counts["listing pages"] = listing_pages
        every = model.session_s
        if counts["logins"] and every:
            seconds = budget_time(items + sum(counts.values()), windows, pace).seconds or 0.0
            counts["logins"] += int(seconds // every)
        return counts

    per_kind = tally.per_kind()
    main = RequestPlan(per_kind, fixed(tally.model, sum(per_kind.values())), tuple(windows), pace)
    others = []
    for label, model, kinds in tally.alternatives():
        total = sum(kinds.values()) + sum(fixed(model, sum(kinds.values())).values())
        if total <= WORTH_NAMING * main.total:
            others.append((label, total))
    return RequestPlan(main.per_kind, main.fixed, main.windows, pace, tuple(others))
