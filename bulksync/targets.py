"""Build a runnable target (connector, transport, budget, auth) from the configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from .auth import Authenticator, NoAuth, SessionAuth, StaticTokenAuth
from .budget import RateBudget
from .client import Target
from .config import Config
from .connector import Connector
from .errors import ConfigError
from .fake import FakeConnector, FakeServer, FakeSettings, FakeTokenSource


@dataclass(slots=True)
class BuiltTarget:
    connector: Connector
    target: Target


def _budget(config: Config) -> RateBudget:
    return RateBudget(config.limits.rate, pace=config.limits.pace)


def build_fake(config: Config) -> BuiltTarget:
    known = {f.name for f in fields(FakeSettings)}
    unknown = set(config.fake) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [fake]: {', '.join(sorted(unknown))}")
    settings = FakeSettings(**config.fake)
    server = FakeServer(settings)
    auth: Authenticator = NoAuth()
    if config.target.token_env:
        auth = StaticTokenAuth(config.secret(config.target.token_env, "fake target token"))
    elif settings.token_lifetime_s is not None:
        auth = SessionAuth(FakeTokenSource())
    target = Target(config.target.base_url, server, _budget(config), auth)
    return BuiltTarget(FakeConnector(), target)


BUILDERS: dict[str, Callable[[Config], BuiltTarget]] = {"fake": build_fake}


def build_target(config: Config) -> BuiltTarget:
    builder = BUILDERS.get(config.target.kind)
    if builder is None:
        kinds = ", ".join(sorted(BUILDERS))
        raise ConfigError(f"unknown target kind '{config.target.kind}' (available: {kinds})")
    return builder(config)
