"""Until the target registry is on main: make ``[target] kind = spec.name`` runnable here.

The registry (issue 14, build step 2) will find specs through the ``bulksync.targets`` entry
point group and wire them in the core. Until it lands, :func:`registered` does in this process
what it will do: accept the kind, read its table with the spec's options, and build the
connector, transport, budget and token auth from the spec. When the core already accepts the
kind, it does nothing. DELETE this module (and its fixture) once the registry is merged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from bulksync.app import config as config_module
from bulksync.app import runner, wiring
from bulksync.app.config import Config, TargetConfig
from bulksync.engine.auth import Authenticator, NoAuth, StaticTokenAuth
from bulksync.engine.client import Target
from bulksync.engine.transport import AiohttpTransport
from bulksync.spi._connector import Connector
from bulksync.spi._errors import ConfigError
from bulksync.spi._spec import TargetSpec


def core_knows(kind: str) -> bool:
    try:
        TargetConfig.model_validate({"kind": kind})
    except ConfigError:
        return False
    return kind in wiring.BUILDERS


def _rebuild() -> None:
    TargetConfig.model_rebuild(force=True)
    Config.model_rebuild(force=True)


@contextmanager
def registered(spec: TargetSpec) -> Iterator[None]:
    if core_knows(spec.name):
        yield
        return

    def build(config: Config) -> wiring.BuiltTarget:
        options = config.settings(spec.name, spec.options)
        transport = AiohttpTransport(
            max_connections=config.limits.concurrency, timeout_s=config.target.timeout_s
        )
        auth: Authenticator = NoAuth()
        if config.target.token_env:
            auth = StaticTokenAuth(config.secret(config.target.token_env, f"{spec.name} token"))
        budget = wiring.budget_for(config, list(spec.rate_windows))
        target = Target(config.target.base_url, transport, budget, auth)
        return wiring.BuiltTarget(spec.connector(options), target)

    old_model, old_connector = wiring.settings_model, wiring.build_connector

    def settings_model(kind: str) -> type[BaseModel]:
        return spec.options if kind == spec.name else old_model(kind)

    def build_connector(config: Config) -> Connector:
        if config.target.kind != spec.name:
            return old_connector(config)
        return spec.connector(config.settings(spec.name, spec.options))

    field = TargetConfig.model_fields["kind"]
    old_annotation, old_sections = field.annotation, config_module.CONNECTOR_SECTIONS
    saved: list[tuple[Any, str, Any]] = [
        (wiring, "settings_model", old_model),
        (runner, "build_connector", old_connector),
    ]
    field.annotation = str
    _rebuild()
    config_module.CONNECTOR_SECTIONS = (*old_sections, spec.name)  # type: ignore[assignment]
    wiring.BUILDERS[spec.name] = build
    wiring.settings_model = settings_model
    setattr(runner, "build_connector", build_connector)  # noqa: B010 (runner imported it)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        wiring.BUILDERS.pop(spec.name, None)
        config_module.CONNECTOR_SECTIONS = old_sections
        field.annotation = old_annotation
        _rebuild()
