"""The in-memory store of the three emulated platforms.

Records are kept in a compact internal form and rendered to each API's wire shape by the route
modules, so that the same Quable link is visible through v4 and v5 alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["document", "asset"]


def now_iso() -> str:
    """Quable style: ``2023-11-14T10:58:01+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def now_ocapi() -> str:
    """OCAPI style: ``2015-11-19T15:15:24.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class QuableStore:
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (origin, linkType, target) -> first link id: duplicate detection and v4 "update" no-ops.
    _by_triple: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # (origin, linkType) -> ordered link ids: v4 "replace" without scanning every link.
    _by_origin_type: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)
    _legacy_id: int = 0
    _link_counter: int = 0

    def next_legacy_id(self) -> int:
        self._legacy_id += 1
        return self._legacy_id

    def kind_of(self, resource_id: str) -> Kind | None:
        if resource_id in self.documents:
            return "document"
        if resource_id in self.assets:
            return "asset"
        return None

    def find_link(self, origin: str, link_type: str, target: str) -> dict[str, Any] | None:
        link_id = self._by_triple.get((origin, link_type, target))
        return None if link_id is None else self.links[link_id]

    def links_of(self, origin: str, link_type: str) -> list[dict[str, Any]]:
        ids = self._by_origin_type.get((origin, link_type), {})
        return [self.links[i] for i in ids]

    def add_link(
        self,
        origin: str,
        origin_kind: Kind,
        target: str,
        target_kind: Kind,
        link_type: str,
        sequence: int,
        attributes: Any,
    ) -> dict[str, Any]:
        self._link_counter += 1
        # UUID-shaped like Quable's ids, but from a counter: the same run gives the same ids.
        link_id = f"5f6b1d2e-0000-4000-8000-{self._link_counter:012x}"
        stamp = now_iso()
        link = {
            "id": link_id,
            "origin": origin,
            "originKind": origin_kind,
            "target": target,
            "targetKind": target_kind,
            "linkType": link_type,
            "sequence": sequence,
            "attributes": attributes,
            "dateCreated": stamp,
            "dateModified": stamp,
        }
        self.links[link_id] = link
        self._by_triple.setdefault((origin, link_type, target), link_id)
        self._by_origin_type.setdefault((origin, link_type), {})[link_id] = None
        return link

    def remove_link(self, link_id: str) -> None:
        link = self.links.pop(link_id)
        pair = (link["origin"], link["linkType"])
        bucket = self._by_origin_type.get(pair)
        if bucket is not None:
            bucket.pop(link_id, None)
            if not bucket:
                del self._by_origin_type[pair]
        triple = (link["origin"], link["linkType"], link["target"])
        if self._by_triple.get(triple) == link_id:
            del self._by_triple[triple]
            # With duplicate links allowed, another link may still carry the same triple.
            for other in self.links_of(*pair):
                if other["target"] == link["target"]:
                    self._by_triple[triple] = other["id"]
                    break

    def remove_links_touching(self, resource_id: str) -> int:
        doomed = [
            i for i, link in self.links.items() if resource_id in (link["origin"], link["target"])
        ]
        for link_id in doomed:
            self.remove_link(link_id)
        return len(doomed)

    def export(self) -> dict[str, Any]:
        return {
            "documents": list(self.documents.values()),
            "assets": list(self.assets.values()),
            "files": list(self.files.values()),
            "links": list(self.links.values()),
        }

    def sizes(self) -> dict[str, int]:
        return {
            "documents": len(self.documents),
            "assets": len(self.assets),
            "files": len(self.files),
            "links": len(self.links),
        }


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


@dataclass
class Store:
    quable: QuableStore = field(default_factory=QuableStore)
    propeller: PropellerStore = field(default_factory=PropellerStore)
    ocapi: OcapiStore = field(default_factory=OcapiStore)

    def export(self) -> dict[str, Any]:
        return {
            "quable": self.quable.export(),
            "propeller": self.propeller.export(),
            "ocapi": self.ocapi.export(),
        }

    def sizes(self) -> dict[str, dict[str, int]]:
        return {
            "quable": self.quable.sizes(),
            "propeller": self.propeller.sizes(),
            "ocapi": self.ocapi.sizes(),
        }
