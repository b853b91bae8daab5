"""The settings tree of a sandbox: the shared knobs, one table per vendor, TOML and flags.

The shared tables (faults, and the latency and rate-limit tables every vendor has) are here
and in :mod:`bulksync.sandbox._knobs`; each vendor's own table is declared in its sub-package
and found through :mod:`bulksync.sandbox._vendors`, so a new vendor edits nothing here.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bulksync.sandbox._knobs import (
    MIB,
    Knob,
    LatencySettings,
    RateLimitSettings,
    RateWindow,
    SettingsError,
    build,
    convert,
    iter_knobs,
    knob,
    replace,
    replace_path,
)
from bulksync.sandbox._vendor import ApiSettings
from bulksync.sandbox._vendors import by_name, vendor_names, vendors

__all__ = [
    "MIB",
    "FaultSettings",
    "Knob",
    "LatencySettings",
    "RateLimitSettings",
    "RateWindow",
    "SandboxSettings",
    "SettingsError",
    "knobs",
]

GARBAGE_KINDS = ("html", "invalid_json", "empty")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    seed: int = knob(0, "seed of every random decision (faults and jitter)")
    error_rate: float = knob(0.0, "probability of answering one of error_statuses")
    error_statuses: tuple[int, ...] = knob((500, 502, 503), "statuses drawn for error faults")
    disconnect_rate: float = knob(0.0, "probability of closing the connection unanswered")
    drop_after_write_rate: float = knob(
        0.0, "probability, on writes, of applying the write then closing unanswered"
    )
    applied_error_rate: float = knob(
        0.0, "probability, on writes, of applying the write then answering applied_error_statuses"
    )
    applied_error_statuses: tuple[int, ...] = knob(
        (500, 502, 504), "statuses drawn for applied_error faults"
    )
    garbage_rate: float = knob(
        0.0, "probability of answering 200 with a body that is not the API's (garbage_kinds)"
    )
    garbage_kinds: tuple[str, ...] = knob(
        GARBAGE_KINDS, "bodies drawn for garbage faults: html, invalid_json, empty"
    )
    garbage_applies_writes: bool = knob(
        True, "whether a write answered with garbage is applied first (false: nothing is done)"
    )
    slow_rate: float = knob(0.0, "probability of a slow response")
    slow_seconds: float = knob(10.0, "delay of a slow response")
    close_after_response_rate: float = knob(
        0.0, "probability of closing the connection after an answer: its next request is dropped"
    )
    redirect_rate: float = knob(0.0, "probability of a 307 to redirect_location, before any work")
    redirect_location: str = knob(
        "http://redirect.invalid", "where redirects point; the request's path and query follow"
    )
    apis: tuple[str, ...] = field(
        default_factory=vendor_names, metadata={"help": "APIs subject to faults"}
    )

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
        if unknown := set(self.apis) - set(vendor_names()):
            raise SettingsError(f"faults.apis: unknown API {sorted(unknown)}")


class SandboxSettings:
    """All knobs, with defaults that mimic the vendors' documented behaviour.

    Frozen like the other tables; each vendor's table is an attribute named after the vendor
    (``settings.quable``) and, typed, ``settings.of(QuableSettings)``. The keyword arguments
    are the tables to set, the others keep their defaults.
    """

    __slots__ = ("_by_type", "_tables", "faults", "log_requests", "time_scale")
    time_scale: float
    log_requests: bool
    faults: FaultSettings
    _tables: dict[str, Any]
    _by_type: dict[type, Any]

    def __init__(
        self,
        time_scale: float = 1.0,
        log_requests: bool = False,
        faults: FaultSettings | None = None,
        **tables: Any,
    ) -> None:
        registered = by_name()
        if unknown := sorted(set(tables) - set(registered)):
            raise TypeError(f"unknown settings table(s) {', '.join(unknown)}")
        built: dict[str, Any] = {}
        for name, vendor in registered.items():
            table = tables.get(name)
            if table is None:
                table = vendor.settings()
            elif not isinstance(table, vendor.settings):
                raise TypeError(f"{name}: expected {vendor.settings.__name__}")
            built[name] = table
        if time_scale <= 0:
            raise SettingsError("time_scale must be positive")
        setter = object.__setattr__
        setter(self, "time_scale", time_scale)
        setter(self, "log_requests", log_requests)
        setter(self, "faults", faults if faults is not None else FaultSettings())
        setter(self, "_tables", built)
        setter(self, "_by_type", {type(t): t for t in built.values()})

    @classmethod
    def knob_layout(cls) -> list[tuple[str, Any, str]]:
        """The fields, in the order of the example file and of ``--help``."""
        return [
            ("time_scale", float, "divides rate windows and token lifetimes (tests: 100+)"),
            ("log_requests", bool, "write an access log line per request to stderr"),
            *((v.name, v.settings, "") for v in vendors()),
            ("faults", FaultSettings, ""),
        ]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not slots: the vendor tables.
        if not name.startswith("_"):
            with_tables = object.__getattribute__(self, "_tables")
            if name in with_tables:
                return with_tables[name]
        raise AttributeError(f"SandboxSettings has no table {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SandboxSettings is frozen; use replace() or with_overrides()")

    def _key(self) -> tuple[Any, ...]:
        return (self.time_scale, self.log_requests, self.faults, tuple(self._tables.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SandboxSettings) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        tables = ", ".join(f"{k}={v!r}" for k, v in self._tables.items())
        return (
            f"SandboxSettings(time_scale={self.time_scale!r}, "
            f"log_requests={self.log_requests!r}, {tables}, faults={self.faults!r})"
        )

    def replace(self, **changes: Any) -> SandboxSettings:
        """A copy with some fields or tables changed, like ``dataclasses.replace``."""
        current: dict[str, Any] = {
            "time_scale": self.time_scale,
            "log_requests": self.log_requests,
            "faults": self.faults,
            **self._tables,
        }
        if unknown := sorted(set(changes) - set(current)):
            raise TypeError(f"unknown settings field(s) {', '.join(unknown)}")
        return SandboxSettings(**{**current, **changes})

    def of(self, kind: type[T]) -> T:
        """The vendor table of type ``kind``, typed: ``settings.of(QuableSettings)``."""
        table: T = self._by_type[kind]
        return table

    def api(self, name: str) -> ApiSettings:
        """The table of the vendor called ``name``, as the core sees it."""
        table: ApiSettings = self._tables[name]
        return table

    def scaled(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of API time last under ``time_scale``."""
        return seconds / self.time_scale

    @classmethod
    def from_toml(cls, path: str | Path) -> SandboxSettings:
        """Load a TOML file laid out like the tables (optionally under ``[sandbox]``).

        Relative file knobs are resolved against the TOML file's directory.
        """
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: {exc}") from exc
        inner = doc.get("sandbox")
        data = inner if isinstance(inner, dict) else doc
        settings: SandboxSettings = build(cls, data)
        return _resolve_files(settings, path.parent)

    def with_overrides(self, overrides: Mapping[str, str]) -> SandboxSettings:
        """Apply ``{"quable.latency.fixed_ms": "50"}``-style textual overrides."""
        result = self
        by_path = {k.path: k for k in knobs()}
        for dotted, text in overrides.items():
            leaf = by_path.get(dotted)
            if leaf is None:
                raise SettingsError(f"unknown knob {dotted!r}")
            value = convert(text, leaf.hint, dotted, from_text=True)
            result = replace_path(result, dotted.split("."), value)
        return result


def knobs() -> list[Knob]:
    """Every leaf knob of SandboxSettings, in declaration order."""
    return list(iter_knobs(SandboxSettings, SandboxSettings()))


def _resolve_files(settings: SandboxSettings, base: Path) -> SandboxSettings:
    def fix(text: str) -> str:
        return str(base / text) if text and not Path(text).is_absolute() else text

    tables = {
        v.name: replace(
            getattr(settings, v.name),
            **{name: fix(getattr(getattr(settings, v.name), name)) for name in v.file_knobs},
        )
        for v in vendors()
        if v.file_knobs
    }
    return settings.replace(**tables)
