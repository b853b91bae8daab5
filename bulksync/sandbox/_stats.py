"""Counters behind ``GET /_sandbox/stats``: what the client under test actually did.

Duplicate create attempts are counted by kind: ``asset`` and ``document`` (POST of an existing
id), ``link`` (a second identical v5 link), ``v4_link`` (re-adding in mode update, a no-op),
``propeller_link`` (a bulk link that already existed and was updated) and ``category_link``
(an OCAPI PUT that found the link already there).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # route ("POST /api/links") -> outcome ("201", "dropped:201", "disconnect") -> count
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.rate_limited: defaultdict[str, int] = defaultdict(int)
        self.writes: defaultdict[str, int] = defaultdict(int)
        self.duplicates: defaultdict[str, int] = defaultdict(int)
        self.faults: defaultdict[str, int] = defaultdict(int)
        self.auth_failures: defaultdict[str, int] = defaultdict(int)
        # (request number, route, fault, status) of injected faults, to check determinism;
        # bounded so that a long faulty run cannot grow it without end.
        self.fault_log: deque[tuple[int, str, str, int | None]] = deque(maxlen=100_000)

    def request(self, route: str, outcome: str) -> None:
        self.requests[route][outcome] += 1

    def write(self, api: str, count: int = 1) -> None:
        self.writes[api] += count

    def duplicate(self, kind: str) -> None:
        self.duplicates[kind] += 1

    def fault(self, number: int, route: str, kind: str, status: int | None) -> None:
        self.faults[kind] += 1
        self.fault_log.append((number, route, kind, status))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {route: dict(outcomes) for route, outcomes in self.requests.items()},
            "requests_total": sum(sum(o.values()) for o in self.requests.values()),
            "rate_limited": {"total": sum(self.rate_limited.values()), **self.rate_limited},
            "writes_applied": {"total": sum(self.writes.values()), **self.writes},
            "duplicate_create_attempts": {
                "total": sum(self.duplicates.values()),
                **self.duplicates,
            },
            "faults_injected": {"total": sum(self.faults.values()), **self.faults},
            "auth_failures": {"total": sum(self.auth_failures.values()), **self.auth_failures},
            "fault_log": [
                {"request": n, "route": r, "fault": k, "status": s} for n, r, k, s in self.fault_log
            ],
        }
