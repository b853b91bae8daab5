"""OCAPI listing reaches the last documented start (999), so up to 999 + count links of one
category are listed for --full and --full --prune."""

from __future__ import annotations

from bulksync.connectors.ocapi._listing import OcapiLister
from bulksync.spi._http import HttpRequest

from .scripted import reply

DATA = "s/-/dw/data/v23_2"


def _member(i: int) -> dict[str, object]:
    return {
        "_type": "category_link",
        "link": f"https://h/{DATA}/catalogs/C/categories/K/category_links/T/U{i}/other",
        "position": float(i),
        "source_catalog_id": "C",
        "source_category_id": "K",
        "target_catalog_id": "T",
        "target_category_id": f"U{i}",
        "type": "other",
    }


def test_ocapi_listing_asks_for_the_last_documented_start() -> None:
    lister = OcapiLister(DATA)  # default page size 200
    url = f"{DATA}/catalogs/C/categories/K/category_links?start=800&count=200"
    body = {
        "count": 200,
        "data": [_member(i) for i in range(800, 1000)],
        "start": 800,
        "total": 1199,
    }
    page = lister.read_page("link", HttpRequest("GET", url), reply(200, body))
    # start=999 is within the documented 0-999: links 999..1198 can still be read.
    assert page.next is not None, "the listing ends at 1,000 links, README says 1,199"
    assert "start=999" in page.next.url
