"""The conformance suite on the built-in connectors, against the in-repo sandbox."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from bulksync.connectors.ocapi import SPEC as OCAPI_SPEC
from bulksync.connectors.propeller import SPEC as PROPELLER_SPEC
from bulksync.connectors.quable import SPEC as QUABLE_SPEC
from bulksync.sandbox import Sandbox, SandboxSettings, running_sandbox
from bulksync.testing import Subject, conformance_tests

TOKEN_ENV, ID_ENV, SECRET_ENV = "CONFORM_TOKEN", "CONFORM_ID", "CONFORM_SECRET"
ENV = {TOKEN_ENV: "sandbox-token", ID_ENV: "sandbox", SECRET_ENV: "sandbox"}
LOGINS = ("/oauth2/", "/dwsso/", "/api/auth")
OCAPI_TYPES = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")


def sandbox(overrides: Mapping[str, str]) -> Any:
    return lambda: running_sandbox(SandboxSettings().with_overrides(dict(overrides)))


def url(handle: Sandbox) -> str:
    return handle.url


def quable_tables(links_api: str) -> Any:
    def tables(root: str) -> dict[str, dict[str, Any]]:
        return {
            "target": {"kind": "quable", "base_url": root, "token_env": TOKEN_ENV},
            "quable": {"links_api": links_api, "list_page_size": 5},
        }

    return tables


def quable_rows(n: int) -> list[dict[str, Any]]:
    return [
        # Four origins: v4 sends one request per origin document, so a run makes several.
        {"from": f"doc-{1 + i % 4:05d}", "to": f"doc-{i + 5:05d}", "type": "ref", "sequence": i}
        for i in range(n)
    ]


def quable_held(handle: Sandbox) -> Sequence[Hashable]:
    links = handle.state.store.quable.links.values()
    return [(x["origin"], x["linkType"], x["target"]) for x in links]


def quable(links_api: str) -> Subject:
    return Subject(
        name=f"quable_{links_api}",
        server=sandbox(
            {
                "quable.seed_documents": "60",
                "quable.duplicate_links": "allow",  # no 409 to save a repeated create
                "quable.rate_limit.windows": "off",
            }
        ),
        url=url,
        tables=quable_tables(links_api),
        rows=quable_rows,
        held=quable_held,
        identity=lambda row: (row["from"], row["type"], row["to"]),
        spec=QUABLE_SPEC,
        groups=links_api == "v4",  # v4 sends a document's links in one request
        env=ENV,
        spare=LOGINS,
    )


def propeller_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "from": {"class": "product", "id": 1 + i // 9},
            "to": {"class": "product", "id": 11 + i % 9},
            "type": "related",
        }
        for i in range(n)
    ]


def propeller_held(handle: Sandbox) -> Sequence[Hashable]:
    links = handle.state.store.propeller.links.values()
    return [(x["from"]["id"], x["to"]["id"]) for x in links]


PROPELLER = Subject(
    name="propeller",
    server=sandbox({"propeller.seed_products": "30"}),
    url=url,
    tables=lambda root: {
        "target": {
            "kind": "propeller",
            "base_url": root + "/v2",
            "client_id_env": ID_ENV,
            "client_secret_env": SECRET_ENV,
        },
        "propeller": {"subtype": "bulksync", "chunk": 5},
    },
    rows=propeller_rows,
    held=propeller_held,
    identity=lambda row: (row["from"]["id"], row["to"]["id"]),
    spec=PROPELLER_SPEC,
    env=ENV,
    spare=LOGINS,
)


def ocapi_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "from": {"catalog": "catalog-1", "category": f"category-{1 + i // 10:04d}"},
            "to": {"catalog": "catalog-2", "category": f"category-{1 + i % 10:04d}"},
            "type": OCAPI_TYPES[i % len(OCAPI_TYPES)],
            "sequence": i + 1,
        }
        for i in range(n)
    ]


def ocapi_held(handle: Sandbox) -> Sequence[Hashable]:
    return [
        (*source, *target)
        for source, targets in handle.state.store.ocapi.links.items()
        for target in targets
    ]


def ocapi_identity(row: dict[str, Any]) -> tuple[str, ...]:
    source, target = row["from"], row["to"]
    return (source["catalog"], source["category"], target["catalog"], target["category"])


OCAPI = Subject(
    name="ocapi",
    server=sandbox({"ocapi.seed_categories": "20"}),
    url=url,
    tables=lambda root: {
        "target": {
            "kind": "ocapi",
            "base_url": root,
            "client_id_env": ID_ENV,
            "client_secret_env": SECRET_ENV,
        },
        "ocapi": {"token_url": "/dwsso/oauth2/access_token", "list_page_size": 5},
    },
    rows=ocapi_rows,
    held=ocapi_held,
    identity=lambda row: (*ocapi_identity(row), row["type"]),
    spec=OCAPI_SPEC,
    env=ENV,
    spare=LOGINS,
)

TestQuableV5 = conformance_tests(quable("v5"))
TestQuableV4 = conformance_tests(quable("v4"))
TestPropeller = conformance_tests(PROPELLER)
TestOcapi = conformance_tests(OCAPI)
