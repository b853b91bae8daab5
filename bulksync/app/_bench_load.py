"""The load of one bench stage: workers sending through the run's own client, paced by a
budget at the stage's rate, and the ledger of the synthetic objects ``--writes`` created.

Every request goes through :class:`EngineClient` (counted, authenticated, paced by the
target's budget, refreshed once on 401, never retried); the bench only swaps the target's
budget for each stage's. A stage closes for new requests at its end: a worker waiting for the
budget then gives up before anything is sent (:class:`StageOver`), while the delete of a
create that went out is always sent, late or not.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import anyio

from bulksync.app._bench_ramp import StageTally
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient
from bulksync.spi._bench import BenchRead, BenchWrite
from bulksync.spi._connector import RequestFailed
from bulksync.spi._errors import AuthError, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse

# Workers per stage: enough to keep the rate offered through answers this slow (seconds) ...
WORKER_SECONDS = 1.0
MAX_WORKERS = 256  # ... within what one process should hold open against anyone's API
MIN_WORKERS = 2
# A stage's requests still unanswered this long after its end are cancelled (their writes'
# objects stay in the ledger, for the cleanup).
DRAIN_S = 30.0


class StageOver(Exception):
    """The stage closed while a worker waited for the budget: nothing was sent."""


@dataclass(slots=True)
class _Unit:
    """One worker's request in progress: whether it may still be turned away, and when the
    budget let it go (its latency excludes the pacing wait)."""

    opening: bool = True
    granted_at: float = 0.0


_UNIT: ContextVar[_Unit | None] = ContextVar("bulksync_bench_unit", default=None)


class StageBudget(RateBudget):
    """The stage's pace, and its end: a unit's first request not granted by ``closes_at``
    (monotonic) is turned away unsent. 429s slow it and Retry-After pauses it, as in a sync."""

    def __init__(self, rate: float, closes_at: float | None, max_pause_s: float) -> None:
        super().__init__(pace=rate, max_pause_s=max_pause_s)
        self._closes_at = closes_at
        self.in_window = 0  # grants before the stage closed: the rate really offered

    async def acquire(self) -> None:
        unit = _UNIT.get()
        if unit is None or not unit.opening or self._closes_at is None:
            await super().acquire()
        else:
            with anyio.move_on_after(max(0.0, self._closes_at - time.monotonic())) as scope:
                await super().acquire()
            if scope.cancelled_caught:  # not granted: _grant is never reached once cancelled
                raise StageOver
        now = time.monotonic()
        if self._closes_at is None or now <= self._closes_at:
            self.in_window += 1
        if unit is not None:
            unit.opening = False  # granted: the rest of the unit (a 401 resend) goes
            unit.granted_at = now


@dataclass(slots=True)
class Ledger:
    """The synthetic objects whose create may have happened and whose delete is not known to
    be done; ids are the prefix, a tag of this run and a counter, so no run touches another's.

    ``created`` counts the objects known to exist (a 2xx create, or a 2xx delete of one whose
    create's fate was unknown), ``deleted`` only those of them known gone: never more than
    created. A delete answered 404 for an object never known to exist is ``never_created``."""

    prefix: str
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    pending: set[str] = field(default_factory=set)
    made: set[str] = field(default_factory=set)  # known created, not yet known deleted
    created: int = 0
    deleted: int = 0
    never_created: int = 0
    _next: int = 0

    def new_id(self) -> str:
        self._next += 1
        return f"{self.prefix}{self.tag}-{self._next:06d}"

    def was_created(self, ident: str) -> None:
        if ident not in self.made:
            self.made.add(ident)
            self.created += 1

    def refused(self, ident: str) -> None:
        """Its create was turned away or refused: nothing to delete."""
        self.pending.discard(ident)

    def gone(self, ident: str, status: int) -> None:
        """A delete of ``ident`` answered 2xx or 404: it is not there any more."""
        self.pending.discard(ident)
        if _is_2xx(status):
            self.was_created(ident)  # a 2xx delete: it did exist
        if ident in self.made:
            # A 404 after a known create: an earlier delete whose answer was lost did it.
            self.made.discard(ident)
            self.deleted += 1
        else:
            self.never_created += 1


Send = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def _timed(
    client: EngineClient,
    request: HttpRequest,
    tally: StageTally,
    ok: Callable[[int], bool],
    opening: bool = True,
    unit: _Unit | None = None,
) -> HttpResponse | None:
    """Send one request; count its answer (or its failure) in ``tally``. Only an ``opening``
    request (a read, a create) may be turned away by the stage's end."""
    unit = unit or _Unit(opening)
    token = _UNIT.set(unit)
    try:
        response = await client.send(request)
    except TransportError as exc:
        tally.failed("timeout" if exc.timeout else "transport")
        return None
    except RequestFailed:
        tally.failed("redirect")
        return None
    finally:
        _UNIT.reset(token)
    tally.answered(response.status, ok(response.status), time.monotonic() - unit.granted_at)
    return response


async def _read_once(client: EngineClient, read: BenchRead, tally: StageTally) -> None:
    await _timed(client, read.request, tally, read.served.__contains__)


async def _cycle_once(
    client: EngineClient, write: BenchWrite, tally: StageTally, ledger: Ledger
) -> None:
    """Create then delete one object. It is in the ledger from before its create goes out
    until its delete is known done: an interrupted cycle leaves it there for the cleanup."""
    ident = ledger.new_id()
    ledger.pending.add(ident)
    unit = _Unit()
    try:
        created = await _timed(client, write.create(ident), tally, _is_2xx, unit=unit)
    except (StageOver, AuthError):
        ledger.refused(ident)  # turned away before anything was sent, or refused with 401
        raise
    except BaseException:  # cancelled (Ctrl-C, another worker's stop) or a crash
        if not unit.granted_at:
            ledger.refused(ident)  # still waiting for the budget: nothing went out
        raise
    if created is not None and is_refusal(created.status):
        ledger.refused(ident)
        return
    if created is None or not _is_2xx(created.status):
        return  # its fate is unknown: the cleanup deletes it to be sure
    ledger.was_created(ident)
    deleted = await _timed(client, write.delete(ident), tally, _is_gone, opening=False)
    if deleted is not None and _is_gone(deleted.status):
        ledger.gone(ident, deleted.status)


def workers_for(rate: float) -> int:
    return max(MIN_WORKERS, min(MAX_WORKERS, math.ceil(rate * WORKER_SECONDS)))


async def run_stage(
    client: EngineClient,
    tally: StageTally,
    read: BenchRead | None,
    write: BenchWrite | None,
    ledger: Ledger,
) -> None:
    """Offer ``tally.offered`` req/s for ``tally.seconds``, then wait for the answers."""
    started = time.monotonic()
    closes_at = started + tally.seconds
    budget = StageBudget(tally.offered, closes_at, max_pause_s=tally.seconds)
    client.target.budget = budget

    async def worker() -> None:
        while time.monotonic() < closes_at:
            try:
                if write is not None:
                    await _cycle_once(client, write, tally, ledger)
                else:
                    assert read is not None
                    await _read_once(client, read, tally)
            except StageOver:
                return

    try:
        with anyio.move_on_after(tally.seconds + DRAIN_S):
            async with anyio.create_task_group() as group:
                for _ in range(workers_for(tally.offered)):
                    group.start_soon(worker)
    finally:  # an interrupted stage too: its rates are over the time it really ran
        tally.elapsed_s = time.monotonic() - started
        tally.seconds = min(tally.seconds, tally.elapsed_s)
        tally.granted = budget.in_window
        tally.paused_s = budget.paused_total_s


# The cleanup: each leftover object is deleted, or looked up, this many times at most ...
CLEANUP_TRIES = 5
CLEANUP_WORKERS = 4
CLEANUP_PAUSE_S = 1.0  # ... with this pause between tries of one object
# A delete answered 429 was refused, not tried: it is sent again once the target's
# Retry-After has passed (the budget pauses for it, up to this), this many times at most.
# The whole cleanup is bounded in time by its caller.
CLEANUP_MAX_PAUSE_S = 60.0
CLEANUP_THROTTLED = 20


async def clean_up(client: EngineClient, write: BenchWrite, ledger: Ledger, rate: float) -> None:
    """Delete every object left in the ledger; a delete whose fate is unknown is looked up
    (or, with no lookup, sent again: deletes are idempotent). Paced at ``rate``, never cut by
    a stage's end; what stays in ``ledger.pending`` could not be confirmed gone."""
    client.target.budget = StageBudget(rate, None, max_pause_s=CLEANUP_MAX_PAUSE_S)
    queue = sorted(ledger.pending)
    scratch = StageTally(rate, 1.0)  # the cleanup's answers, kept out of every stage's

    async def one(ident: str) -> None:
        tries = throttled = 0
        while tries < CLEANUP_TRIES and throttled <= CLEANUP_THROTTLED:
            deleted = await _timed(client, write.delete(ident), scratch, _is_gone)
            if deleted is not None and _is_gone(deleted.status):
                ledger.gone(ident, deleted.status)
                return
            if deleted is not None and deleted.status == 429:
                throttled += 1  # the budget waits out its Retry-After before the next send
                continue
            tries += 1
            if write.lookup is not None:
                found = await _timed(client, write.lookup(ident), scratch, _is_2xx)
                if found is not None and found.status == 404:
                    ledger.gone(ident, 404)
                    return
            await anyio.sleep(CLEANUP_PAUSE_S)

    async def worker() -> None:
        while queue:
            await one(queue.pop())

    async with anyio.create_task_group() as group:
        for _ in range(min(CLEANUP_WORKERS, len(queue))):
            group.start_soon(worker)


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300


def is_refusal(status: int) -> bool:
    """A create answered this was refused before any work (429, 400, 403, 422 ...): it left
    nothing to delete. 408 (the server gave up waiting, fate unknown) and 409 (something
    with that id exists) are not refusals of that kind."""
    return 400 <= status < 500 and status not in (408, 409)


def _is_gone(status: int) -> bool:
    return _is_2xx(status) or status == 404
