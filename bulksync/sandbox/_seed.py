"""Fill a fresh store: each vendor seeds its own part from its knobs (counted records, then
JSONL files); this module holds the JSONL reader they share.

Seed files have one JSON object per line; blank lines and lines starting with # are skipped.
Each vendor's ``_seed.py`` documents its own file format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bulksync.sandbox._settings import SandboxSettings, SettingsError
from bulksync.sandbox._store import Store
from bulksync.sandbox._vendor import SandboxVendor


def seed(store: Store, settings: SandboxSettings, vendors: Sequence[SandboxVendor]) -> None:
    for vendor in vendors:
        vendor.seed(getattr(store, vendor.name), getattr(settings, vendor.name))


def lines(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"seed file {path}: {exc}") from exc
    for number, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise SettingsError(f"{path}:{number}: invalid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise SettingsError(f"{path}:{number}: expected a JSON object")
        yield number, value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
