"""Quable's seed: ``seed_documents`` counted documents, then the ``documents_file`` rows:
``{"id": "shoe", "documentType": "product", "attributes": {...}}`` (``documentType`` may also
be ``{"id": "product"}``)."""

from __future__ import annotations

from typing import Any

from bulksync.sandbox._seed import lines
from bulksync.sandbox._settings import SettingsError
from bulksync.sandbox._store import now_iso
from bulksync.sandbox.quable._settings import QuableSettings
from bulksync.sandbox.quable._store import QuableStore


def seed(store: QuableStore, knobs: QuableSettings) -> None:
    for i in range(1, knobs.seed_documents + 1):
        _add_document(store, f"doc-{i:05d}", knobs.document_type, {})
    if knobs.documents_file:
        for number, row in lines(knobs.documents_file):
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


def _add_document(
    store: QuableStore, doc_id: str, doc_type: str, attributes: dict[str, Any]
) -> None:
    stamp = now_iso()
    store.documents[doc_id] = {
        "id": doc_id,
        "documentType": doc_type,
        "attributes": attributes,
        "classifications": [],
        "active": True,
        "dateCreated": stamp,
        "dateModified": stamp,
        "legacyId": store.next_legacy_id(),
    }
