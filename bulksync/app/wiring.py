"""Build a runnable target (connector, transport, budget, auth) from the configuration.

The one place where a target's spec meets the engine: secrets are read here, the login is
wrapped in the engine's session, the pool is sized from the engine's own worker counts and the
budget from the documented windows. A connector package supplies only the spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, create_model

from bulksync.app import registry
from bulksync.app._shared_budget import redis_budget
from bulksync.app.config import (
    BudgetConfig,
    Config,
    InputsConfig,
    LimitsConfig,
    OutputConfig,
    StateConfig,
    TargetConfig,
)
from bulksync.engine._http11_transport import Http11Transport
from bulksync.engine.auth import Authenticator, NoAuth, SessionAuth, StaticTokenAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.engine.retry import RetryPolicy
from bulksync.engine.transport import AiohttpTransport, Transport
from bulksync.spi._connector import Connector
from bulksync.spi._errors import ConfigError
from bulksync.spi._spec import CREDENTIAL_ENV, Credentials, Site, TargetSpec

# Connections beyond the stage workers' own: a login, a listing page or the preflight may be
# in flight while every worker waits on its answer.
SPARE_CONNECTIONS = 4
TRANSPORT_ENV = "BULKSYNC_TRANSPORT"


@dataclass(slots=True)
class BuiltTarget:
    connector: Connector
    target: Target


def budget_for(config: Config, documented: list[tuple[int, float]] | None = None) -> RateBudget:
    """The configured windows, or the target's documented ones when none are configured."""
    windows = config.limits.rate if config.limits.rate is not None else documented or []
    # No Retry-After pauses everyone for longer than an item may spend retrying.
    limits = config.limits
    if config.budget.backend == "redis":
        return redis_budget(config, windows)
    return RateBudget(
        windows,
        pace=limits.pace,
        max_pause_s=limits.max_elapsed_s,
        max_quota_wait_s=limits.max_quota_wait_s,
        wait_for_quota=limits.wait_for_quota,
    )


def settings_model(kind: str) -> type[BaseModel]:
    """The model of the [kind] table."""
    return registry.target_spec(kind).options


def _options(config: Config, spec: TargetSpec) -> Any:
    return config.settings(spec.name, spec.options)


def _site(config: Config) -> Site:
    return Site(config.target.base_url, config.target.allow_http)


def read_credentials(config: Config, spec: TargetSpec) -> Credentials:
    """The first accepted form whose [target] keys are all set, its secrets read (and so
    registered for redaction); the spec's message, or the missing key's, when none is."""
    target = config.target
    for kind in spec.credentials:
        keys = CREDENTIAL_ENV[kind]
        if all(getattr(target, key) for key in keys):
            break
    else:
        if spec.missing_credentials is not None:
            raise ConfigError(spec.missing_credentials)
        kind = spec.credentials[-1]  # reading it names the key that is not configured
        keys = CREDENTIAL_ENV[kind]
    values = [config.secret(getattr(target, key), spec.label(key)) for key in keys]
    if kind == "token":
        return Credentials(kind, token=values[0])
    if kind == "login":
        return Credentials(kind, user=values[0], password=values[1])
    if kind == "client_credentials":
        return Credentials(kind, client_id=values[0], client_secret=values[1])
    return Credentials(kind)


def authenticator(config: Config, spec: TargetSpec, options: Any) -> Authenticator:
    credentials = read_credentials(config, spec)
    if credentials.kind == "token":
        assert credentials.token is not None
        return StaticTokenAuth(credentials.token)
    source = None if spec.login is None else spec.login(credentials, options, _site(config))
    if source is None:
        return NoAuth()
    if spec.session_margin_s is None:
        return SessionAuth(source)
    return SessionAuth(source, margin_s=spec.session_margin_s)


def pool_size(config: Config, connector: Connector) -> int:
    """One connection per stage worker the engine may run at once, plus spares: each stage of
    each kind the target takes has its own pool (``[limits] stage_concurrency`` or
    ``concurrency`` workers)."""
    limits = config.limits
    workers = 0
    for kind in sorted(connector.capabilities.kinds):
        try:
            stages = connector.stages(kind)
        except ConfigError:
            continue
        workers += sum(limits.stage_concurrency.get(s.name, limits.concurrency) for s in stages)
    return max(workers, limits.concurrency) + SPARE_CONNECTIONS


def default_transport(max_connections: int, timeout_s: float) -> Transport:
    """bulksync's own HTTP/1.1 client (uploads through aiohttp), or aiohttp for everything
    with ``BULKSYNC_TRANSPORT=aiohttp``: a way back should a server need what only it does."""
    choice = os.environ.get(TRANSPORT_ENV, "").strip().lower() or "http11"
    if choice == "aiohttp":
        return AiohttpTransport(max_connections=max_connections, timeout_s=timeout_s)
    if choice != "http11":
        raise ConfigError(f"{TRANSPORT_ENV} must be http11 or aiohttp, got '{choice}'")
    return Http11Transport(max_connections=max_connections, timeout_s=timeout_s)


def build_target(config: Config, min_connections: int = 0) -> BuiltTarget:
    """The target of ``config``; ``min_connections`` widens the pool (the bench's workers)."""
    spec = registry.target_spec(config.target.kind)
    options = _options(config, spec)
    if spec.check is not None:
        spec.check(options, _site(config))  # before any secret is read
    auth = authenticator(config, spec, options)
    connector = _connector(spec, options)
    transport: Transport
    if spec.transport is not None:
        transport = spec.transport(options)
    else:
        size = max(pool_size(config, connector), min_connections)
        transport = default_transport(size, config.target.timeout_s)
    budget = budget_for(config, list(spec.rate_windows))
    return BuiltTarget(connector, Target(config.target.base_url, transport, budget, auth))


def build_connector(config: Config) -> Connector:
    """The target's connector alone: its options, no secrets, no transport. What the job
    check and a dry run need (a plan is made without credentials)."""
    spec = registry.target_spec(config.target.kind)
    return _connector(spec, _options(config, spec))


def _connector(spec: TargetSpec, options: Any) -> Connector:
    """The spec's connector; a plug-in whose factory fails, or whose connector claims other
    kinds, prunes or listings than its spec declares, is named in one line (not taken for a
    bug of bulksync's, and not checked against the wrong capabilities)."""
    try:
        connector = spec.connector(options)
    except ConfigError:
        raise
    except Exception as exc:  # the plug-in's own failure, whatever it is
        detail = " ".join(str(exc).split()) or type(exc).__name__
        message = f"target kind '{spec.name}': its connector failed to build: {detail}"
        raise ConfigError(message) from None
    declared, claimed = spec.capabilities, connector.capabilities
    if (declared.kinds, declared.prune, declared.listing) != (
        claimed.kinds,
        claimed.prune,
        claimed.listing,
    ):
        raise ConfigError(
            f"target kind '{spec.name}': its connector's capabilities differ from its spec's "
            "(kinds, prune and listing must be the same)"
        )
    return connector


def config_schema(broken: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema of a job file, every table included, for editors' completion. A kind
    whose plug-in does not load is left out, its one-line error appended to ``broken``: it
    fails the jobs that use it, not the schema of all the others."""
    fields: dict[str, Any] = {
        "target": (TargetConfig, None),
        "inputs": (InputsConfig, None),
        "limits": (LimitsConfig, None),
        "output": (OutputConfig, None),
        "state": (StateConfig, None),
        "budget": (BudgetConfig, None),
    }
    kinds = []
    for kind in registry.kinds():
        try:
            fields[kind] = (settings_model(kind) | None, None)
        except ConfigError as exc:
            (broken if broken is not None else []).append(str(exc))
            continue
        kinds.append(kind)
    model = create_model("BulksyncJob", __config__=None, **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema["additionalProperties"] = False
    tables = ", ".join(f"[{kind}]" for kind in kinds)
    schema["description"] = (
        "A bulksync job file (TOML). [target] kind is required; only the table of that kind "
        f"({tables}) may be present."
    )
    schema["required"] = ["target"]
    # Code may build a TargetConfig without a kind (the fake); a job file must name it.
    target = schema["$defs"]["TargetConfig"]
    target["required"] = ["kind"]
    target["properties"]["kind"].pop("default", None)
    target["properties"]["kind"]["enum"] = kinds
    return schema


def retry_policy(config: Config) -> RetryPolicy:
    limits = config.limits
    return RetryPolicy(max_attempts=limits.max_attempts, max_elapsed_s=limits.max_elapsed_s)
