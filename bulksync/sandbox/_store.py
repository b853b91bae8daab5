"""The in-memory store: one part per vendor, each in the vendor's own compact form.

Route modules render records to each API's wire shape, so the parts hold no wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from bulksync.sandbox._vendor import VendorStore

T = TypeVar("T")


def now_iso() -> str:
    """ISO 8601 to the second: ``2023-11-14T10:58:01+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Every vendor's records; ``store.quable`` (untyped) or ``store.of(QuableStore)``."""

    def __init__(self, parts: Mapping[str, VendorStore]) -> None:
        self._parts = dict(parts)
        self._by_type: dict[type, VendorStore] = {type(p): p for p in self._parts.values()}

    def __getattr__(self, name: str) -> Any:
        parts = self.__dict__.get("_parts", {})
        if name in parts:
            return parts[name]
        raise AttributeError(f"the store has no part {name!r}")

    def of(self, kind: type[T]) -> T:
        part: Any = self._by_type[kind]
        typed: T = part
        return typed

    def export(self) -> dict[str, Any]:
        return {name: part.export() for name, part in self._parts.items()}

    def sizes(self) -> dict[str, dict[str, int]]:
        return {name: part.sizes() for name, part in self._parts.items()}
