"""Fill a fresh store from the seeding knobs: counted records, then JSONL files.

File formats (one JSON object per line; blank lines and lines starting with # are skipped):

- Quable documents: ``{"id": "shoe", "documentType": "product", "attributes": {...}}``
  (``documentType`` may also be ``{"id": "product"}``).
- Propeller resources: ``{"class": "product", "id": 42, "sourceId": "SKU-42", "source": "ERP",
  "language": "NL", "name": "..."}`` (``class`` product, category, company, contact or user,
  product by default; ``sourceId``/``source`` to ``PRODUCT-42`` and the ``propeller.source``
  knob).
- OCAPI catalogs: ``{"catalog_id": "storefront", "name": "..."}`` or
  ``{"catalog_id": "storefront", "category_id": "shoes", "name": "..."}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ._settings import SandboxSettings, SettingsError
from ._store import Store, now_iso

# The docs' account links go from a user or a contact to a company.
ACCOUNT_CLASSES = ("company", "contact", "user")
SEEDED_CLASSES = ("product", "category", *ACCOUNT_CLASSES)


def seed(store: Store, settings: SandboxSettings) -> None:
    _seed_quable(store, settings)
    _seed_propeller(store, settings)
    _seed_ocapi(store, settings)


def _lines(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
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


def _seed_quable(store: Store, settings: SandboxSettings) -> None:
    knobs = settings.quable
    for i in range(1, knobs.seed_documents + 1):
        _add_document(store, f"doc-{i:05d}", knobs.document_type, {})
    if knobs.documents_file:
        for number, row in _lines(knobs.documents_file):
            doc_id, doc_type = row.get("id"), row.get("documentType", knobs.document_type)
            if isinstance(doc_type, dict):
                doc_type = doc_type.get("id")
            attributes = row.get("attributes", {})
            if not isinstance(doc_id, str) or not doc_id or not isinstance(doc_type, str):
                raise SettingsError(
                    f"{knobs.documents_file}:{number}: need a string id and documentType"
                )
            if not isinstance(attributes, dict):
                raise SettingsError(
                    f"{knobs.documents_file}:{number}: attributes must be an object"
                )
            _add_document(store, doc_id, doc_type, attributes)


def _add_document(store: Store, doc_id: str, doc_type: str, attributes: dict[str, Any]) -> None:
    stamp = now_iso()
    store.quable.documents[doc_id] = {
        "id": doc_id,
        "documentType": doc_type,
        "attributes": attributes,
        "classifications": [],
        "active": True,
        "dateCreated": stamp,
        "dateModified": stamp,
        "legacyId": store.quable.next_legacy_id(),
    }


def _seed_propeller(store: Store, settings: SandboxSettings) -> None:
    knobs = settings.propeller
    counts = (
        ("product", knobs.seed_products),
        ("category", knobs.seed_categories),
        *((cls, knobs.seed_accounts) for cls in ACCOUNT_CLASSES),
    )
    for cls, count in counts:
        for i in range(1, count + 1):
            store.propeller.add_resource(
                cls,
                {
                    "id": i,
                    "sourceId": f"{cls.upper()}-{i:05d}",
                    "source": knobs.source,
                    "language": knobs.language,
                    "name": f"{cls.title()} {i}",
                },
            )
    if knobs.resources_file:
        for number, row in _lines(knobs.resources_file):
            cls = row.get("class", "product")
            res_id = row.get("id")
            if cls not in SEEDED_CLASSES or not _is_int(res_id):
                raise SettingsError(
                    f"{knobs.resources_file}:{number}: need class {'|'.join(SEEDED_CLASSES)}"
                    " and an integer id"
                )
            source_id = row.get("sourceId", f"{cls.upper()}-{res_id}")
            source = row.get("source", knobs.source)
            if not isinstance(source_id, str) or not isinstance(source, str):
                raise SettingsError(f"{knobs.resources_file}:{number}: sourceId/source: strings")
            store.propeller.add_resource(
                cls,
                {
                    "id": res_id,
                    "sourceId": source_id,
                    "source": source,
                    "language": row.get("language", knobs.language),
                    "name": row.get("name", f"{cls.title()} {res_id}"),
                },
            )


def _seed_ocapi(store: Store, settings: SandboxSettings) -> None:
    knobs = settings.ocapi
    for c in range(1, knobs.seed_catalogs + 1):
        catalog_id = f"catalog-{c}"
        store.ocapi.add_catalog(catalog_id, f"Catalog {c}")
        store.ocapi.add_category(catalog_id, "root", "Root")
        for k in range(1, knobs.seed_categories + 1):
            store.ocapi.add_category(catalog_id, f"category-{k:04d}", f"Category {k:04d}")
    if knobs.catalogs_file:
        for number, row in _lines(knobs.catalogs_file):
            row_catalog, category_id = row.get("catalog_id"), row.get("category_id")
            name = row.get("name")
            if not isinstance(row_catalog, str) or not row_catalog:
                raise SettingsError(f"{knobs.catalogs_file}:{number}: need a string catalog_id")
            if name is not None and not isinstance(name, str):
                raise SettingsError(f"{knobs.catalogs_file}:{number}: name must be a string")
            if category_id is None:
                store.ocapi.add_catalog(row_catalog, name)
            elif isinstance(category_id, str) and category_id:
                store.ocapi.add_category(row_catalog, category_id, name)
            else:
                raise SettingsError(f"{knobs.catalogs_file}:{number}: bad category_id")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
