"""The building blocks of every settings table, and the machinery that reads them.

A table is a frozen dataclass whose fields are knobs (``knob(default, help)``); nested tables
are dataclass-typed fields. The TOML layout, the ``--flag`` names and the commented example
file all follow the tree of tables, so a new knob only has to be declared in its table. Vendor
tables (``bulksync/sandbox/<vendor>/_settings.py``) use the same blocks as the shared ones.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024


class SettingsError(ValueError):
    """A settings file or a knob value is wrong; the message names the knob."""


def knob(default: Any, help: str) -> Any:
    """A leaf setting with its default and the help text of its flag and example line."""
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
    fixed_ms: float = knob(0.0, "delay added to every response, in milliseconds")
    jitter_ms: float = knob(0.0, "extra random delay in [0, jitter_ms), drawn from the fault seed")
    degrade_above_rps: float = knob(
        0.0,
        "above this many requests per second to this API (counted over the last real second) "
        "every answer slows down by degrade_ms_per_rps per request/s of excess; 0 = off",
    )
    degrade_ms_per_rps: float = knob(
        10.0, "milliseconds added per request/s above degrade_above_rps"
    )

    def __post_init__(self) -> None:
        if min(self.fixed_ms, self.jitter_ms, self.degrade_above_rps, self.degrade_ms_per_rps) < 0:
            raise SettingsError("latency must not be negative")

    def degraded_seconds(self, rate: float) -> float:
        """The delay added at ``rate`` requests per second (0 when degrading is off)."""
        if self.degrade_above_rps <= 0 or rate <= self.degrade_above_rps:
            return 0.0
        return (rate - self.degrade_above_rps) * self.degrade_ms_per_rps / 1000.0


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    windows: tuple[RateWindow, ...] = knob(
        (), "sliding windows as LIMIT/SECONDS, all enforced at once; empty = no limit"
    )
    retry_after: bool = knob(True, "send a Retry-After header with each 429")


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


def _fields(cls: type) -> list[tuple[str, Any, str]]:
    """(name, type, help) of a table's fields; the root table, whose vendor tables are only
    known at run time, lists its own with ``knob_layout``."""
    layout = getattr(cls, "knob_layout", None)
    if layout is not None:
        return typing.cast(list[tuple[str, Any, str]], layout())
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.metadata.get("help", "")) for f in dataclasses.fields(cls)]


def _is_table(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint is not RateWindow


def iter_knobs(cls: type, default_obj: Any, prefix: str = "") -> Iterator[Knob]:
    """Every leaf knob below ``cls``, in declaration order."""
    for name, hint, help_text in _fields(cls):
        value = getattr(default_obj, name)
        if _is_table(hint):
            yield from iter_knobs(hint, value, f"{prefix}{name}.")
        else:
            yield Knob(f"{prefix}{name}", hint, value, help_text)


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace``, also for the root table (which has its own ``replace``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **changes)
    return obj.replace(**changes)


def replace_path(obj: Any, parts: list[str], value: Any) -> Any:
    head, *rest = parts
    new = value if not rest else replace_path(getattr(obj, head), rest, value)
    return replace(obj, **{head: new})


def build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """A table from its TOML form, every value converted to its knob's type."""
    if not isinstance(data, Mapping):
        raise SettingsError(f"{prefix.rstrip('.') or 'settings'}: expected a table")
    hints = {name: hint for name, hint, _ in _fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            raise SettingsError(f"unknown knob {prefix}{key!r}")
        kwargs[key] = convert(value, hints[key], f"{prefix}{key}", from_text=False)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SettingsError(f"{prefix or 'settings'}: {exc}") from exc


def convert(value: Any, hint: Any, name: str, *, from_text: bool) -> Any:
    if _is_table(hint):
        if from_text:
            raise SettingsError(f"{name}: a table cannot be set from the command line")
        return build(hint, value, name + ".")
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
        return tuple(convert(p, item, name, from_text=True) for p in parts)
    if not isinstance(value, list):
        raise TypeError
    if item is RateWindow:
        return tuple(_window(v) for v in value)
    return tuple(convert(v, item, name, from_text=False) for v in value)


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
