"""The job configuration: a TOML file, overridden by command-line flags.

Unknown keys are refused rather than ignored: a typo in a rate limit must not silently turn
into "no limit". Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import register_secret


@dataclass(slots=True)
class TargetConfig:
    kind: str = "fake"
    base_url: str = ""
    token_env: str | None = None  # static bearer token
    user_env: str | None = None  # login: user name ...
    password_env: str | None = None  # ... and password
    client_id_env: str | None = None  # OAuth client credentials
    client_secret_env: str | None = None
    allow_http: bool = False  # plain http:// to a host other than loopback
    timeout_s: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)  # connector-specific settings


@dataclass(slots=True)
class InputsConfig:
    assets: Path | None = None
    links: Path | None = None
    media_root: Path | None = None
    format: Literal["auto", "jsonl", "csv"] = "auto"


@dataclass(slots=True)
class LimitsConfig:
    rate: list[tuple[int, float]] | None = None  # None: the connector's documented limits
    pace: float | None = None
    concurrency: int = 16
    stage_concurrency: dict[str, int] = field(default_factory=dict)
    max_attempts: int = 8
    max_elapsed_s: float = 300.0
    grace_s: float = 10.0


@dataclass(slots=True)
class OutputConfig:
    results: Path = Path("results.jsonl")
    progress: bool = True


@dataclass(slots=True)
class StateConfig:
    enabled: bool = True  # remember confirmed items: resume after a crash, fast resyncs
    path: Path = Path("bulksync-state.sqlite")


@dataclass(slots=True)
class Config:
    target: TargetConfig = field(default_factory=TargetConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    state: StateConfig = field(default_factory=StateConfig)
    # Connector tables ([quable], [propeller], [ocapi], [fake]), checked by their connector.
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str, known: set[str]) -> dict[str, Any]:
        """The [name] table, refusing keys the connector does not know."""
        values = self.sections.get(name, {})
        unknown = set(values) - known
        if unknown:
            choices = ", ".join(sorted(known))
            raise ConfigError(
                f"unknown key(s) in [{name}]: {', '.join(sorted(unknown))} (known: {choices})"
            )
        return dict(values)

    def secret(self, env_name: str | None, what: str) -> str:
        """Read a secret from the environment variable the config names."""
        if not env_name:
            raise ConfigError(f"{what}: no environment variable is configured for it")
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"{what}: environment variable {env_name} is not set")
        register_secret(value)
        return value


CONNECTOR_SECTIONS = ("fake", "quable", "propeller", "ocapi")

_SECTIONS: dict[str, type] = {
    "target": TargetConfig,
    "inputs": InputsConfig,
    "limits": LimitsConfig,
    "output": OutputConfig,
    "state": StateConfig,
}


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (or start from defaults), apply ``overrides`` ("section.key": value)."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, key = dotted.split(".", 1)
            raw.setdefault(section, {})[key] = value
    config = Config()
    for name, section in raw.items():
        if name in CONNECTOR_SECTIONS:
            if not isinstance(section, dict):
                raise ConfigError(f"[{name}] must be a table")
            config.sections[name] = dict(section)
            continue
        if name not in _SECTIONS:
            raise ConfigError(f"unknown config section [{name}]")
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] must be a table")
        _fill(getattr(config, name), name, section)
    _resolve_paths(config, base)
    validate(config)
    return config


def _fill(target: Any, section: str, values: dict[str, Any]) -> None:
    known = set(type(target).__dataclass_fields__)
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown key '{key}' in [{section}] (known: {', '.join(sorted(known))})"
            )
        setattr(target, key, value)


def _resolve_paths(config: Config, base: Path) -> None:
    def resolve(value: Any) -> Path | None:
        if value is None or value == "":
            return None
        return (base / Path(str(value)).expanduser()).resolve()

    config.inputs.assets = resolve(config.inputs.assets)
    config.inputs.links = resolve(config.inputs.links)
    config.inputs.media_root = resolve(config.inputs.media_root)
    config.output.results = resolve(config.output.results) or base / "results.jsonl"
    config.state.path = resolve(config.state.path) or base / "bulksync-state.sqlite"


def validate(config: Config) -> None:
    from .targets import BUILDERS  # the registry imports this module

    target, limits = config.target, config.limits
    if target.kind not in BUILDERS:
        kinds = ", ".join(sorted(BUILDERS))
        raise ConfigError(f"unknown target kind '{target.kind}' (available: {kinds})")
    if target.kind != "fake":
        check_base_url(target.base_url, target.allow_http)
    try:
        if limits.rate is not None:
            limits.rate = [(int(n), float(s)) for n, s in limits.rate]
    except (TypeError, ValueError):
        raise ConfigError("[limits] rate must be a list of [requests, seconds] pairs") from None
    if any(n < 1 or s <= 0 for n, s in limits.rate or ()):
        raise ConfigError("[limits] rate: every window needs requests >= 1 and seconds > 0")
    if limits.pace is not None and float(limits.pace) <= 0:
        raise ConfigError("[limits] pace must be a positive number of requests per second")
    for key in ("timeout_s",):
        if not isinstance(getattr(target, key), int | float) or getattr(target, key) <= 0:
            raise ConfigError(f"[target] {key} must be a positive number")
    for key in ("max_elapsed_s", "grace_s"):
        if not isinstance(getattr(limits, key), int | float) or getattr(limits, key) < 0:
            raise ConfigError(f"[limits] {key} must be a number of seconds")
    for name, value in [("concurrency", limits.concurrency), *limits.stage_concurrency.items()]:
        if not isinstance(value, int) or not 1 <= value <= 1024:
            raise ConfigError(f"[limits] {name} must be an integer from 1 to 1024")
    if not isinstance(limits.max_attempts, int) or limits.max_attempts < 1:
        raise ConfigError("[limits] max_attempts must be at least 1")
    if config.inputs.format not in ("auto", "jsonl", "csv"):
        raise ConfigError("[inputs] format must be auto, jsonl or csv")
    if config.inputs.assets is None and config.inputs.links is None:
        raise ConfigError("no input: set [inputs] assets and/or links (or --assets / --links)")


def check_base_url(url: str, allow_http: bool, what: str = "base_url") -> None:
    """Only https, or plain http to loopback (the sandbox) unless explicitly allowed."""
    if not url:
        raise ConfigError("[target] base_url is required (or --base-url)")
    refuse_userinfo(url, what)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http(s) URL, got '{url}'")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: use https, or set allow_http = true"
        )


def refuse_userinfo(url: str, what: str) -> None:
    """No ``user:password@`` in a URL: bulksync would send it and keep it (the state names its
    target by URL). The message never repeats the URL, which holds the password."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    if "@" in netloc:
        raise ConfigError(
            f"{what} must not carry a user name or password (user:password@...); "
            "give credentials through the environment variables the [target] table names"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
