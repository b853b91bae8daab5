"""The job configuration: a TOML file, overridden by command-line flags.

Read through pydantic models: unknown keys are refused rather than ignored (a typo in a rate
limit must not silently turn into "no limit"), every value must have its key's type (TOML's
``"false"`` is a string, not false), and every message names the field's path on one line.
Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import AfterValidator as After
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from pydantic_core import PydanticCustomError

from bulksync.app._config_errors import close_match, describe
from bulksync.spi._errors import ConfigError
from bulksync.spi._redact import register_secret

KINDS = ("fake", "quable", "propeller", "ocapi")
CONNECTOR_SECTIONS = KINDS  # each target's own table: [fake], [quable], ...

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


def _windows(value: list[tuple[int, float]] | None) -> list[tuple[int, float]] | None:
    if any(n < 1 or s <= 0 for n, s in value or ()):
        raise PydanticCustomError("rate_window", "every window needs requests >= 1 and seconds > 0")
    return value


def _no_empty(value: Any) -> Any:
    return None if value == "" else value  # `assets = ""` means no assets, not the folder


EnvName = Annotated[str, After(_env_name)]
# Paths come from TOML as strings; only a string (or a Path from code) is a path, never 5.
FilePath = Annotated[Path, Strict(False)]
OptionalPath = Annotated[FilePath | None, BeforeValidator(_no_empty)]
Workers = Annotated[int, Field(ge=1, le=1024)]
# Finite: an infinite timeout or stall limit would silently switch that guard off.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
RateWindows = Annotated[list[tuple[int, float]] | None, BeforeValidator(_pairs), After(_windows)]


class Section(BaseModel):
    """One config table. Built in code, a wrong value raises ConfigError with its path too."""

    model_config = ConfigDict(extra="forbid", strict=True)
    table: ClassVar[str] = ""  # its name in the TOML file, for messages

    def __init__(self, /, **data: Any) -> None:
        # pydantic calls this for nested tables and model_validate too: every path to a
        # model gets the one-line message, never pydantic's multi-line text with the value.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            table = type(self).table
            known = {table: list(type(self).model_fields)}
            raise ConfigError(describe(exc, table or None, known)) from None


class TargetConfig(Section):
    table = "target"
    kind: Literal["fake", "quable", "propeller", "ocapi"] = "fake"
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


class OutputConfig(Section):
    table = "output"
    results: FilePath = Path("results.jsonl")
    progress: bool = True


class StateConfig(Section):
    table = "state"
    enabled: bool = True  # remember confirmed items: resume after a crash, fast resyncs
    path: FilePath = Path("bulksync-state.sqlite")


SettingsT = TypeVar("SettingsT", bound=BaseModel)


# What an environment variable's name conventionally looks like: upper case, short.
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,39}")


class Config(Section):
    target: TargetConfig = Field(default_factory=TargetConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    state: StateConfig = Field(default_factory=StateConfig)
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
}

NO_CONFIG = (
    "no config: give --config job.toml, or --kind fake to run against the built-in in-memory target"
)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (or start from defaults), apply ``overrides`` ("section.key": value).

    The target is never chosen silently: without a file, ``target.kind`` must be overridden;
    a file must name its ``[target] kind``."""
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
        validate(config)
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
        elif name in CONNECTOR_SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(f"[{name}]: expected a table")
            sections[name] = values
        else:
            raise ConfigError(_unknown_section(name))
    target = raw.get("target", {})
    if isinstance(target, dict) and target.get("kind") is None:
        raise ConfigError(
            "[target] kind is required (quable, propeller, ocapi, or fake for the built-in "
            "in-memory target)"
        )
    config = Config.model_validate(core)  # Section.__init__ words its errors
    for name, values in sections.items():
        if name != config.target.kind:
            raise ConfigError(
                f"[{name}] is for kind '{name}'; this job's kind is '{config.target.kind}'"
            )
        from bulksync.app.wiring import settings_model  # the registry imports this module

        config.sections[name] = values
        config.settings(name, settings_model(name))  # refuse its mistakes now, not mid-build
    return config


def _unknown_section(name: str) -> str:
    tables = [*_SECTIONS, *CONNECTOR_SECTIONS]
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
    config.output.results = resolve(config.output.results) or base / "results.jsonl"
    config.state.path = resolve(config.state.path) or base / "bulksync-state.sqlite"


def validate(config: Config) -> None:
    from bulksync.app.wiring import BUILDERS  # the registry imports this module

    target = config.target
    if target.kind not in BUILDERS:
        kinds = ", ".join(sorted(BUILDERS))
        raise ConfigError(f"unknown target kind '{target.kind}' (available: {kinds})")
    if target.kind != "fake":
        check_base_url(target.base_url, target.allow_http)
    elif target.base_url:
        # The fake sends nothing, but the state names its target by this URL.
        refuse_userinfo(target.base_url, "base_url")
    if target.base_url:
        target.base_url = normalize_base_url(target.base_url)
    if config.inputs.assets is None and config.inputs.links is None:
        raise ConfigError("no input: set [inputs] assets and/or links (or --assets / --links)")


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


def check_base_url(url: str, allow_http: bool, what: str = "base_url") -> None:
    """Only https, or plain http to loopback (the sandbox) unless explicitly allowed."""
    if not url:
        raise ConfigError("[target] base_url is required (or --base-url)")
    refuse_userinfo(url, what)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is no number
    except ValueError:
        raise ConfigError(f"{what} must be an http(s) URL, got '{url}'") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http(s) URL, got '{url}'")
    if parts.scheme.lower() == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: use https, or set allow_http = true"
        )


def split_url(url: str, what: str) -> SplitResult:
    """``urlsplit``, whose ValueError (a broken IPv6 bracket, a bad port) is a config
    mistake (exit 2), not a bug (exit 5)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is no number
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc})") from None
    return parts


def refuse_userinfo(url: str, what: str) -> None:
    """No ``user:password@`` in a URL: bulksync would send it and keep it (the state names its
    target by URL). The message never repeats the URL, which holds the password."""
    # By hand, not urlsplit: urlsplit raises on a broken IPv6 bracket, and the caller's
    # "got '<url>'" message would then repeat the password.
    rest = url.split("//", 1)[1] if "//" in url else ""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
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
