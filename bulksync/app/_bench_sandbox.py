"""`bulksync bench --sandbox`: the embedded sandbox's Quable as the target, no account needed.

Its rate windows are off (the knee is then the server's, not Quable's documented 10 req/s),
its answers take about ``latency_ms``, and above ``degrade_above`` req/s they slow down
(``quable.latency.degrade_above_rps``), so the ramp has a knee to find. Any other knob is
``--sandbox-set quable.rate_limit.windows=6000/600`` and the like.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bulksync.app.config import Config, OutputConfig, TargetConfig
from bulksync.sandbox import Sandbox, SandboxSettings, SettingsError
from bulksync.spi._errors import ConfigError

TOKEN_ENV = "BULKSYNC_BENCH_SANDBOX_TOKEN"
SANDBOX_TOKEN = "sandbox-token"  # the sandbox's own static token (bulksync.sandbox)


def sandbox_settings(
    latency_ms: float, degrade_above: float, assignments: Sequence[str]
) -> SandboxSettings:
    overrides = {
        "quable.rate_limit.windows": "off",
        "quable.latency.fixed_ms": str(latency_ms),
        "quable.latency.degrade_above_rps": str(degrade_above),
        "quable.seed_documents": "0",
    }
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise ConfigError(f"--sandbox-set takes KNOB=VALUE, got '{assignment}'")
        overrides[name.strip()] = value.strip()
    try:
        return SandboxSettings().with_overrides(overrides)
    except SettingsError as exc:
        raise ConfigError(f"--sandbox-set: {exc}") from None


def sandbox_config(url: str, runs_dir: Path) -> Config:
    """The job a bench runs against the embedded sandbox; its run folder goes in ``runs_dir``."""
    # The sandbox's own demo token; real credentials only ever come from the environment.
    os.environ.setdefault(TOKEN_ENV, SANDBOX_TOKEN)
    return Config(
        target=TargetConfig(kind="quable", base_url=url, token_env=TOKEN_ENV),
        output=OutputConfig(results=runs_dir.absolute() / "results.jsonl", runs_dir=Path(".")),
    )


def leftovers(sandbox: Sandbox, prefix: str) -> list[str]:
    """The ids under ``prefix`` the sandbox still holds, read from its export: what the bench
    says it cleaned up, checked on the server's side."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ident = value.get("id")
            if isinstance(ident, str) and ident.startswith(prefix):
                found.append(ident)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(sandbox.state.store.export())
    return sorted(set(found))
