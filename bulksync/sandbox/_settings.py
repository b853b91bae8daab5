"""Every knob of the sandbox, as frozen dataclasses, plus TOML and command-line loading.

The dataclass tree is the single source of truth: the TOML layout, the ``--flag`` names and the
commented example file all follow it, so a new knob only has to be declared here.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APIS = ("quable", "propeller", "ocapi")
LINK_IDENTITIES = ("from_to", "from_to_type", "from_to_type_subtype")
TOKEN_ANSWERS = ("current", "legacy")
GARBAGE_KINDS = ("html", "invalid_json", "empty")
MIB = 1024 * 1024


class SettingsError(ValueError):
    """A settings file or a knob value is wrong; the message names the knob."""


def _knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most ``limit`` accepted requests in any sliding window of ``seconds``."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise SettingsError(f"rate window {self.limit}/{self.seconds}: both must be positive")


@dataclass(frozen=True, slots=True)
class LatencySettings:
    fixed_ms: float = _knob(0.0, "delay added to every response, in milliseconds")
    jitter_ms: float = _knob(0.0, "extra random delay in [0, jitter_ms), drawn from the fault seed")

    def __post_init__(self) -> None:
        if self.fixed_ms < 0 or self.jitter_ms < 0:
            raise SettingsError("latency must not be negative")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    windows: tuple[RateWindow, ...] = _knob(
        (), "sliding windows as LIMIT/SECONDS, all enforced at once; empty = no limit"
    )
    retry_after: bool = _knob(True, "send a Retry-After header with each 429")


_QUABLE_WINDOWS = RateLimitSettings(windows=(RateWindow(6000, 600.0), RateWindow(300000, 86400.0)))


@dataclass(frozen=True, slots=True)
class QuableSettings:
    instance: str = _knob("sandbox", "instance name used in JSON-LD contexts and asset URLs")
    tokens: tuple[str, ...] = _knob(("sandbox-token",), "static API tokens (never expire)")
    read_only_tokens: tuple[str, ...] = _knob((), "static tokens refused (403) on writes")
    read_only_status: int = _knob(
        403, "status refusing a read-only token's write: 403, or 405 (the error page's reading)"
    )
    username: str = _knob("sandbox", "login for POST /api_1.php/sessions")
    password: str = _knob("sandbox", "password for POST /api_1.php/sessions")
    session_lifetime_s: float = _knob(3600.0, "lifetime of a session access token")
    remember_lifetime_s: float = _knob(2592000.0, "lifetime of the quable-remember-me token")
    session_status: int = _knob(201, "HTTP status of a successful POST /api_1.php/sessions")
    refresh_invalidates_previous: bool = _knob(
        True, "a remember-me refresh also invalidates the user's previous token"
    )
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=lambda: _QUABLE_WINDOWS)
    max_body_bytes: int = _knob(100 * MIB, "larger request bodies get 413")
    default_page_size: int = _knob(30, "collection page size when no limit is given")
    max_page_size: int = _knob(100, "a larger limit is clamped to this (API Platform style)")
    validation_status: int = _knob(
        400, "status of a ConstraintViolationList: 400 as the docs say, or 422 (API Platform)"
    )
    duplicate_status: int = _knob(409, "status when creating an id that already exists")
    unknown_reference_status: int = _knob(400, "status for an unknown file, origin or target")
    duplicate_links: str = _knob("reject", "a second identical v5 link: reject or allow")
    link_types: tuple[str, ...] = _knob((), "known link type codes; empty = any code")
    classifications: tuple[str, ...] = _knob((), "known classification ids; empty = any id")
    require_asset_id: bool = _knob(True, "POST /api/assets must carry an id")
    require_classification: bool = _knob(False, "POST /api/assets must carry a classification")
    seed_documents: int = _knob(100, "documents doc-00001... created at start")
    documents_file: str = _knob("", "JSONL file of documents to create at start")
    document_type: str = _knob("product", "documentType of the counted seed documents")
    v4_success_status: int = _knob(200, "status of a successful v4 links call")
    v4_update_existing: str = _knob(
        "keep", "v4 mode update on an existing link: keep its sequence, or edit it"
    )

    def __post_init__(self) -> None:
        if self.duplicate_links not in ("reject", "allow"):
            raise SettingsError("quable.duplicate_links must be 'reject' or 'allow'")
        if self.read_only_status not in (403, 405):
            raise SettingsError("quable.read_only_status must be 403 or 405")
        if self.v4_update_existing not in ("keep", "edit"):
            raise SettingsError("quable.v4_update_existing must be 'keep' or 'edit'")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise SettingsError("quable page sizes: need 1 <= default_page_size <= max_page_size")


@dataclass(frozen=True, slots=True)
class PropellerSettings:
    client_id: str = _knob("sandbox", "OAuth2 client id")
    client_secret: str = _knob("sandbox", "OAuth2 client secret")
    tokens: tuple[str, ...] = _knob((), "static bearer tokens (never expire)")
    token_lifetime_s: float = _knob(1800.0, "lifetime of an access token")
    token_answer: str = _knob(
        "current",
        "shape of the token answer: current (expires_in a number, token_type Bearer) or "
        "legacy (the old Apigee answer: expires_in a string, token_type BearerToken)",
    )
    auth_error_shape: str = _knob(
        "apigee", "body of a 401: apigee (gateway fault) or envelope (the REST error envelope)"
    )
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    max_body_bytes: int = _knob(10 * MIB, "larger request bodies get 413")
    max_items_per_call: int = _knob(100, "bulk calls with more links get 400")
    reject_unknown_fields: bool = _knob(True, "schema error for link fields not in the docs")
    link_identity: str = _knob(
        "from_to",
        "what makes a bulk item update an existing link: from_to, "
        "from_to_type or from_to_type_subtype",
    )
    seed_products: int = _knob(100, "products with ids 1..N created at start")
    seed_categories: int = _knob(20, "categories with ids 1..N created at start")
    seed_accounts: int = _knob(
        10, "companies, contacts and users with ids 1..N each created at start (account links)"
    )
    resources_file: str = _knob("", "JSONL file of resources (product, category, ...) to create")
    source: str = _knob("SANDBOX", "source of the counted seed resources")
    language: str = _knob("EN", "language of the counted seed resources")

    def __post_init__(self) -> None:
        if self.max_items_per_call < 1:
            raise SettingsError("propeller.max_items_per_call must be positive")
        if self.token_answer not in TOKEN_ANSWERS:
            raise SettingsError("propeller.token_answer must be 'current' or 'legacy'")
        if self.auth_error_shape not in ("apigee", "envelope"):
            raise SettingsError("propeller.auth_error_shape must be 'apigee' or 'envelope'")
        if self.link_identity not in LINK_IDENTITIES:
            raise SettingsError(
                "propeller.link_identity must be one of " + ", ".join(LINK_IDENTITIES)
            )


@dataclass(frozen=True, slots=True)
class OcapiSettings:
    client_id: str = _knob("sandbox", "API client id (Basic auth user)")
    client_secret: str = _knob("sandbox", "API client secret (Basic auth password)")
    tokens: tuple[str, ...] = _knob((), "static bearer tokens (never expire)")
    token_lifetime_s: float = _knob(1799.0, "lifetime of an access token")
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    max_body_bytes: int = _knob(5 * MIB, "larger bodies are refused (batch: 400, others: 413)")
    max_batch_parts: int = _knob(50, "more subrequests in one batch get 400")
    default_count: int = _knob(25, "page size of a list when no count is given")
    max_count: int = _knob(200, "largest accepted count")
    max_start: int = _knob(999, "largest accepted start")
    resource_state_in_body: bool = _knob(
        False, "also put _resource_state in category_link bodies (the header is always sent)"
    )
    put_created_status: int = _knob(
        200, "status of a PUT that creates a link: 200 as the Data API spec lists, or 201"
    )
    list_link_property: bool = _knob(
        True, "listed category links carry their optional link URL; false leaves it out"
    )
    seed_catalogs: int = _knob(2, "catalogs catalog-1..N created at start")
    seed_categories: int = _knob(20, "categories category-0001..N (plus root) per catalog")
    catalogs_file: str = _knob("", "JSONL file of catalogs/categories to create at start")

    def __post_init__(self) -> None:
        if self.put_created_status not in (200, 201):
            raise SettingsError("ocapi.put_created_status must be 200 or 201")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    seed: int = _knob(0, "seed of every random decision (faults and jitter)")
    error_rate: float = _knob(0.0, "probability of answering one of error_statuses")
    error_statuses: tuple[int, ...] = _knob((500, 502, 503), "statuses drawn for error faults")
    disconnect_rate: float = _knob(0.0, "probability of closing the connection unanswered")
    drop_after_write_rate: float = _knob(
        0.0, "probability, on writes, of applying the write then closing unanswered"
    )
    applied_error_rate: float = _knob(
        0.0, "probability, on writes, of applying the write then answering applied_error_statuses"
    )
    applied_error_statuses: tuple[int, ...] = _knob(
        (500, 502, 504), "statuses drawn for applied_error faults"
    )
    garbage_rate: float = _knob(
        0.0, "probability of answering 200 with a body that is not the API's (garbage_kinds)"
    )
    garbage_kinds: tuple[str, ...] = _knob(
        GARBAGE_KINDS, "bodies drawn for garbage faults: html, invalid_json, empty"
    )
    garbage_applies_writes: bool = _knob(
        True, "whether a write answered with garbage is applied first (false: nothing is done)"
    )
    slow_rate: float = _knob(0.0, "probability of a slow response")
    slow_seconds: float = _knob(10.0, "delay of a slow response")
    close_after_response_rate: float = _knob(
        0.0, "probability of closing the connection after an answer: its next request is dropped"
    )
    redirect_rate: float = _knob(0.0, "probability of a 307 to redirect_location, before any work")
    redirect_location: str = _knob(
        "http://redirect.invalid", "where redirects point; the request's path and query follow"
    )
    apis: tuple[str, ...] = _knob(APIS, "APIs subject to faults")

    @property
    def rates(self) -> tuple[float, ...]:
        """Every fault's probability: they share one draw, so they sum to at most 1."""
        return tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name.endswith("_rate")
        )

    def __post_init__(self) -> None:
        rates = self.rates
        if any(r < 0 or r > 1 for r in rates) or sum(rates) > 1:
            raise SettingsError("fault rates must each be in [0, 1] and sum to at most 1")
        if not self.redirect_location.startswith(("http://", "https://")):
            raise SettingsError("faults.redirect_location must be an http(s) URL")
        if not self.error_statuses or any(not 400 <= s <= 599 for s in self.error_statuses):
            raise SettingsError("faults.error_statuses must be 4xx/5xx statuses")
        if not self.applied_error_statuses or any(
            not 400 <= s <= 599 for s in self.applied_error_statuses
        ):
            raise SettingsError("faults.applied_error_statuses must be 4xx/5xx statuses")
        if not self.garbage_kinds or set(self.garbage_kinds) - set(GARBAGE_KINDS):
            raise SettingsError(f"faults.garbage_kinds: each one of {', '.join(GARBAGE_KINDS)}")
        if unknown := set(self.apis) - set(APIS):
            raise SettingsError(f"faults.apis: unknown API {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """All knobs, with defaults that mimic the vendors' documented behaviour."""

    time_scale: float = _knob(1.0, "divides rate windows and token lifetimes (tests: 100+)")
    log_requests: bool = _knob(False, "write an access log line per request to stderr")
    quable: QuableSettings = field(default_factory=QuableSettings)
    propeller: PropellerSettings = field(default_factory=PropellerSettings)
    ocapi: OcapiSettings = field(default_factory=OcapiSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise SettingsError("time_scale must be positive")

    def scaled(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of API time last under ``time_scale``."""
        return seconds / self.time_scale

    def api(self, name: str) -> QuableSettings | PropellerSettings | OcapiSettings:
        settings: QuableSettings | PropellerSettings | OcapiSettings = getattr(self, name)
        return settings

    @classmethod
    def from_toml(cls, path: str | Path) -> SandboxSettings:
        """Load a TOML file laid out like the dataclasses (optionally under ``[sandbox]``).

        Relative file knobs are resolved against the TOML file's directory.
        """
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: {exc}") from exc
        inner = doc.get("sandbox")
        data = inner if isinstance(inner, dict) else doc
        settings = _build(cls, data, "")
        return _resolve_files(settings, path.parent)

    def with_overrides(self, overrides: Mapping[str, str]) -> SandboxSettings:
        """Apply ``{"quable.latency.fixed_ms": "50"}``-style textual overrides."""
        result = self
        for dotted, text in overrides.items():
            knob = _knob_by_path().get(dotted)
            if knob is None:
                raise SettingsError(f"unknown knob {dotted!r}")
            value = _convert(text, knob.hint, dotted, from_text=True)
            result = _replace_path(result, dotted.split("."), value)
        return result


@dataclass(frozen=True, slots=True)
class Knob:
    """One leaf setting: its dotted path, type, default and help text."""

    path: str
    hint: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.path.replace(".", "-").replace("_", "-")


def knobs() -> list[Knob]:
    """Every leaf knob of SandboxSettings, in declaration order."""
    return list(_iter_knobs(SandboxSettings, SandboxSettings(), ""))


def _iter_knobs(cls: type, default_obj: Any, prefix: str) -> Iterator[Knob]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = getattr(default_obj, f.name)
        if dataclasses.is_dataclass(hint) and hint is not RateWindow:
            yield from _iter_knobs(typing.cast(type, hint), value, f"{prefix}{f.name}.")
        else:
            yield Knob(f"{prefix}{f.name}", hint, value, f.metadata.get("help", ""))


def _knob_by_path() -> dict[str, Knob]:
    return {k.path: k for k in knobs()}


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise SettingsError(f"{prefix.rstrip('.') or 'settings'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise SettingsError(f"unknown knob {prefix}{key!r}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", from_text=False)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SettingsError(f"{prefix or 'settings'}: {exc}") from exc


def _convert(value: Any, hint: Any, name: str, *, from_text: bool) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if from_text:
            raise SettingsError(f"{name}: a table cannot be set from the command line")
        return _build(hint, value, name + ".")
    try:
        if hint is bool:
            return _to_bool(value, from_text)
        if hint is int or hint is float:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, int) or (hint is float and isinstance(value, float)):
                return hint(value)
            if from_text and isinstance(value, str):
                return hint(value.strip())
            raise TypeError
        if hint is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if typing.get_origin(hint) is tuple:
            return _to_tuple(value, typing.get_args(hint)[0], name, from_text)
    except SettingsError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: {value!r} is not a valid {_type_name(hint)}") from exc
    raise SettingsError(f"{name}: unsupported knob type {hint!r}")  # pragma: no cover


def _to_bool(value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ValueError(value)


def _to_tuple(value: Any, item: Any, name: str, from_text: bool) -> tuple[Any, ...]:
    if from_text:
        text = str(value).strip()
        parts = [] if text.lower() in ("", "off", "none") else [p.strip() for p in text.split(",")]
        if item is RateWindow:
            return tuple(_window(p.split("/")) for p in parts)
        return tuple(_convert(p, item, name, from_text=True) for p in parts)
    if not isinstance(value, list):
        raise TypeError
    if item is RateWindow:
        return tuple(_window(v) for v in value)
    return tuple(_convert(v, item, name, from_text=False) for v in value)


def _window(raw: Any) -> RateWindow:
    if isinstance(raw, dict):
        raw = [raw.get("limit"), raw.get("seconds")]
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError(raw)
    limit, seconds = raw
    if isinstance(limit, bool) or isinstance(seconds, bool):
        raise ValueError(raw)
    return RateWindow(int(limit), float(seconds))


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        inner = typing.get_args(hint)[0]
        return "list of LIMIT/SECONDS windows" if inner is RateWindow else f"list of {inner}"
    return getattr(hint, "__name__", str(hint))


def _replace_path(obj: Any, parts: list[str], value: Any) -> Any:
    head, *rest = parts
    new = value if not rest else _replace_path(getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: new})


def _resolve_files(settings: SandboxSettings, base: Path) -> SandboxSettings:
    def fix(text: str) -> str:
        return str(base / text) if text and not Path(text).is_absolute() else text

    return dataclasses.replace(
        settings,
        quable=dataclasses.replace(
            settings.quable, documents_file=fix(settings.quable.documents_file)
        ),
        propeller=dataclasses.replace(
            settings.propeller, resources_file=fix(settings.propeller.resources_file)
        ),
        ocapi=dataclasses.replace(settings.ocapi, catalogs_file=fix(settings.ocapi.catalogs_file)),
    )
