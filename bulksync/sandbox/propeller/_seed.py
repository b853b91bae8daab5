"""Propeller's seed: counted products, categories and account resources, then the
``resources_file`` rows: ``{"class": "product", "id": 42, "sourceId": "SKU-42", "source":
"ERP", "language": "NL", "name": "..."}`` (``class`` product, category, company, contact or
user, product by default; ``sourceId``/``source`` default to ``PRODUCT-42`` and the
``propeller.source`` knob)."""

from __future__ import annotations

from bulksync.sandbox._seed import is_int, lines
from bulksync.sandbox._settings import SettingsError
from bulksync.sandbox.propeller._settings import PropellerSettings
from bulksync.sandbox.propeller._store import PropellerStore

# The docs' account links go from a user or a contact to a company.
ACCOUNT_CLASSES = ("company", "contact", "user")
SEEDED_CLASSES = ("product", "category", *ACCOUNT_CLASSES)


def seed(store: PropellerStore, knobs: PropellerSettings) -> None:
    counts = (
        ("product", knobs.seed_products),
        ("category", knobs.seed_categories),
        *((cls, knobs.seed_accounts) for cls in ACCOUNT_CLASSES),
    )
    for cls, count in counts:
        for i in range(1, count + 1):
            store.add_resource(
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
        for number, row in lines(knobs.resources_file):
            cls = row.get("class", "product")
            res_id = row.get("id")
            if cls not in SEEDED_CLASSES or not is_int(res_id):
                raise SettingsError(
                    f"{knobs.resources_file}:{number}: need class {'|'.join(SEEDED_CLASSES)}"
                    " and an integer id"
                )
            source_id = row.get("sourceId", f"{cls.upper()}-{res_id}")
            source = row.get("source", knobs.source)
            if not isinstance(source_id, str) or not isinstance(source, str):
                raise SettingsError(f"{knobs.resources_file}:{number}: sourceId/source: strings")
            store.add_resource(
                cls,
                {
                    "id": res_id,
                    "sourceId": source_id,
                    "source": source,
                    "language": row.get("language", knobs.language),
                    "name": row.get("name", f"{cls.title()} {res_id}"),
                },
            )
