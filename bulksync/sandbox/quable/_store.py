"""Quable's records: documents, assets, files and links, one link visible through v4 and v5."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bulksync.sandbox._store import now_iso

Kind = Literal["document", "asset"]


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
