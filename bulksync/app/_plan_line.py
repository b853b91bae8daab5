"""A run's first line: its plan (items, requests, time), from a pass of its own over the
inputs, judged against the state (or the ``--full`` listing) as the engine will judge them.

The pass runs on the run's event loop in steps (bulksync.app.plan.plan_steps), so a Ctrl-C
is seen within a few milliseconds and ends it. The run's own pass says what the readers find
(an unknown field, a retry-failed line that moved): this one keeps quiet, or each warning
would be printed twice. It only ever informs: a bug in it is logged and the run goes on.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import redirect_stderr

import anyio
import anyio.lowlevel

from bulksync.app.config import Config
from bulksync.app.plan import KindPlan, plan_costs, plan_line, plan_steps
from bulksync.spi._connector import Connector
from bulksync.spi._errors import BulksyncError
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Record
from bulksync.store.verdict import Judge, Verdict

log = logging.getLogger("bulksync.plan")

Inputs = Sequence[tuple[Kind, Iterable[Record | BadRecord]]]


async def announce(
    config: Config,
    open_inputs: Callable[[], Inputs],
    judge: Judge,
    connector: Connector,
    *,
    prune: bool,
    max_delete: str,
    stop: anyio.Event,
    listing_pages: int = 0,
) -> str | None:
    """The plan line; None when the run was stopped first (or the plan failed)."""
    try:
        return await _announce(
            config, open_inputs, judge, connector, prune, max_delete, stop, listing_pages
        )
    except BulksyncError:
        raise  # an input the run cannot read either: the run's own error, said once
    except Exception:
        log.warning("the run's plan could not be made; the run goes on", exc_info=True)
        return None


async def _announce(
    config: Config,
    open_inputs: Callable[[], Inputs],
    judge: Judge,
    connector: Connector,
    prune: bool,
    max_delete: str,
    stop: anyio.Event,
    listing_pages: int,
) -> str | None:
    costs = plan_costs(config, connector)
    with redirect_stderr(_Discard()):
        inputs = open_inputs()
    judge = _FirstPass(judge.state, judge.remote, judge.lister, judge.full)
    state = judge.state
    if state is not None and not judge.full:
        judge.empty_kinds = {kind for kind, _ in inputs if state.count(kind) == 0}
    steps = plan_steps(
        inputs,
        judge,
        prune=prune,
        connector=connector,
        max_delete=max_delete,
        tally=None if costs is None else costs.tally,
    )
    try:
        while not stop.is_set():
            # Quiet only while this pass reads: between steps others may print.
            with redirect_stderr(_Discard()):
                try:
                    next(steps)
                except StopIteration as done:
                    plans: list[KindPlan] = done.value
                    requests = None if costs is None else costs.estimate(listing_pages)
                    return plan_line(plans, requests)
            await anyio.lowlevel.checkpoint()
        return None
    finally:
        steps.close()


class _FirstPass(Judge):
    """The engine's judge, without its work where the state holds nothing of a kind: every
    item is a create, so neither its hash nor its mark for prune (nothing to delete) is
    needed, and the engine's own pass does both."""

    __slots__ = ()

    def judge(self, record: AssetRecord | LinkRecord) -> Verdict:
        if not self.full and (self.state is None or record.kind in self.empty_kinds):
            return Verdict("create")
        return Judge.judge(self, record)


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)
