"""The vendors' own example requests and answers, stored as test fixtures.

Each file under ``tests/fixtures/docs/<vendor>/`` is one example a vendor page shows, with the
page it comes from, so a change that drifts from the documentation fails a test. Layout:

    {"source": "https://...",        # the page the example is taken from
     "note": "...",                  # optional: what the example shows, or how it was adapted
     "request": {"method", "path", "headers"?, "json"? | "form"?},   # an example request, or
     "response": {"status", "headers"?, "json"? | "text"?}}          # an example answer

Examples are copied as the page shows them; where a page elides part of a body ("...") the
fixture keeps only what the page shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from bulksync.spi._http import HttpResponse

FIXTURES = Path(__file__).parent / "fixtures" / "docs"


def load(vendor: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / vendor / f"{name}.json").read_bytes())
    assert str(data.get("source", "")).startswith("https://"), f"{vendor}/{name}: no source page"
    return data


def names(vendor: str) -> list[str]:
    return sorted(p.stem for p in (FIXTURES / vendor).glob("*.json"))


def response(vendor: str, name: str) -> HttpResponse:
    """The fixture's answer as the transport would hand it to a connector."""
    answer = load(vendor, name)["response"]
    headers = {k.lower(): v for k, v in answer.get("headers", {}).items()}
    if "json" in answer:
        body = orjson.dumps(answer["json"])
        headers.setdefault("content-type", "application/json")
    else:
        body = str(answer.get("text", "")).encode()
    return HttpResponse(int(answer["status"]), headers, body)
