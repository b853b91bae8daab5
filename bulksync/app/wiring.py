"""Build a runnable target (connector, transport, budget, auth) from the configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, create_model

from bulksync.app.config import (
    Config,
    InputsConfig,
    LimitsConfig,
    OutputConfig,
    StateConfig,
    TargetConfig,
)
from bulksync.connectors.fake._fake import FakeConnector, FakeServer, FakeSettings, FakeTokenSource
from bulksync.engine.auth import Authenticator, NoAuth, SessionAuth, StaticTokenAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.spi._connector import Connector
from bulksync.spi._errors import ConfigError


@dataclass(slots=True)
class BuiltTarget:
    connector: Connector
    target: Target


def budget_for(config: Config, documented: list[tuple[int, float]] | None = None) -> RateBudget:
    """The configured windows, or the target's documented ones when none are configured."""
    windows = config.limits.rate if config.limits.rate is not None else documented or []
    # No Retry-After pauses everyone for longer than an item may spend retrying.
    return RateBudget(windows, pace=config.limits.pace, max_pause_s=config.limits.max_elapsed_s)


def build_fake(config: Config) -> BuiltTarget:
    settings = config.settings("fake", FakeSettings)
    server = FakeServer(settings)
    auth: Authenticator = NoAuth()
    if config.target.token_env:
        auth = StaticTokenAuth(config.secret(config.target.token_env, "fake target token"))
    elif settings.token_lifetime_s is not None:
        auth = SessionAuth(FakeTokenSource())
    target = Target(config.target.base_url, server, budget_for(config), auth)
    return BuiltTarget(FakeConnector(), target)


def build_quable(config: Config) -> BuiltTarget:
    from bulksync.connectors.quable import build_quable as build

    return build(config)


def build_propeller(config: Config) -> BuiltTarget:
    from bulksync.connectors.propeller import build_propeller as build

    return build(config)


def build_ocapi(config: Config) -> BuiltTarget:
    from bulksync.connectors.ocapi import build_ocapi as build

    return build(config)


BUILDERS: dict[str, Callable[[Config], BuiltTarget]] = {
    "fake": build_fake,
    "quable": build_quable,
    "propeller": build_propeller,
    "ocapi": build_ocapi,
}


def settings_model(kind: str) -> type[BaseModel]:
    """The model of the [kind] table; connectors are imported only when asked for."""
    if kind == "fake":
        return FakeSettings
    if kind == "quable":
        from bulksync.connectors.quable import QuableOptions

        return QuableOptions
    if kind == "propeller":
        from bulksync.connectors.propeller import PropellerOptions

        return PropellerOptions
    if kind == "ocapi":
        from bulksync.connectors.ocapi import OcapiOptions

        return OcapiOptions
    raise ConfigError(f"unknown target kind '{kind}' (available: {', '.join(sorted(BUILDERS))})")


def config_schema() -> dict[str, Any]:
    """The JSON schema of a job file, every table included, for editors' completion."""
    fields: dict[str, Any] = {
        "target": (TargetConfig, None),
        "inputs": (InputsConfig, None),
        "limits": (LimitsConfig, None),
        "output": (OutputConfig, None),
        "state": (StateConfig, None),
    }
    for kind in BUILDERS:
        fields[kind] = (settings_model(kind) | None, None)
    model = create_model("BulksyncJob", __config__=None, **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema["additionalProperties"] = False
    schema["description"] = (
        "A bulksync job file (TOML). [target] kind is required; only the table of that kind "
        "([fake], [quable], [propeller] or [ocapi]) may be present."
    )
    schema["required"] = ["target"]
    # Code may build a TargetConfig without a kind (the fake); a job file must name it.
    target = schema["$defs"]["TargetConfig"]
    target["required"] = ["kind"]
    target["properties"]["kind"].pop("default", None)
    return schema


def build_target(config: Config) -> BuiltTarget:
    builder = BUILDERS.get(config.target.kind)
    if builder is None:
        kinds = ", ".join(sorted(BUILDERS))
        raise ConfigError(f"unknown target kind '{config.target.kind}' (available: {kinds})")
    return builder(config)


def build_connector(config: Config) -> Connector:
    """The target's connector alone: its options, no secrets, no transport. What the job
    check and a dry run need (a plan is made without credentials)."""
    kind = config.target.kind
    if kind == "fake":
        return FakeConnector()
    if kind == "quable":
        from bulksync.connectors.quable._connector import QuableConnector, QuableOptions

        return QuableConnector(config.settings("quable", QuableOptions))
    if kind == "propeller":
        from bulksync.connectors.propeller._connector import PropellerConnector, PropellerOptions

        return PropellerConnector(config.settings("propeller", PropellerOptions))
    if kind == "ocapi":
        from bulksync.connectors.ocapi._connector import OcapiConnector, OcapiOptions

        return OcapiConnector(config.settings("ocapi", OcapiOptions))
    return build_target(config).connector  # unknown kinds fail there, with the list
