"""`bulksync run --dry-run`: the plan, from the inputs, the state and (with --full) the
target's listing, with nothing sent but the listing's GETs."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from bulksync.app._remote_listing import list_target, lister_of, remote_index
from bulksync.app.config import Config
from bulksync.app.plan import format_plan, make_plan, plan_costs, plan_json
from bulksync.app.wiring import build_target, retry_policy
from bulksync.engine._breaker import CircuitBreaker, no_route_of
from bulksync.engine._engine import Input
from bulksync.engine._preflight import preflight
from bulksync.engine.client import EngineClient
from bulksync.spi._connector import Connector, RemoteLister
from bulksync.store._backend import StateBackend
from bulksync.store.remote import RemoteIndex
from bulksync.store.results import RunStats
from bulksync.store.verdict import Judge

__all__ = ["dry_run"]


async def dry_run(
    config: Config,
    stack: ExitStack,
    inputs: list[Input],
    state: StateBackend | None,
    full: bool,
    prune: bool,
    max_delete: str,
    quiet: bool,
    connector: Connector,
) -> dict[str, Any]:
    """The plan, from the inputs, the state and (with --full) the target's listing; the
    connector (built without secrets) applies its own read-time checks and identities."""
    remote: RemoteIndex | None = None
    lister: RemoteLister | None = None
    pages = 0
    if full:
        built = build_target(config)
        connector = built.connector
        try:
            remote = remote_index(config, built, full, stack)
            lister = lister_of(built)
            if remote is not None:
                # The run's fail-fast rules for the listing's GETs too: a dead target is exit 4
                # with its cause, not a failed listing (exit 2).
                stats = RunStats()
                await preflight(built.connector, built.target, stats, config.target.timeout_s)
                breaker = CircuitBreaker(
                    config.limits.unreachable_after, no_route_of(built.connector)
                )
                client = EngineClient(built.target, stats, retry_policy(config), breaker)
                pages = await list_target(config, built, client, remote, quiet)
        finally:
            await built.target.transport.aclose()
            await built.target.budget.aclose()
    judge = Judge(state, remote, lister, full)
    costs = plan_costs(config, connector)
    tally = None if costs is None else costs.tally
    plans = make_plan(
        inputs,
        judge,
        prune=prune,
        connector=connector,
        max_delete=max_delete,
        tally=tally,
    )
    requests = None if costs is None else costs.estimate(pages)
    if not quiet:
        print(format_plan(plans, requests))
    return {"plan": plan_json(plans, requests)}
