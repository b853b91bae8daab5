"""Propeller's records: resources by class (with their source keys) and links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# from class, from id, to class, to id, then type and subtype ("" when not part of the
# identity chosen by propeller.link_identity)
LinkKey = tuple[str, int, str, int, str, str]


@dataclass
class PropellerStore:
    # class ("product", "category", "company", ...) -> Propeller id -> resource
    resources: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    # (class, source, sourceId) -> Propeller id; sourceIds are case-sensitive like lookup keys.
    by_source: dict[tuple[str, str, str], int] = field(default_factory=dict)
    links: dict[int, dict[str, Any]] = field(default_factory=dict)
    link_keys: dict[LinkKey, int] = field(default_factory=dict)
    next_link_id: int = 1

    def add_resource(self, cls: str, record: dict[str, Any]) -> None:
        self.resources.setdefault(cls, {})[record["id"]] = record
        self.by_source[(cls, record["source"], record["sourceId"])] = record["id"]

    def export(self) -> dict[str, Any]:
        return {
            "resources": {c: list(r.values()) for c, r in self.resources.items()},
            "links": list(self.links.values()),
        }

    def sizes(self) -> dict[str, int]:
        plural = {"category": "categories", "company": "companies"}
        sizes = {plural.get(cls, cls + "s"): len(items) for cls, items in self.resources.items()}
        sizes["links"] = len(self.links)
        return sizes
