"""OCAPI's records: catalogs with their categories, and category links."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_ocapi() -> str:
    """OCAPI style: ``2015-11-19T15:15:24.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


CategoryKey = tuple[str, str]  # catalog id, category id
TargetKey = tuple[str, str, str]  # target catalog id, target category id, link type


@dataclass
class OcapiStore:
    # catalog id -> {"id", "name": {"default": ...}, "categories": {id: {"id", "name"}}}
    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[CategoryKey, dict[TargetKey, dict[str, Any]]] = field(default_factory=dict)

    def add_category(self, catalog_id: str, category_id: str, name: str | None = None) -> None:
        catalog = self.add_catalog(catalog_id)
        catalog["categories"][category_id] = {
            "id": category_id,
            "name": {"default": name or category_id},
        }

    def add_catalog(self, catalog_id: str, name: str | None = None) -> dict[str, Any]:
        catalog = self.catalogs.get(catalog_id)
        if catalog is None:
            catalog = {"id": catalog_id, "name": {"default": name or catalog_id}, "categories": {}}
            self.catalogs[catalog_id] = catalog
        elif name:
            catalog["name"] = {"default": name}
        return catalog

    def link_count(self) -> int:
        return sum(len(targets) for targets in self.links.values())

    def export(self) -> dict[str, Any]:
        catalogs = [
            {"id": c["id"], "name": c["name"], "categories": list(c["categories"].values())}
            for c in self.catalogs.values()
        ]
        links = [
            {
                "source_catalog_id": src[0],
                "source_category_id": src[1],
                "target_catalog_id": tgt[0],
                "target_category_id": tgt[1],
                "type": tgt[2],
                **record,
            }
            for src, targets in self.links.items()
            for tgt, record in targets.items()
        ]
        return {"catalogs": catalogs, "category_links": links}

    def sizes(self) -> dict[str, int]:
        return {
            "catalogs": len(self.catalogs),
            "categories": sum(len(c["categories"]) for c in self.catalogs.values()),
            "category_links": self.link_count(),
        }
