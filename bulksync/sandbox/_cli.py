"""The ``bulksync sandbox`` command line: --host, --port, --config, and one flag per knob.

Flags are derived from the settings dataclasses (``quable.latency.fixed_ms`` becomes
``--quable-latency-fixed-ms``), so every knob of the TOML file is also a flag and flags win.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bulksync.sandbox._settings import RateWindow, SandboxSettings, knobs
from bulksync.sandbox._vendors import vendors

_PREFIX = "knob:"


@dataclass(frozen=True, slots=True)
class Options:
    host: str
    port: int
    settings: SandboxSettings


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        if value and isinstance(value[0], RateWindow):
            return ",".join(f"{w.limit}/{w.seconds:g}" for w in value)
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else "(none)"


def _titles() -> str:
    titles = [v.title for v in vendors()]
    return ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else titles[0]


def build_parser(prog: str = "bulksync sandbox") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Run a local emulator of the {_titles()} APIs.",
        epilog="Every knob can also be set in the TOML file given to --config "
        "(see config/sandbox.example.toml); flags override the file. Lists are "
        "comma-separated; rate windows are LIMIT/SECONDS pairs, or 'off'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    group = parser.add_argument_group("knobs")
    for knob in knobs():
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if knob.hint is bool else {}
        group.add_argument(
            knob.flag,
            dest=_PREFIX + knob.path,
            metavar="VALUE",
            help=f"{knob.help} (default: {_show(knob.default)})".replace("%", "%%"),
            **extra,
        )
    return parser


def parse(argv: Sequence[str] | None) -> Options:
    """Parse the command line; raises SettingsError for bad knob values, SystemExit for usage."""
    namespace = build_parser().parse_args(argv)
    settings = (
        SandboxSettings.from_toml(namespace.config) if namespace.config else SandboxSettings()
    )
    overrides = {
        dest[len(_PREFIX) :]: value
        for dest, value in vars(namespace).items()
        if dest.startswith(_PREFIX) and value is not None
    }
    return Options(namespace.host, namespace.port, settings.with_overrides(overrides))
