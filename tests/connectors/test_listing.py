"""`--full` listings: the Quable and OCAPI listers' requests, page reading and matching, and
one paging round trip each against the sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import (
    Config,
    InputsConfig,
    LimitsConfig,
    OutputConfig,
    StateConfig,
    TargetConfig,
)
from bulksync.app.demo import tiny_png
from bulksync.app.runner import run_job_async
from bulksync.app.wiring import build_target
from bulksync.connectors.ocapi._delete import DeleteLinkStage
from bulksync.connectors.ocapi._listing import OcapiLister
from bulksync.connectors.quable._listing import QuableLister
from bulksync.engine.client import EngineClient
from bulksync.engine.retry import RetryPolicy
from bulksync.inputs.readers import read_records
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._connector import Done, Job, RemoteItem, RemoteLister, RequestFailed
from bulksync.spi._errors import ErrorClass
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, LinkRecord, Origin, Record, Removal
from bulksync.store.results import RunStats

from .scripted import ScriptedClient, reply

DATA = "s/-/dw/data/v23_2"
ORIGIN = Origin("input.jsonl", 1)


def write_jsonl(path: Path, items: Sequence[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def records_of(path: Path, kind: Any) -> list[Record]:
    with read_records(path, kind) as stream:
        found = list(stream)
    assert all(isinstance(r, AssetRecord | LinkRecord) for r in found), found
    return found  # type: ignore[return-value]


def link(from_: Any, to: Any, type_: str, **kwargs: Any) -> LinkRecord:
    return LinkRecord(ORIGIN, from_, to, type_, **kwargs)


# -- Quable: shapes of seed 001 and the sandbox's renderers --------------------------------


def quable_asset(
    asset_id: str,
    *,
    classification: str | None = "dam_sort",
    attributes: Any = None,
    filename: str = "shirt.jpg",
) -> dict[str, Any]:
    """An asset member as seed 001's "Fetch assets" sample shows one."""
    return {
        "@type": "Asset",
        "@id": f"/api/assets/{asset_id}",
        "name": filename,
        "active": True,
        "attributes": [] if attributes is None else attributes,
        "url": f"https://cdn.quable.com/education-developers/{asset_id}/original/{filename}",
        "originalFilename": filename,
        "classifications": []
        if classification is None
        else [
            {
                "@type": "Classification",
                "@id": f"/api/classifications/{classification}",
                "catalogId": None,
                "id": classification,
                "legacyId": 3,
            }
        ],
        "documentLinks": [],
        "variantLinks": [],
        "id": asset_id,
        "legacyId": 176,
    }


def quable_link(
    link_id: str,
    origin: str,
    target: str,
    link_type: str,
    sequence: int = 1,
    attributes: Any = None,
) -> dict[str, Any]:
    """A link member as the sandbox renders one (the docs show only the POST body)."""
    return {
        "@context": "/api/contexts/Link",
        "@id": f"/api/links/{link_id}",
        "@type": "Link",
        "id": link_id,
        "origin": {"@id": f"/api/documents/{origin}", "@type": "Document", "id": origin},
        "target": {"@id": f"/api/assets/{target}", "@type": "Asset", "id": target},
        "linkType": {"@id": f"/api/link_types/{link_type}", "@type": "LinkType", "id": link_type},
        "attributes": [] if attributes is None else attributes,
        "sequence": sequence,
    }


def collection(members: list[Any], next_path: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"@id": "/api/assets?page=1", "@type": "hydra:PartialCollectionView"}
    if next_path is not None:
        view["hydra:next"] = next_path
    return {
        "@context": "/api/contexts/Asset",
        "@id": "/api/assets",
        "@type": "hydra:Collection",
        "hydra:member": members,
        "hydra:totalItems": len(members),
        "hydra:view": view,
    }


def test_quable_asset_listing_is_one_request_for_the_whole_collection() -> None:
    requests = QuableLister().listing_requests("asset", [])
    assert len(requests) == 1
    (request,) = requests
    assert (request.method, request.url) == ("GET", "api/assets")
    assert request.params == {"limit": "30", "page": "1"}
    assert QuableLister(page_size=7).listing_requests("asset", [])[0].params == {
        "limit": "7",
        "page": "1",
    }


def test_quable_link_listing_is_one_request_per_link_type_sorted() -> None:
    records: list[Record] = [
        link("doc-1", "a-1", "type-b"),
        link("doc-2", "a-2", "type-a"),
        link("doc-3", "a-3", "type-b"),
        link({"catalog": "c", "category": "k"}, "a-4", "type-object"),  # not a Quable link
        Removal(ORIGIN, "link", "doc-9->a-9:type-gone"),
    ]
    requests = QuableLister(page_size=5).listing_requests("link", iter(records))
    assert [(r.method, r.url) for r in requests] == [("GET", "api/links")] * 2
    assert [r.params for r in requests] == [
        {"linkType.id": "type-a", "limit": "5", "page": "1"},
        {"linkType.id": "type-b", "limit": "5", "page": "1"},
    ]


def test_quable_page_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        QuableLister(page_size=0)


def test_quable_asset_page_is_read_with_its_next_page() -> None:
    lister = QuableLister()
    request = lister.listing_requests("asset", [])[0]
    members = [
        quable_asset("a-1", attributes={"reference_name": {"fr_FR": "Chemise"}}),
        quable_asset("a-2", classification=None),
    ]
    page = lister.read_page(
        "asset", request, reply(200, collection(members, "/api/assets?limit=30&page=2"))
    )
    assert page.items == [
        RemoteItem(
            "asset",
            "a-1",
            "a-1",
            {
                "classifications": ["dam_sort"],
                "attributes": {"reference_name": {"fr_FR": "Chemise"}},
                "originalFilename": "shirt.jpg",
            },
        ),
        RemoteItem(
            "asset",
            "a-2",
            "a-2",
            {"classifications": [], "attributes": {}, "originalFilename": "shirt.jpg"},
        ),
    ]
    assert page.next is not None
    # The query travels in the URL (each page its own URL), relative to the base URL.
    assert (page.next.method, page.next.url, page.next.params) == (
        "GET",
        "api/assets?limit=30&page=2",
        None,
    )


def test_quable_last_page_has_no_next() -> None:
    request = HttpRequest("GET", "api/assets?limit=30&page=3")
    page = QuableLister().read_page("asset", request, reply(200, collection([quable_asset("x")])))
    assert [item.key for item in page.items] == ["x"]
    assert page.next is None


@pytest.mark.parametrize(
    ("current", "params", "next_path"),
    [
        ("api/assets?limit=30&page=2", None, "/api/assets?limit=30&page=2"),  # the same page
        ("api/assets?page=2&limit=30", None, "/api/assets?limit=30&page=2"),  # same, reordered
        ("api/assets", {"limit": "30", "page": "1"}, "/api/assets?limit=30&page=1"),
        ("api/assets?limit=30&page=3", None, "/api/assets?limit=30&page=2"),  # going back
    ],
)
def test_quable_next_that_does_not_advance_is_dropped(
    current: str, params: dict[str, str] | None, next_path: str
) -> None:
    request = HttpRequest("GET", current, params=params)
    page = QuableLister().read_page(
        "asset", request, reply(200, collection([quable_asset("x")], next_path))
    )
    assert page.next is None


def test_quable_absolute_or_prefixed_next_becomes_a_path_below_the_base_url() -> None:
    lister = QuableLister()
    request = lister.listing_requests("link", [link("d", "a", "t")])[0]
    for next_url in (
        "https://acme.quable.com/api/links?linkType.id=t&limit=30&page=2",
        "/proxy/api/links?linkType.id=t&limit=30&page=2",  # a base URL with a path of its own
    ):
        page = lister.read_page("link", request, reply(200, collection([], next_url)))
        assert page.next is not None
        assert page.next.url == "api/links?linkType.id=t&limit=30&page=2"


def test_quable_link_page_keys_equal_the_input_records_keys(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "links.jsonl",
        [
            {"from": "doc-00001", "to": "asset-1", "type": "product_image", "sequence": 2},
            {"from": "doc-00002", "to": "doc-00003", "type": "related"},
        ],
    )
    records = records_of(path, "link")
    body = collection(
        [
            quable_link("17", "doc-00001", "asset-1", "product_image", 2),
            quable_link("18", "doc-00002", "doc-00003", "related", 0),
        ]
    )
    page = QuableLister().read_page("link", HttpRequest("GET", "api/links"), reply(200, body))
    assert [item.key for item in page.items] == [record.key for record in records]
    assert [item.remote_id for item in page.items] == ["17", "18"]
    assert page.items[0].fields == {"sequence": 2, "attributes": {}}


def test_quable_relations_written_as_iris_are_read() -> None:
    member = {
        "@id": "/api/links/5",
        "id": 5,
        "origin": "/api/documents/doc%201",
        "target": "/api/assets/a-1",
        "linkType": "/api/link_types/img",
        "sequence": 3,
        "attributes": {"role": "main"},
    }
    page = QuableLister().read_page(
        "link", HttpRequest("GET", "api/links"), reply(200, collection([member]))
    )
    assert page.items == [
        RemoteItem("link", "doc 1->a-1:img", "5", {"sequence": 3, "attributes": {"role": "main"}})
    ]


def test_quable_malformed_members_are_skipped() -> None:
    members = [
        "not an object",
        {"@type": "Asset", "name": "no id"},
        quable_asset("kept"),
        {"id": "a-3", "classifications": "bad", "attributes": "bad", "originalFilename": 3},
    ]
    page = QuableLister().read_page(
        "asset", HttpRequest("GET", "api/assets"), reply(200, collection(members))
    )
    assert [item.key for item in page.items] == ["kept", "a-3"]
    assert page.items[1].fields == {
        "classifications": [],
        "attributes": {},
        "originalFilename": None,
    }
    links = [
        quable_link("1", "d", "a", "t"),
        {**quable_link("2", "d", "a", "t"), "origin": None},
        {**quable_link("3", "d", "a", "t"), "linkType": {"name": "no id"}},
    ]
    page = QuableLister().read_page(
        "link", HttpRequest("GET", "api/links"), reply(200, collection(links))
    )
    assert [item.remote_id for item in page.items] == ["1"]


def test_quable_answer_that_is_not_a_collection_is_refused() -> None:
    with pytest.raises(RequestFailed) as caught:
        QuableLister().read_page("asset", HttpRequest("GET", "api/assets"), reply(200, []))
    # Retried like a failed request (a proxy's hiccup), then the listing stops the run.
    assert caught.value.error.type == "BadResponse"
    assert caught.value.error_class is ErrorClass.RETRYABLE
    with pytest.raises(ValueError):
        QuableLister().read_page("asset", HttpRequest("GET", "api/assets"), reply(200, {}))


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(403, ErrorClass.AUTH), (503, ErrorClass.RETRYABLE), (400, ErrorClass.ITEM)],
)
def test_quable_error_answers_raise(status: int, error_class: ErrorClass) -> None:
    body = {"@type": "hydra:Error", "hydra:title": "An error occurred", "hydra:description": "no"}
    with pytest.raises(RequestFailed) as caught:
        QuableLister().read_page("asset", HttpRequest("GET", "api/assets"), reply(status, body))
    assert caught.value.error_class is error_class
    assert caught.value.error.http_status == status
    assert "listing assets" in caught.value.error.message


def test_quable_asset_matches(tmp_path: Path) -> None:
    (tmp_path / "shirt.jpg").write_bytes(b"jpg")
    path = write_jsonl(
        tmp_path / "assets.jsonl",
        [
            {
                "id": "a-1",
                "file": "shirt.jpg",
                "classification": "dam_sort",
                "attributes": {"name": {"fr_FR": "Chemise"}},
            },
            {"id": "a-2", "remotePath": "https://img.example.com/x.jpg"},
        ],
    )
    with_file, remote_path = records_of(path, "asset")
    lister = QuableLister()

    def remote(**fields: Any) -> RemoteItem:
        base = {
            "classifications": ["dam_sort"],
            "attributes": {"name": {"fr_FR": "Chemise"}, "other": 1},  # the PIM holds more
            "originalFilename": "shirt.jpg",
        }
        return RemoteItem("asset", "a-1", "a-1", {**base, **fields})

    assert lister.matches(with_file, remote())
    assert lister.matches(with_file, remote(classifications=["other", "dam_sort"]))
    assert not lister.matches(with_file, remote(classifications=["other"]))
    assert not lister.matches(with_file, remote(classifications=[]))
    assert not lister.matches(with_file, remote(attributes={"name": {"fr_FR": "Robe"}}))
    assert not lister.matches(with_file, remote(attributes={}))
    assert not lister.matches(with_file, remote(originalFilename="other.jpg"))
    # Nothing but what the record sets is compared for a remotePath asset.
    assert lister.matches(
        remote_path, RemoteItem("asset", "a-2", "a-2", {"classifications": [], "attributes": {}})
    )
    # Neither the file's bytes nor the source URL are in a listing: a match is not certain.
    assert not lister.compares_all(with_file) and not lister.compares_all(remote_path)
    assert not lister.matches(remote_path, RemoteItem("link", "a-2"))


def test_quable_link_matches() -> None:
    lister = QuableLister()
    remote = RemoteItem("link", "d->a:t", "1", {"sequence": 2, "attributes": {"role": "main"}})
    assert lister.matches(link("d", "a", "t", sequence=2), remote)
    assert lister.matches(link("d", "a", "t"), remote)  # no sequence given: not compared
    assert lister.matches(link("d", "a", "t", attributes={"role": "main"}), remote)
    assert not lister.matches(link("d", "a", "t", sequence=3), remote)
    assert not lister.matches(link("d", "a", "t", attributes={"role": "alt"}), remote)
    assert not lister.matches(link("d", "a", "t", attributes={"extra": 1}), remote)


# -- OCAPI: seed 003's CategoryLinks document ------------------------------------------------


def ocapi_link(
    source: tuple[str, str], target: tuple[str, str], type_: str, position: float
) -> dict[str, Any]:
    path = "/".join((*source[:1], "categories", source[1], "category_links", *target, type_))
    return {
        "_v": "23.2",
        "_type": "category_link",
        "last_modified": "2015-11-19T15:15:24.000Z",
        "link": f"https://example.com/{DATA}/catalogs/{path}",
        "position": position,
        "source_catalog_id": source[0],
        "source_catalog_name": {"default": "My Catalog"},
        "source_category_id": source[1],
        "source_category_name": {"default": "My Awesome Category"},
        "target_catalog_id": target[0],
        "target_catalog_name": {"default": "That Other Catalog"},
        "target_category_id": target[1],
        "target_category_name": {"default": "Category 1"},
        "type": type_,
    }


def category_links(
    data: list[Any], start: int = 0, total: int | None = None, next_url: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"_v": "23.2", "count": len(data), "data": data, "start": start}
    if next_url is not None:
        body["next"] = next_url
    body["total"] = len(data) if total is None else total
    return body


def fault(type_: str, message: str = "no") -> dict[str, Any]:
    return {"_v": "23.2", "fault": {"type": type_, "message": message}}


def first_request(source: tuple[str, str] = ("MyCatalog", "MyCategory1")) -> HttpRequest:
    endpoint = {"catalog": source[0], "category": source[1]}
    records = [link(endpoint, {"catalog": "c", "category": "k"}, "other")]
    return OcapiLister(DATA).listing_requests("link", records)[0]


def test_ocapi_listing_is_one_request_per_source_category() -> None:
    records: list[Record] = [
        link({"catalog": "cat-2", "category": "k-1"}, {"catalog": "c", "category": "x"}, "other"),
        link({"catalog": "cat 1", "category": "k/1"}, {"catalog": "c", "category": "x"}, "other"),
        link({"catalog": "cat-2", "category": "k-1"}, {"catalog": "c", "category": "y"}, "other"),
        link("code", {"catalog": "c", "category": "x"}, "other"),  # not a category endpoint
        link({"catalog": "c", "category": "k", "x": "y"}, {"catalog": "c", "category": "x"}, "o"),
    ]
    lister = OcapiLister("/" + DATA + "/", page_size=50)
    requests = lister.listing_requests("link", iter(records))
    assert [(r.method, r.url) for r in requests] == [
        ("GET", f"{DATA}/catalogs/cat%201/categories/k%2F1/category_links"),
        ("GET", f"{DATA}/catalogs/cat-2/categories/k-1/category_links"),
    ]
    assert [r.params for r in requests] == [{"start": "0", "count": "50"}] * 2
    assert OcapiLister(DATA).listing_requests("link", records)[0].params == {
        "start": "0",
        "count": "200",
    }
    assert OcapiLister(DATA).listing_requests("asset", records) == []


@pytest.mark.parametrize("page_size", [0, 201])
def test_ocapi_page_size_is_bounded_by_the_documented_count(page_size: int) -> None:
    with pytest.raises(ValueError):
        OcapiLister(DATA, page_size)


def test_ocapi_page_keys_equal_the_input_records_keys() -> None:
    # The example input of the repository: one source category, three types.
    example = Path(__file__).parents[2] / "config" / "examples" / "ocapi-links.jsonl"
    records = records_of(example, "link")
    data = []
    for record in records:
        assert isinstance(record, LinkRecord) and isinstance(record.from_, dict)
        assert isinstance(record.to, dict) and record.sequence is not None
        source = (record.from_["catalog"], record.from_["category"])
        target = (record.to["catalog"], record.to["category"])
        data.append(ocapi_link(source, target, record.type, float(record.sequence)))
    lister = OcapiLister(DATA)
    requests = lister.listing_requests("link", records)
    assert len(requests) == 1
    page = lister.read_page("link", requests[0], reply(200, category_links(data)))
    assert [item.key for item in page.items] == [record.key for record in records]
    assert page.items[0].remote_id == data[0]["link"]
    assert page.items[0].fields == {"position": 2.0}
    assert all(lister.matches(r, item) for r, item in zip(records, page.items, strict=True))
    assert page.next is None  # total reached


def test_ocapi_seed_sample_page_is_read() -> None:
    sample = category_links(
        [
            ocapi_link(("MyCatalog", "MyCategory1"), ("OtherCatalog", "Category1"), "other", 1.0),
            ocapi_link(("MyCatalog", "MyCategory1"), ("OtherCatalog", "Category2"), "other", 2.0),
        ]
    )
    page = OcapiLister(DATA).read_page("link", first_request(), reply(200, sample))
    expected = link(
        {"catalog": "MyCatalog", "category": "MyCategory1"},
        {"catalog": "OtherCatalog", "category": "Category2"},
        "other",
    )
    assert page.items[1].key == expected.key
    assert page.items[1].remote_id == (
        f"https://example.com/{DATA}/catalogs/MyCatalog/categories/MyCategory1/"
        "category_links/OtherCatalog/Category2/other"
    )


async def test_ocapi_listed_link_url_is_what_prune_deletes_by() -> None:
    item = (
        OcapiLister(DATA)
        .read_page(
            "link",
            first_request(),
            reply(200, category_links([ocapi_link(("C", "K"), ("T", "U"), "other", 1.0)])),
        )
        .items[0]
    )
    client = ScriptedClient(reply(204))
    removal = Removal(ORIGIN, "link", item.key, item.remote_id)
    outcomes = await DeleteLinkStage(DATA).run([Job(removal)], client)
    assert isinstance(outcomes[0], Done)
    assert client.requests[0].url == f"{DATA}/catalogs/C/categories/K/category_links/T/U/other"


def test_ocapi_malformed_links_and_missing_data_are_skipped() -> None:
    good = ocapi_link(("C", "K"), ("T", "U"), "other", 1)
    data = [
        "text",
        {**good, "type": None},
        {**good, "target_category_id": ""},
        {**good, "position": "1", "link": 5},
        good,
    ]
    page = OcapiLister(DATA).read_page("link", first_request(), reply(200, category_links(data)))
    assert [item.remote_id for item in page.items] == [None, good["link"]]
    assert page.items[0].fields == {"position": None}
    empty = OcapiLister(DATA).read_page(
        "link", first_request(), reply(200, {"_v": "23.2", "count": 0, "start": 0, "total": 0})
    )
    assert (empty.items, empty.next) == ([], None)


def test_ocapi_next_url_becomes_a_path_below_the_base_url() -> None:
    lister = OcapiLister(DATA, page_size=2)
    data = [ocapi_link(("C", "K"), ("T", f"U{i}"), "other", i) for i in range(2)]
    next_url = (
        f"https://other-host.example.com/{DATA}/catalogs/C/categories/K/category_links"
        "?start=2&count=2"
    )
    page = lister.read_page(
        "link", first_request(), reply(200, category_links(data, 0, 5, next_url))
    )
    assert page.next is not None
    assert (page.next.method, page.next.params) == ("GET", None)
    assert page.next.url == f"{DATA}/catalogs/C/categories/K/category_links?start=2&count=2"


def test_ocapi_next_is_computed_from_start_and_total_without_next() -> None:
    lister = OcapiLister(DATA, page_size=2)
    request = lister.listing_requests(
        "link", [link({"catalog": "C", "category": "K"}, {"catalog": "T", "category": "U"}, "o")]
    )[0]
    data = [ocapi_link(("C", "K"), ("T", f"U{i}"), "other", i) for i in range(2)]
    page = lister.read_page("link", request, reply(200, category_links(data, 0, 5)))
    assert page.next is not None
    assert page.next.params is None  # in the URL: each page has its own URL
    assert page.next.url == f"{DATA}/catalogs/C/categories/K/category_links?start=2&count=2"
    # The next page carries on from its own URL.
    page = lister.read_page("link", page.next, reply(200, category_links(data, 2, 5)))
    assert page.next is not None
    assert page.next.url == f"{DATA}/catalogs/C/categories/K/category_links?start=4&count=2"
    last = lister.read_page("link", page.next, reply(200, category_links(data[:1], 4, 5)))
    assert last.next is None


@pytest.mark.parametrize(
    ("start", "given", "expected"),
    [
        (990, None, 999),  # computed 1000 is past the documented 0-999: the last start instead
        (990, 1000, 999),  # given by the server: lowered the same way
        (980, 990, 990),  # still within: followed as given
        (999, 1009, None),  # the last start was read: nothing more can be listed
    ],
)
def test_ocapi_paging_ends_at_the_documented_start_limit(
    start: int, given: int | None, expected: int | None
) -> None:
    data = [ocapi_link(("C", "K"), ("T", f"U{i}"), "other", i) for i in range(10)]
    next_url = None
    if given is not None:
        next_url = f"https://h/{DATA}/catalogs/C/categories/K/category_links?start={given}"
    request = HttpRequest("GET", f"{DATA}/catalogs/C/categories/K/category_links?start={start}")
    page = OcapiLister(DATA, 10).read_page(
        "link", request, reply(200, category_links(data, start, 5000, next_url))
    )
    if expected is None:
        assert page.next is None
    else:
        assert page.next is not None and f"start={expected}" in page.next.url


def test_ocapi_next_that_does_not_advance_is_dropped() -> None:
    data = [ocapi_link(("C", "K"), ("T", "U"), "other", 1)]
    same = f"https://h/{DATA}/catalogs/C/categories/K/category_links?start=0&count=1"
    page = OcapiLister(DATA, 1).read_page(
        "link", first_request(), reply(200, category_links(data, 0, 9, same))
    )
    assert page.next is None
    # An empty page cannot move the computed start either.
    page = OcapiLister(DATA, 1).read_page(
        "link", first_request(), reply(200, category_links([], 0, 9))
    )
    assert page.next is None


def test_ocapi_missing_source_lists_nothing() -> None:
    for type_ in ("CatalogNotFoundException", "CategoryNotFoundException"):
        page = OcapiLister(DATA).read_page("link", first_request(), reply(404, fault(type_)))
        assert (page.items, page.next) == ([], None)


@pytest.mark.parametrize(
    ("status", "body", "error_class", "error_type"),
    [
        (404, fault("ResourcePathNotFoundException"), ErrorClass.ITEM, "ResourcePathNotFound"),
        (503, None, ErrorClass.RETRYABLE, "HTTP503"),
        (401, fault("InvalidAccessTokenException"), ErrorClass.AUTH, "InvalidAccessToken"),
    ],
)
def test_ocapi_error_answers_raise(
    status: int, body: Any, error_class: ErrorClass, error_type: str
) -> None:
    with pytest.raises(RequestFailed) as caught:
        OcapiLister(DATA).read_page("link", first_request(), reply(status, body))
    assert caught.value.error_class is error_class
    assert caught.value.error.type.startswith(error_type)


def test_ocapi_matches_compares_the_position() -> None:
    lister = OcapiLister(DATA)
    source, target = {"catalog": "C", "category": "K"}, {"catalog": "T", "category": "U"}
    remote = RemoteItem("link", "k", "u", {"position": 3.0})
    assert lister.matches(link(source, target, "other", sequence=3), remote)
    assert not lister.matches(link(source, target, "other", sequence=4), remote)
    assert lister.matches(link(source, target, "other"), remote)
    assert not lister.matches(
        link(source, target, "other", sequence=3), RemoteItem("link", "k", "u", {"position": None})
    )
    assert not lister.matches(
        AssetRecord(ORIGIN, "a", remote_path="https://x/y.jpg"), RemoteItem("asset", "a")
    )


# -- Round trips against the sandbox --------------------------------------------------------


async def list_all(
    config: Config, lister: RemoteLister, kind: Any, records: Sequence[Record]
) -> tuple[list[RemoteItem], int]:
    """Page through every scope with the engine's own client; returns the items and pages."""
    target = build_target(config).target
    client = EngineClient(target, RunStats(), RetryPolicy())
    items: list[RemoteItem] = []
    pages = 0
    try:
        for first in lister.listing_requests(kind, records):
            request: HttpRequest | None = first
            seen: set[str] = set()
            while request is not None:
                assert request.url not in seen, request.url
                seen.add(request.url)
                response: HttpResponse = await client.send(request)
                page = lister.read_page(kind, request, response)
                items.extend(page.items)
                pages += 1
                request = page.next
    finally:
        await target.transport.aclose()
    return items, pages


def run_config(folder: Path, target: TargetConfig, inputs: InputsConfig, **sections: Any) -> Config:
    return Config(
        target=target,
        inputs=inputs,
        limits=LimitsConfig(concurrency=8),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        state=StateConfig(enabled=False, path=folder / "state.sqlite"),
        sections=dict(sections),
    )


def assert_listed_once(items: list[RemoteItem], records: Sequence[Record]) -> None:
    keys = [item.key for item in items]
    assert sorted(keys) == sorted(record.key for record in records)
    assert len(set(keys)) == len(keys)


async def test_quable_listing_pages_through_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKSYNC_TEST_QUABLE_TOKEN", "sandbox-token")
    (tmp_path / "media").mkdir()
    assets: list[dict[str, Any]] = []
    for i in range(6):
        (tmp_path / "media" / f"a{i}.png").write_bytes(tiny_png(8, 8, i))
        assets.append(
            {
                "id": f"asset-{i}",
                "file": f"media/a{i}.png",
                "classification": "dam_sort",
                "attributes": {"title": {"fr_FR": f"Image {i}"}},
            }
        )
    for i in range(18):
        assets.append({"id": f"remote {i}/x", "remotePath": f"https://img.example.com/{i}.jpg"})
    write_jsonl(tmp_path / "assets.jsonl", assets)
    types = ("image", "other type/&")  # a type that must be quoted in the next page's query
    links = [
        {
            "from": f"doc-{i % 9 + 1:05d}",
            "to": assets[i % len(assets)]["id"],
            "type": types[i % 2],
            "sequence": i,
        }
        for i in range(40)
    ]
    write_jsonl(tmp_path / "links.jsonl", links)
    target = TargetConfig(kind="quable", base_url="", token_env="BULKSYNC_TEST_QUABLE_TOKEN")
    inputs = InputsConfig(assets=tmp_path / "assets.jsonl", links=tmp_path / "links.jsonl")
    async with running_sandbox(SandboxSettings()) as sandbox:
        target.base_url = sandbox.url
        config = run_config(tmp_path, target, inputs)
        with anyio.fail_after(60):
            report = await run_job_async(config, quiet=True)
            assert report.exit_code == 0, report.summary
            lister = QuableLister(page_size=7)
            asset_records = records_of(tmp_path / "assets.jsonl", "asset")
            link_records = records_of(tmp_path / "links.jsonl", "link")
            listed_assets, asset_pages = await list_all(config, lister, "asset", asset_records)
            listed_links, link_pages = await list_all(config, lister, "link", link_records)
    assert asset_pages == 4  # 24 assets, 7 a page
    assert link_pages == 6  # two types of 20 links: 3 pages each
    assert_listed_once(listed_assets, asset_records)
    assert_listed_once(listed_links, link_records)
    by_key = {item.key: item for item in [*listed_assets, *listed_links]}
    assert all(lister.matches(r, by_key[r.key]) for r in [*asset_records, *link_records])
    assert all(item.remote_id for item in listed_links)


async def test_ocapi_listing_pages_through_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKSYNC_TEST_OCAPI_CLIENT_ID", "sandbox")
    monkeypatch.setenv("BULKSYNC_TEST_OCAPI_CLIENT_SECRET", "sandbox")
    kinds = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
    links = [
        {
            "from": {"catalog": f"catalog-{1 + i % 2}", "category": f"category-{1 + i % 3:04d}"},
            "to": {"catalog": "catalog-1", "category": f"category-{1 + i // 5 % 20:04d}"},
            "type": kinds[i % 5],
            "sequence": i + 1,
        }
        for i in range(60)
    ]
    write_jsonl(tmp_path / "links.jsonl", links)
    target = TargetConfig(
        kind="ocapi",
        base_url="",
        client_id_env="BULKSYNC_TEST_OCAPI_CLIENT_ID",
        client_secret_env="BULKSYNC_TEST_OCAPI_CLIENT_SECRET",
    )
    inputs = InputsConfig(links=tmp_path / "links.jsonl")
    async with running_sandbox(SandboxSettings()) as sandbox:
        target.base_url = sandbox.url
        # The sandbox serves the token route on its own host.
        config = run_config(
            tmp_path, target, inputs, ocapi={"token_url": "/dwsso/oauth2/access_token"}
        )
        with anyio.fail_after(60):
            report = await run_job_async(config, quiet=True)
            assert report.exit_code == 0, report.summary
            records = records_of(tmp_path / "links.jsonl", "link")
            lister = OcapiLister(DATA, page_size=7)
            listed, pages = await list_all(config, lister, "link", records)
    assert len({(r["from"]["catalog"], r["from"]["category"]) for r in links}) == 6
    assert pages == 6 * 2  # 10 links per source, 7 a page
    assert_listed_once(listed, records)
    by_key = {item.key: item for item in listed}
    assert all(lister.matches(r, by_key[r.key]) for r in records)
    assert all(item.remote_id and f"/{DATA}/catalogs/" in item.remote_id for item in listed)
