"""The target scenarios of ``python -m benchmarks`` (issue 6): Propeller bulk links, and OCAPI's
batch API against its single calls, each returning its figures.

Same conventions as ``benchmarks.scenarios``: the sandbox runs in its own process, every client
run is a fresh pinned process (``benchmarks._clients bulksync`` with ``kind`` set to the target),
requests are counted by the sandbox, and every run creates links that do not exist yet.
``benchmarks.runner`` merges this module's registries with those of ``benchmarks.scenarios``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._harness import Figure, Sandbox
from .scenarios import Context, measured

LATENCY_MS = 20.0
WORKERS = 16  # bulksync's default concurrency


@dataclass(frozen=True, slots=True)
class TargetSizes:
    propeller_links: int
    ocapi_links: int  # per run: once with single PUTs, once with the batch API


FULL = TargetSizes(propeller_links=10_000, ocapi_links=5_000)
SMOKE = TargetSizes(propeller_links=300, ocapi_links=200)


def sizes(smoke: bool) -> TargetSizes:
    return SMOKE if smoke else FULL


def statuses_on(
    before: dict[str, Any], after: dict[str, Any], match: Callable[[str], bool]
) -> dict[str, int]:
    """Answers per status between two ``/_sandbox/stats`` snapshots, on the routes ``match``
    picks."""
    counts: dict[str, int] = {}
    for sign, snapshot in ((-1, before), (1, after)):
        for route, outcomes in snapshot["requests"].items():
            if match(route):
                for status, n in outcomes.items():
                    counts[status] = counts.get(status, 0) + sign * n
    return {status: n for status, n in sorted(counts.items()) if n}


def requests_on(before: dict[str, Any], after: dict[str, Any], match: Callable[[str], bool]) -> int:
    """Requests between two ``/_sandbox/stats`` snapshots on the routes ``match`` picks."""
    return sum(statuses_on(before, after, match).values())


def _run(
    ctx: Context, sandbox: Sandbox, kind: str, links: Path, tag: str, timeout_s: float, **args: Any
) -> dict[str, Any]:
    """One bulksync run against ``sandbox``, with the sandbox's stats before and after it."""
    before = sandbox.stats()
    client = {"kind": kind, "links": str(links), "tag": tag, "concurrency": WORKERS, "rate": []}
    report = measured(ctx, sandbox, "bulksync", {**client, **args}, timeout_s)
    report["stats"] = (before, sandbox.stats())
    links.unlink()
    for results in ctx.folder.glob(f"results-{tag}*"):
        results.unlink()
    return report


# -- 7. Propeller bulk links ---------------------------------------------------------------------

PROPELLER_CHUNK = 100
PROPELLER_BULK_ROUTE = "POST /links/bulk/{lookupKey}"
PROPELLER_TOKEN_ROUTE = "POST /oauth2/token"


def products_for(links: int) -> int:
    """The fewest products whose ordered pairs (a -> b, a != b) give ``links`` distinct links."""
    products = 2
    while products * (products - 1) < links:
        products += 1
    return products


def write_product_links(path: Path, count: int, products: int) -> Path:
    """``count`` distinct `related` links between products 1..``products``, grouped by origin."""
    with open(path, "w", encoding="utf-8") as out:
        written = 0
        for origin in range(1, products + 1):
            for target in range(1, products + 1):
                if written == count:
                    return path
                if origin != target:
                    link = {
                        "from": {"class": "product", "id": origin},
                        "to": {"class": "product", "id": target},
                        "type": "related",
                    }
                    out.write(json.dumps(link) + "\n")
                    written += 1
    if written < count:
        raise ValueError("more links than distinct product pairs")
    return path


def propeller_links(ctx: Context) -> list[Figure]:
    """Links by id through ``POST /links/bulk/id``, 100 per call, 20 ms per answer."""
    n = sizes(ctx.smoke).propeller_links
    products = products_for(n)
    tag = ctx.tag("propeller")
    links = write_product_links(ctx.folder / f"links-{tag}.jsonl", n, products)
    with ctx.sandbox(
        "--propeller-latency-fixed-ms", str(LATENCY_MS),
        "--propeller-seed-products", str(products),
    ) as sandbox:  # fmt: skip
        report = _run(
            ctx, sandbox, "propeller", links, tag, 60 + n / 50,
            propeller={"chunk": PROPELLER_CHUNK, "subtype": "bulksync"},
        )  # fmt: skip
    before, after = report["stats"]
    bulk = requests_on(before, after, lambda route: route == PROPELLER_BULK_ROUTE)
    s = "propeller_links"
    detail = {
        "links": n,
        "products": products,
        "chunk": PROPELLER_CHUNK,
        "workers": WORKERS,
        "latency_ms": LATENCY_MS,
        "fewest_bulk_requests": math.ceil(n / PROPELLER_CHUNK),
        "token_requests": requests_on(before, after, lambda r: r == PROPELLER_TOKEN_ROUTE),
        "succeeded": report["succeeded"],
        "failed": report["failed"],
        "client_requests": report["requests"],
        "client_cpu_us_per_item": report["cpu_us_per_item"],
        "server_cpu_share": report.get("server_cpu_share"),
    }
    return [
        Figure(s, "items_per_s", round(report["items_per_s"], 1), "items/s", detail=detail),
        Figure(s, "bulk_requests", bulk, "requests"),
        Figure(s, "calls_per_item", round(bulk / n, 4), "calls/item"),
    ]


# -- 8. OCAPI batch against single calls ---------------------------------------------------------

OCAPI_TYPES = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
OCAPI_BATCH_SIZE = 50
OCAPI_BATCH_ROUTE = "POST /s/-/dw/batch"
OCAPI_TOKEN_ROUTE = "POST /dwsso/oauth2/access_token"
OCAPI_SECTION = {"token_url": "/dwsso/oauth2/access_token"}  # the sandbox's own token route


def categories_for(links: int) -> int:
    """Categories per catalog such that two catalogs hold ``links`` distinct category links."""
    categories = 1
    while 2 * categories * (2 * categories - 1) * len(OCAPI_TYPES) < links:
        categories += 1
    return categories


def write_category_links(
    path: Path, count: int, catalogs: tuple[int, int], categories: int
) -> Path:
    """``count`` distinct category links among the categories of two catalogs, never a category
    to itself, five link types per pair; ``sequence`` fills the position."""
    ends = [(c, k) for c in catalogs for k in range(1, categories + 1)]
    pairs = ((a, b) for a in ends for b in ends if a != b)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            if i % len(OCAPI_TYPES) == 0:
                (fc, fk), (tc, tk) = next(pairs)  # StopIteration: categories_for() was not used
            link = {
                "from": {"catalog": f"catalog-{fc}", "category": f"category-{fk:04d}"},
                "to": {"catalog": f"catalog-{tc}", "category": f"category-{tk:04d}"},
                "type": OCAPI_TYPES[i % len(OCAPI_TYPES)],
                "sequence": i + 1,
            }
            out.write(json.dumps(link) + "\n")
    return path


def _is_link_call(route: str) -> bool:
    """An HTTP request that carries links: not the token, not a batch's part, not inspection."""
    return not (route.endswith(" (batch)") or " /_sandbox/" in route or route == OCAPI_TOKEN_ROUTE)


def ocapi_batch(ctx: Context) -> list[Figure]:
    """The same number of category links, with one PUT each and through the batch API."""
    n = sizes(ctx.smoke).ocapi_links
    categories = categories_for(n)
    runs: dict[str, dict[str, Any]] = {}
    calls: dict[str, int] = {}
    with ctx.sandbox(
        "--ocapi-latency-fixed-ms", str(LATENCY_MS),
        "--ocapi-seed-catalogs", "4",  # catalogs 1 and 2 for the single PUTs, 3 and 4 for batches
        "--ocapi-seed-categories", str(categories),
    ) as sandbox:  # fmt: skip
        for mode, catalogs, options in (
            ("single", (1, 2), {"batch": False}),
            ("batch", (3, 4), {"batch": True, "batch_size": OCAPI_BATCH_SIZE}),
        ):
            tag = ctx.tag(f"ocapi-{mode}")
            links = write_category_links(ctx.folder / f"links-{tag}.jsonl", n, catalogs, categories)
            report = _run(
                ctx, sandbox, "ocapi", links, tag, 60 + n / 20,
                ocapi={**OCAPI_SECTION, **options},
            )  # fmt: skip
            before, after = report["stats"]
            calls[mode] = requests_on(before, after, _is_link_call)
            report["batch_requests"] = requests_on(before, after, lambda r: r == OCAPI_BATCH_ROUTE)
            report["statuses"] = statuses_on(before, after, _is_link_call)
            report["part_statuses"] = statuses_on(before, after, lambda r: r.endswith(" (batch)"))
            report["token_requests"] = requests_on(before, after, lambda r: r == OCAPI_TOKEN_ROUTE)
            runs[mode] = report
    single, batch = runs["single"], runs["batch"]
    s = "ocapi_batch"
    detail = {
        "links": n,
        "categories_per_catalog": categories,
        "batch_size": OCAPI_BATCH_SIZE,
        "workers": WORKERS,
        "latency_ms": LATENCY_MS,
        "single_requests": calls["single"],
        "batch_requests": batch["batch_requests"],
        "single_statuses": single["statuses"],  # 200: every PUT, as the spec lists
        "batch_statuses": batch["statuses"],
        "batch_part_statuses": batch["part_statuses"],
        "fewest_batch_requests": math.ceil(n / OCAPI_BATCH_SIZE),
        "token_requests": [single["token_requests"], batch["token_requests"]],
        "failed": [single["failed"], batch["failed"]],
        "client_cpu_us_per_item": [single["cpu_us_per_item"], batch["cpu_us_per_item"]],
        "server_cpu_share": [single.get("server_cpu_share"), batch.get("server_cpu_share")],
    }
    return [
        Figure(s, "single_items_per_s", round(single["items_per_s"], 1), "items/s", detail=detail),
        Figure(s, "batch_items_per_s", round(batch["items_per_s"], 1), "items/s"),
        Figure(s, "single_calls_per_item", round(calls["single"] / n, 4), "calls/item"),
        Figure(s, "batch_calls_per_item", round(calls["batch"] / n, 4), "calls/item"),
        Figure(s, "batch_speedup", round(batch["items_per_s"] / single["items_per_s"], 2), "x"),
    ]


SCENARIOS: dict[str, Callable[[Context], list[Figure]]] = {
    "propeller_links": propeller_links,
    "ocapi_batch": ocapi_batch,
}

METRICS: dict[str, tuple[str, ...]] = {
    "propeller_links": ("items_per_s", "bulk_requests", "calls_per_item"),
    "ocapi_batch": (
        "single_items_per_s", "batch_items_per_s", "single_calls_per_item",
        "batch_calls_per_item", "batch_speedup",
    ),
}  # fmt: skip

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("propeller_links", "items_per_s"): "links/s, POST /links/bulk/id, 100 per call",
    ("propeller_links", "bulk_requests"): "bulk calls counted by the sandbox",
    ("propeller_links", "calls_per_item"): "bulk calls ÷ links",
    ("ocapi_batch", "single_items_per_s"): "links/s, one PUT per category link",
    ("ocapi_batch", "batch_items_per_s"): "links/s, batch API, 50 per call",
    ("ocapi_batch", "single_calls_per_item"): "calls ÷ links, single PUTs",
    ("ocapi_batch", "batch_calls_per_item"): "calls ÷ links, batch API",
    ("ocapi_batch", "batch_speedup"): "batch ÷ single, links/s",
}

NOTES = """
7. **propeller_links**: {propeller:,} `related` links between products 1..{products}, each a
   distinct ordered pair of `{{class, id}}`, through `POST /links/bulk/id` with
   `[propeller] chunk = 100`, {workers} workers, no rate limit; the Propeller sandbox answers
   in {latency:g} ms. Links/s is the bulksync process's whole run (OAuth token included); bulk
   calls are counted by the sandbox, the one token request aside.
8. **ocapi_batch**: {ocapi:,} category links (between the categories of two catalogs, five
   link types per pair) sent once with one `PUT .../category_links/...` each and once through
   `POST /s/-/dw/batch` (`[ocapi] batch = true`, `batch_size = 50`), {workers} workers, no rate
   limit, OCAPI sandbox latency {latency:g} ms. Both runs use one sandbox but catalogs of their
   own (1 and 2, then 3 and 4), so every link is a real create. Calls are the HTTP requests
   the sandbox counted (a batch's sub-requests and the token request aside); speedup = batch
   links/s ÷ single links/s.
"""


def notes(smoke: bool) -> str:
    size = sizes(smoke)
    return NOTES.format(
        propeller=size.propeller_links,
        products=products_for(size.propeller_links),
        ocapi=size.ocapi_links,
        workers=WORKERS,
        latency=LATENCY_MS,
    )
