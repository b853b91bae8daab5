"""The run's side of the quota ledger: the budget starts from what earlier runs sent to the same
instance, and what this run sends is written back every second and at the end (a crash too,
as far as the process lives to run its exit handlers)."""

from __future__ import annotations

import logging
import math
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import anyio

from bulksync.app.config import Config, normalize_base_url
from bulksync.app.progress import note
from bulksync.engine.budget import RateBudget
from bulksync.spi._errors import ConfigError, QuotaExhausted, window_span
from bulksync.store._quota_ledger import QuotaLedger, default_ledger_path

log = logging.getLogger("bulksync.quota")

FLUSH_INTERVAL_S = 1.0


def instance_of(config: Config) -> str:
    """What the quota belongs to: the target kind and its normalised base URL. Never a token:
    two jobs with different credentials to one instance share its quota all the same."""
    return f"{config.target.kind} {normalize_base_url(config.target.base_url)}"


class QuotaBook:
    """Writes the budget's grants to the ledger: the count since the last write, stamped now
    (later than any of them went, so they are remembered longer, never shorter)."""

    def __init__(self, ledger: QuotaLedger, budget: RateBudget) -> None:
        self.ledger = ledger
        self._budget = budget
        self._written = budget.granted
        self._warned = False
        self.earlier: str | None = None  # earlier runs' use of the quota, as the run starts

    def flush(self) -> None:
        granted = self._budget.granted
        self.ledger.add(granted - self._written)
        self._written = granted
        try:
            self.ledger.flush()
        except ConfigError as exc:
            # The counts stay buffered for the next try; the run goes on.
            if not self._warned:
                note(f"bulksync: warning: {exc}")
                self._warned = True

    def remembered(self, quota: QuotaExhausted) -> QuotaExhausted:
        """The stop as the next run will see it: its budget starts from the ledger, whose
        buckets end up to a bucket and a flush later than the requests they count, so the
        window frees up that much later than this run's own budget says."""
        return quota.later(self.ledger.width + FLUSH_INTERVAL_S)

    async def watch(self) -> None:
        while True:
            await anyio.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.ledger.close()


def open_quota_book(config: Config, budget: RateBudget, stack: ExitStack) -> QuotaBook | None:
    """Seed ``budget`` from the ledger and keep it written; None when the budget has no window
    (nothing to remember), the budget is shared (its windows in Redis are the ledger) or the
    default ledger cannot be opened (said in one line)."""
    if not budget.windows or budget.shared:
        return None
    configured = config.limits.quota_ledger
    path = configured or default_ledger_path()
    longest = max(window.period for window in budget.windows)
    try:
        ledger = QuotaLedger(path, instance_of(config), longest)
        history = ledger.history()
    except ConfigError as exc:
        if configured is not None:
            raise
        note(f"bulksync: warning: {exc}; this run's requests are not remembered for the quota")
        return None
    seeded = budget.seed(history, ledger.width)
    if seeded:
        log.info(
            "quota ledger: %d request(s) sent to this target in the last %g s counted",
            seeded,
            longest,
            extra={"event": "quota_seeded", "requests": seeded, "ledger": str(path)},
        )
    book = QuotaBook(ledger, budget)
    book.earlier = _earlier_use(budget) if seeded else None
    stack.callback(book.close)
    return book


def _earlier_use(budget: RateBudget) -> str | None:
    """What earlier runs left of the fullest window, in one line: the plan counts this run's
    requests, and this says how many of them fit before the quota stops or pauses it."""
    now = time.monotonic()  # the budget's clock, which its seeded windows are stamped with
    used = [(w.used(now) / w.limit, w) for w in budget.windows if w.used(now)]
    if not used:
        return None
    _, window = max(used, key=lambda pair: pair[0])
    count = window.used(now)
    left = max(0, window.limit - count)
    return (
        f"bulksync: quota: {count:,} of {window.limit:,} per {window_span(window.period)} "
        f"already sent to this target by earlier runs; {left:,} left in that window"
    )


def quota_summary(quota: QuotaExhausted) -> dict[str, Any]:
    """The summary's record of a quota stop: which window, and when the run can resume."""
    # Rounded up to the second, as the message is: a script sleeping until it never wakes early.
    resume = datetime.fromtimestamp(math.ceil(quota.resume_at), UTC)
    return {
        "limit": quota.limit,
        "period_s": quota.period_s,
        "used": quota.used,
        "resume_at": resume.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
