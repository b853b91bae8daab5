"""OCAPI category links listed for ``--full``: the outgoing links of each source category.

Seed 003: ``GET /catalogs/{catalog_id}/categories/{category_id}/category_links?start&count``
answers ``{"count", "data": [CategoryLink...], "start", "total"}``, sorted by position;
REFERENCE.md gives ``start`` 0-999 and ``count`` 0-200. The next page is the ``next`` URL
when the answer has one, else ``start`` moved past the links just read while ``total`` says
more are left. OCAPI documents no listing of assets: the connector carries links only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from bulksync.spi import (
    Endpoint,
    HttpRequest,
    HttpResponse,
    Kind,
    LinkRecord,
    Record,
    RemoteItem,
    RemotePage,
    json_object,
    link_key,
    path_segment,
)

from ._errors import ocapi_error, read_fault
from ._links import _ENDPOINT_KEYS

MAX_COUNT = 200  # REFERENCE.md: count 0-200
# REFERENCE.md: start 0-999. A page starting past that cannot be asked for, so a category
# with more than 999 + count links cannot be listed whole: the links beyond are simply not
# listed (--full then pushes their records again, an upsert; prune does not see them).
MAX_START = 999
# Seed 003's faults of the list call: the source does not exist, so it holds no links. The
# listing is empty rather than failed (which would stop the run); the records' own PUTs
# then fail with these faults, item by item.
_NO_SOURCE = frozenset({"CatalogNotFoundException", "CategoryNotFoundException"})


class OcapiLister:
    """Builds the page requests of a listing and reads its pages (see ``RemoteLister``)."""

    def __init__(self, data_path: str, page_size: int = MAX_COUNT) -> None:
        if not 1 <= page_size <= MAX_COUNT:
            raise ValueError(f"page_size must be from 1 to {MAX_COUNT}")
        self._data_path = data_path.strip("/")
        self._page_size = page_size

    def listing_requests(self, kind: Kind, records: Iterable[Record]) -> Sequence[HttpRequest]:
        if kind != "link":
            return []
        sources = {
            source
            for record in records
            if isinstance(record, LinkRecord) and (source := _source(record.from_)) is not None
        }
        params = {"start": "0", "count": str(self._page_size)}
        return [
            HttpRequest("GET", self._collection(*source), params=params)
            for source in sorted(sources)
        ]

    def _collection(self, catalog_id: str, category_id: str) -> str:
        # Each id URL-quoted as one segment, as CategoryLink.path_extension does.
        c, k = path_segment(catalog_id), path_segment(category_id)
        return f"{self._data_path}/catalogs/{c}/categories/{k}/category_links"

    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        if not response.ok:
            fault = read_fault(response.body)
            if response.status == 404 and fault is not None and fault.type in _NO_SOURCE:
                return RemotePage([])
            raise ocapi_error(response, f"listing of {_path(request.url)}")
        # An unreadable page is retried, then stops the run: it is never read as empty.
        body = json_object(response, f"listing of {_path(request.url)}", write=False)
        # OCAPI leaves empty properties out: no `data` is an empty page.
        data = body.get("data")
        members = data if isinstance(data, list) else []
        items = [item for item in map(_link_item, members) if item is not None]
        return RemotePage(items, self._next_request(request, body, len(members)))

    def matches(self, record: Record, remote: RemoteItem) -> bool:
        if not isinstance(record, LinkRecord) or remote.kind != "link":
            return False
        if record.sequence is None:
            return True  # the position is the only thing a PUT sets besides the identity
        position = remote.fields.get("position")
        if isinstance(position, bool) or not isinstance(position, int | float):
            return False
        return float(position) == float(record.sequence)

    def compares_all(self, record: Record) -> bool:
        return True  # a category link is its ids and its position, all in the listing

    def _next_request(
        self, request: HttpRequest, body: Mapping[str, Any], read: int
    ) -> HttpRequest | None:
        """The next page, its query in the URL (the engine tells pages apart by URL)."""
        current = _query(request)
        start = _int(body.get("start"))
        if start is None:
            start = _int(current.get("start")) or 0
        url: str | None = None
        next_start: int | None = None
        link = body.get("next")
        if isinstance(link, str):
            url = self._below_base(link)
            next_start = _int(_query_of(url).get("start")) if url is not None else None
        if url is None or next_start is None:
            total = _int(body.get("total"))
            if total is None or read == 0 or start + read >= total:
                return None
            next_start = start + read
            query = {**current, "start": str(next_start)}
            query.setdefault("count", str(self._page_size))
            url = f"{_path(request.url).lstrip('/')}?{urlencode(query)}"
        if next_start <= start or start >= MAX_START:
            return None  # a page that does not move on would loop; past 999 is refused
        if next_start > MAX_START:
            # The last start the API takes: the page overlaps the one before (a link listed
            # twice is kept once), and reaches up to 999 + count links.
            next_start = MAX_START
            query = {**_query_of(url), "start": str(MAX_START)}
            url = f"{_path(url).lstrip('/')}?{urlencode(query)}"
        return HttpRequest("GET", url)

    def _below_base(self, link: str) -> str | None:
        """``next``'s path and query below our base URL, as DeleteLinkStage reads ``link``:
        the host a server writes is not necessarily the one we talk to."""
        parts = urlsplit(link)
        path = "/" + parts.path.lstrip("/")
        marker = f"/{self._data_path}/"
        if marker not in path or not path.rstrip("/").endswith("/category_links"):
            return None
        relative = path[path.index(marker) + 1 :]
        return f"{relative}?{parts.query}" if parts.query else relative


def _source(endpoint: Endpoint) -> tuple[str, str] | None:
    """The (catalog, category) of a valid ``from``; the link stage refuses any other."""
    if not isinstance(endpoint, Mapping) or frozenset(endpoint) != _ENDPOINT_KEYS:
        return None
    catalog, category = endpoint["catalog"], endpoint["category"]
    if isinstance(catalog, str) and catalog and isinstance(category, str) and category:
        return catalog, category
    return None


def _link_item(member: Any) -> RemoteItem | None:
    """A CategoryLink document as seed 003 shows it; ``None`` for a malformed one."""
    if not isinstance(member, dict):
        return None
    names = ("source_catalog_id", "source_category_id", "target_catalog_id", "target_category_id")
    ids = [member.get(name) for name in names]
    link_type = member.get("type")
    if not all(isinstance(i, str) and i for i in [*ids, link_type]):
        return None
    # The same key as the input record's: endpoints {"catalog", "category"} (_ENDPOINT_KEYS).
    source = {"catalog": ids[0], "category": ids[1]}
    target = {"catalog": ids[2], "category": ids[3]}
    position = member.get("position")
    if isinstance(position, bool) or not isinstance(position, int | float):
        position = None
    link = member.get("link")
    # `link` is the link's own URL: what DeleteLinkStage deletes by (prune).
    remote_id = link if isinstance(link, str) and link else None
    key = link_key(source, target, str(link_type))
    return RemoteItem("link", key, remote_id, {"position": position})


def _query(request: HttpRequest) -> dict[str, str]:
    query = _query_of(request.url)
    query.update(request.params or {})
    return query


def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _path(url: str) -> str:
    return urlsplit(url).path


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None
