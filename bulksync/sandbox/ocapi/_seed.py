"""OCAPI's seed: counted catalogs with their categories, then the ``catalogs_file`` rows:
``{"catalog_id": "storefront", "name": "..."}`` or
``{"catalog_id": "storefront", "category_id": "shoes", "name": "..."}``."""

from __future__ import annotations

from bulksync.sandbox._seed import lines
from bulksync.sandbox._settings import SettingsError
from bulksync.sandbox.ocapi._settings import OcapiSettings
from bulksync.sandbox.ocapi._store import OcapiStore


def seed(store: OcapiStore, knobs: OcapiSettings) -> None:
    for c in range(1, knobs.seed_catalogs + 1):
        catalog_id = f"catalog-{c}"
        store.add_catalog(catalog_id, f"Catalog {c}")
        store.add_category(catalog_id, "root", "Root")
        for k in range(1, knobs.seed_categories + 1):
            store.add_category(catalog_id, f"category-{k:04d}", f"Category {k:04d}")
    if knobs.catalogs_file:
        for number, row in lines(knobs.catalogs_file):
            row_catalog, category_id = row.get("catalog_id"), row.get("category_id")
            name = row.get("name")
            if not isinstance(row_catalog, str) or not row_catalog:
                raise SettingsError(f"{knobs.catalogs_file}:{number}: need a string catalog_id")
            if name is not None and not isinstance(name, str):
                raise SettingsError(f"{knobs.catalogs_file}:{number}: name must be a string")
            if category_id is None:
                store.add_catalog(row_catalog, name)
            elif isinstance(category_id, str) and category_id:
                store.add_category(row_catalog, category_id, name)
            else:
                raise SettingsError(f"{knobs.catalogs_file}:{number}: bad category_id")
