"""The job configuration: a TOML file, overridden by command-line flags.

Read through pydantic models: unknown keys are refused rather than ignored (a typo in a rate
limit must not silently turn into "no limit"), every value must have its key's type (TOML's
``"false"`` is a string, not false), and every message names the field's path on one line.
Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator as After
from pydantic import BaseModel, BeforeValidator, Field, Strict, ValidationError
from pydantic_core import PydanticCustomError

from bulksync.app import registry
from bulksync.spi._config_errors import close_match, describe
from bulksync.spi._errors import ConfigError

# Re-exported: the core's tables and a connector's options share one base and one URL rule.
from bulksync.spi._options import PositiveSeconds as PositiveSeconds
from bulksync.spi._options import Seconds as Seconds
from bulksync.spi._options import Section as Section
from bulksync.spi._options import check_base_url as check_base_url
from bulksync.spi._options import refuse_userinfo as refuse_userinfo
from bulksync.spi._options import split_url as split_url
from bulksync.spi._redact import register_secret

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _env_name(value: str) -> str:
    # The message never holds the value: a token pasted here is a secret.
    if not _ENV_NAME.match(value):
        raise PydanticCustomError(
            "env_name",
            "must name an environment variable (letters, digits, _), not hold the secret",
        )
    return value


def _pairs(value: Any) -> Any:
    # TOML has arrays, no tuples: [[6000, 600]] becomes [(6000, 600)] for the strict check.
    if isinstance(value, list):
        return [tuple(item) if isinstance(item, list) else item for item in value]
    return value


# The longest window a quota may have: a year (a monthly quota is the longest seen). Longer,
# or infinite, is a typo, and no resume time can be said for it.
MAX_WINDOW_S = 366 * 86400


def _windows(value: list[tuple[int, float]] | None) -> list[tuple[int, float]] | None:
    if any(n < 1 or not 0 < s <= MAX_WINDOW_S for n, s in value or ()):
        raise PydanticCustomError(
            "rate_window",
            f"every window needs requests >= 1 and 0 < seconds <= {MAX_WINDOW_S} (366 days)",
        )
    return value


def _no_empty(value: Any) -> Any:
    return None if value == "" else value  # `assets = ""` means no assets, not the folder


def _installed_kind(value: str) -> str:
    # The installed targets, not a list written here: a plug-in adds its kind by installing.
    if not registry.known(value):
        expected = ", ".join(f"'{kind}'" for kind in registry.kinds())
        raise PydanticCustomError(
            "literal_error", "must be an installed target kind", {"expected": expected}
        )
    return value


EnvName = Annotated[str, After(_env_name)]
TargetKind = Annotated[str, After(_installed_kind)]
# Paths come from TOML as strings; only a string (or a Path from code) is a path, never 5.
FilePath = Annotated[Path, Strict(False)]
OptionalPath = Annotated[FilePath | None, BeforeValidator(_no_empty)]
Workers = Annotated[int, Field(ge=1, le=1024)]
RateWindows = Annotated[list[tuple[int, float]] | None, BeforeValidator(_pairs), After(_windows)]


class TargetConfig(Section):
    table = "target"
    kind: TargetKind = "fake"  # a bulksync.targets entry point (bulksync.app.registry)
    base_url: str = ""
    token_env: EnvName | None = None  # static bearer token
    user_env: EnvName | None = None  # login: user name ...
    password_env: EnvName | None = None  # ... and password
    client_id_env: EnvName | None = None  # OAuth client credentials
    client_secret_env: EnvName | None = None
    allow_http: bool = False  # plain http:// to a host other than loopback
    timeout_s: PositiveSeconds = 60.0


class InputsConfig(Section):
    table = "inputs"
    assets: OptionalPath = None
    links: OptionalPath = None
    media_root: OptionalPath = None
    format: Literal["auto", "jsonl", "csv"] = "auto"
    csv_delimiter: Literal["auto", ",", ";", "\t", "|"] = "auto"


class LimitsConfig(Section):
    table = "limits"
    rate: RateWindows = None  # None: the connector's documented limits
    pace: Annotated[float, Field(gt=0)] | None = None
    concurrency: Workers = 16
    stage_concurrency: dict[str, Workers] = Field(default_factory=dict)
    max_attempts: Annotated[int, Field(ge=1)] = 8
    max_elapsed_s: Seconds = 300.0
    grace_s: Seconds = 10.0
    # Consecutive requests failing the same way at the transport level before the run stops
    # (exit 4); the literal matches bulksync.engine._breaker.DEFAULT_UNREACHABLE_AFTER.
    unreachable_after: Annotated[int, Field(ge=1)] = 20
    stall_s: PositiveSeconds | None = None  # None: twice [target] timeout_s
    # A quota window that would keep the next request waiting longer than this stops the run
    # (exit 6, the time it can resume); wait_for_quota (--wait-for-quota) sleeps instead.
    max_quota_wait_s: Seconds = 600.0
    wait_for_quota: bool = False
    # Requests sent per target instance, shared by every job of this user; None: the default
    # file (bulksync.store._quota_ledger.default_ledger_path).
    quota_ledger: OptionalPath = None


class OutputConfig(Section):
    table = "output"
    results: FilePath = Path("results.jsonl")
    # One folder per run (results, summary, failures, timeline, report.html); the results
    # path above is kept pointing at the latest run's results.
    runs_dir: FilePath = Path("runs")
    progress: bool = True
    # Off a terminal (or with progress off), one stats line to stderr every so many seconds;
    # 0 prints none.
    stats_interval: Seconds = 60.0
    stats_format: Literal["text", "json"] = "text"
    # The plan (items, requests, time) in one line before the run; it costs a pass over the
    # inputs and the state of its own, which false saves.
    plan: bool = True


class StateConfig(Section):
    table = "state"
    enabled: bool = True  # remember confirmed items: resume after a crash, fast resyncs
    # "sqlite": a file at `path`, one run at a time on one host. "postgres": a database that
    # the shards of a job share (--shard I/N), on any number of hosts.
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: FilePath = Path("bulksync-state.sqlite")
    # The environment variable holding the PostgreSQL DSN (a secret: never in the config).
    dsn_env: EnvName = "BULKSYNC_PG_DSN"
    # A sharded run's link whose asset belongs to another shard waits this long at most for
    # that shard to push it, then ends "skipped: dependency not yet pushed" (the next run
    # pushes it).
    dependency_wait_s: Seconds = 60.0


class BudgetConfig(Section):
    """Where the request budget lives: this process (memory), or Redis, shared by every
    process and machine that names the same key (bulksync.app._shared_budget)."""

    table = "budget"
    backend: Literal["memory", "redis"] = "memory"
    # redis://host:port/db, rediss://... or unix:///path/redis.sock; never with a password:
    # a URL that needs one goes in the environment variable url_env names (a secret).
    url: str | None = None
    url_env: EnvName | None = None
    key: str | None = None  # None: the target kind and its normalised base_url
    timeout_s: PositiveSeconds = 5.0  # per Redis command; a Redis gone stops the run


SettingsT = TypeVar("SettingsT", bound=BaseModel)


# What an environment variable's name conventionally looks like: upper case, short.
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,39}")


class Config(Section):
    target: TargetConfig = Field(default_factory=TargetConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    # Connector tables ([quable], [propeller], [ocapi], [fake]) as read, typed by settings().
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def settings(self, name: str, model: type[SettingsT]) -> SettingsT:
        """The [name] table as its connector's model: unknown keys and wrong types refused."""
        try:
            return model.model_validate(self.sections.get(name, {}))
        except ValidationError as exc:
            known = {name: list(model.model_fields)}
            raise ConfigError(describe(exc, name, known)) from None

    def secret(self, env_name: str | None, what: str) -> str:
        """Read a secret from the environment variable the config names."""
        if not env_name:
            raise ConfigError(f"{what}: no environment variable is configured for it")
        value = os.environ.get(env_name)
        if not value:
            if _CONVENTIONAL_ENV_NAME.fullmatch(env_name):
                raise ConfigError(f"{what}: environment variable {env_name} is not set")
            # Lower case or a long run of characters: it may be the secret pasted in by
            # mistake, so it is not repeated.
            raise ConfigError(
                f"{what}: the environment variable the config names is not set (the name is not "
                "shown: it does not look like a variable name and may be the secret itself)"
            )
        register_secret(value)
        return value


_SECTIONS: dict[str, type[Section]] = {
    "target": TargetConfig,
    "inputs": InputsConfig,
    "limits": LimitsConfig,
    "output": OutputConfig,
    "state": StateConfig,
    "budget": BudgetConfig,
}

NO_CONFIG = (
    "no config: give --config job.toml, or --kind fake to run against the built-in in-memory target"
)


def load_config(
    path: Path | None, overrides: dict[str, Any] | None = None, *, needs_inputs: bool = True
) -> Config:
    """Read ``path`` (or start from defaults), apply ``overrides`` ("section.key": value).

    The target is never chosen silently: without a file, ``target.kind`` must be overridden;
    a file must name its ``[target] kind``. ``needs_inputs`` False: a job that only names a
    target (``bulksync bench``)."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is None and (overrides or {}).get("target.kind") is None:
        raise ConfigError(NO_CONFIG)
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
    try:
        config = _build(raw, overrides or {})
        _resolve_paths(config, base)
        validate(config, needs_inputs)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"config {path}: {exc}") from None
    return config


def _build(raw: dict[str, Any], overrides: dict[str, Any]) -> Config:
    for dotted, value in overrides.items():
        if value is not None:
            section, key = dotted.split(".", 1)
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
    core: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        if name in _SECTIONS:
            core[name] = values
        elif registry.known(name):
            if not isinstance(values, dict):
                raise ConfigError(f"[{name}]: expected a table")
            sections[name] = values
        else:
            raise ConfigError(_unknown_section(name))
    target = raw.get("target", {})
    if isinstance(target, dict) and target.get("kind") is None:
        real = ", ".join(kind for kind in registry.kinds() if kind != "fake")
        raise ConfigError(
            f"[target] kind is required ({real}, or fake for the built-in in-memory target)"
        )
    config = Config.model_validate(core)  # Section.__init__ words its errors
    for name, values in sections.items():
        if name != config.target.kind:
            raise ConfigError(
                f"[{name}] is for kind '{name}'; this job's kind is '{config.target.kind}'"
            )
        config.sections[name] = values
        # Refuse its mistakes now, not mid-build.
        config.settings(name, registry.target_spec(name).options)
    return config


def _unknown_section(name: str) -> str:
    tables = [*_SECTIONS, *registry.kinds()]
    for table, model in _SECTIONS.items():
        if name in model.model_fields:  # `kind = "quable"` written above any table
            return f"unknown config section [{name}]; did you mean '{name}' under [{table}]?"
    match = close_match(name, tables)
    hint = f"; did you mean [{match}]?" if match else ""
    return f"unknown config section [{name}]{hint} (sections: {', '.join(tables)})"


def _resolve_paths(config: Config, base: Path) -> None:
    def resolve(value: Path | None) -> Path | None:
        return None if value is None else (base / value.expanduser()).resolve()

    config.inputs.assets = resolve(config.inputs.assets)
    config.inputs.links = resolve(config.inputs.links)
    config.inputs.media_root = resolve(config.inputs.media_root)
    config.limits.quota_ledger = resolve(config.limits.quota_ledger)
    # Not resolved through symlinks: the results path is a link to the latest run's results,
    # and this run must write its own, not into the last one's folder.
    config.output.results = Path(os.path.abspath(base / config.output.results.expanduser()))
    config.output.runs_dir = resolve(config.output.runs_dir) or base / "runs"
    config.state.path = resolve(config.state.path) or base / "bulksync-state.sqlite"


def validate(config: Config, needs_inputs: bool = True) -> None:
    target = config.target
    if registry.target_spec(target.kind).needs_base_url:
        check_base_url(target.base_url, target.allow_http)
    elif target.base_url:
        # The fake sends nothing, but the state names its target by this URL.
        refuse_userinfo(target.base_url, "base_url")
    if target.base_url:
        target.base_url = normalize_base_url(target.base_url)
    check_budget(config.budget)
    if needs_inputs and config.inputs.assets is None and config.inputs.links is None:
        raise ConfigError("no input: set [inputs] assets and/or links (or --assets / --links)")


def check_budget(budget: BudgetConfig) -> None:
    """A Redis budget names its server once, and never with a password in the file."""
    if budget.backend != "redis":
        if budget.url or budget.url_env:
            raise ConfigError('[budget] url and url_env are for backend = "redis"')
        return
    if bool(budget.url) == bool(budget.url_env):
        raise ConfigError(
            '[budget] backend = "redis" needs one of url (no password) or url_env (the name '
            "of an environment variable holding the URL, which may carry a password)"
        )
    if budget.url:
        parts = split_url(budget.url, "[budget] url")
        if parts.password is not None or "@" in parts.netloc:
            raise ConfigError(
                "[budget] url must not carry a user name or password; put the whole URL in an "
                "environment variable and name it in [budget] url_env"
            )
        check_redis_url(budget.url, "[budget] url")
    if budget.key is not None and not budget.key.strip():
        raise ConfigError("[budget] key must not be empty (leave it out for the default)")


REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str, what: str) -> None:
    """Words only the scheme: the URL may hold a password and is not repeated."""
    parts = split_url(url, what)
    if parts.scheme.lower() not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise ConfigError(f"{what} must be a redis://, rediss:// or unix:// URL")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_base_url(url: str) -> str:
    """One spelling per target, so the state finds its items again: scheme and host in lower
    case, no default port, no trailing slash. Hosts stay as written otherwise (localhost is
    not 127.0.0.1: it may resolve to ::1)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url  # check_base_url names what is wrong with it
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, parts.fragment))
