"""Quable v5 listings for ``--full``: the whole assets collection, and the links per link type.

REFERENCE.md: v5 collections are API Platform ``hydra:Collection`` pages, read with ``limit``
and ``page``: ``{"hydra:member": [...], "hydra:view": {"hydra:next":
"/api/assets?limit=25&page=2"}}``, to be followed through ``hydra:next``, a path from the host.
Links are filtered with ``linkType.id`` (the filter ``find_link`` uses too).

No ``order[...]`` is sent: API Platform orders a collection by its identifier unless told
otherwise, which is what keeps pages stable, and which fields the PIM lets a client order on
is not documented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bulksync.spi import (
    AssetRecord,
    HttpRequest,
    HttpResponse,
    Kind,
    LinkRecord,
    Record,
    RemoteItem,
    RemotePage,
    form_escape,
    json_object,
    link_key,
)

from ._errors import quable_error

# Collections paths, relative to the target's base URL like every other Quable request.
_COLLECTIONS: Mapping[Kind, str] = {"asset": "api/assets", "link": "api/links"}
# v5 also speaks plain JSON, where a collection is a bare array without paging: ask for the
# JSON-LD the docs show (it is also the API's default).
_ACCEPT = {"Accept": "application/ld+json"}


class QuableLister:
    """Builds the page requests of a listing and reads its pages (see ``RemoteLister``)."""

    def __init__(self, page_size: int = 30, links_api: str = "v5") -> None:
        # 30 is API Platform's default; the PIM's maximum `limit` is not documented.
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._page_size = page_size
        # v4 items carry a target and a sequence only: attributes are never pushed there, so
        # comparing them would find every such link changed on every run.
        self._link_attributes = links_api != "v4"

    def listing_requests(self, kind: Kind, records: Iterable[Record]) -> Sequence[HttpRequest]:
        if kind == "asset":
            # Assets have no documented filter a record could narrow: the collection is the scope.
            return [self._first("asset", {})]
        # Links of other types cannot hold an input link: one listing per type, sorted so that
        # runs page in the same order. Object endpoints are refused by the link stages anyway.
        types = {
            record.type
            for record in records
            if isinstance(record, LinkRecord)
            and isinstance(record.from_, str)
            and isinstance(record.to, str)
        }
        return [self._first("link", {"linkType.id": link_type}) for link_type in sorted(types)]

    def _first(self, kind: Kind, filters: Mapping[str, str]) -> HttpRequest:
        params = {**filters, "limit": str(self._page_size), "page": "1"}
        return HttpRequest("GET", _COLLECTIONS[kind], headers=_ACCEPT, params=params)

    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        if not response.ok:
            raise quable_error(response, f"listing {kind}s")
        # An unreadable page is retried, then stops the run: it is never read as empty.
        body = json_object(response, f"listing {kind}s", write=False)
        members = body.get("hydra:member")
        if not isinstance(members, list):
            # Not a page at all (a proxy's page, another format): the engine stops on it,
            # since going on without part of the target would push or prune wrongly.
            raise ValueError("the answer is not a hydra:Collection (no hydra:member list)")
        read = _asset_item if kind == "asset" else _link_item
        items = [item for item in map(read, members) if item is not None]
        return RemotePage(items, _next_request(kind, request, body.get("hydra:view")))

    def matches(self, record: Record, remote: RemoteItem) -> bool:
        if isinstance(record, AssetRecord) and remote.kind == "asset":
            return _asset_matches(record, remote.fields)
        if isinstance(record, LinkRecord) and remote.kind == "link":
            if record.sequence is not None and remote.fields.get("sequence") != record.sequence:
                return False
            if not self._link_attributes:
                return True
            return _holds(remote.fields.get("attributes"), record.attributes)
        return False

    def compares_all(self, record: Record) -> bool:
        """Links are compared on all we push; an asset's file bytes or source URL are not in
        the listing, so an asset that "matches" may still differ."""
        return isinstance(record, LinkRecord) or (
            isinstance(record, AssetRecord) and record.file is None and not record.remote_path
        )


def _asset_item(member: Any) -> RemoteItem | None:
    """An asset member as the seed's asset sample shows it; ``None`` for a malformed one."""
    if not isinstance(member, dict):
        return None
    asset_id = relation_id(member)
    if asset_id is None:
        return None
    listed = member.get("classifications")
    refs = listed if isinstance(listed, list) else [member.get("classification")]
    classifications = [ident for ident in map(relation_id, refs) if ident is not None]
    filename = member.get("originalFilename")
    fields = {
        "classifications": classifications,
        "attributes": _attributes(member.get("attributes")),
        "originalFilename": filename if isinstance(filename, str) else None,
    }
    return RemoteItem("asset", asset_id, asset_id, fields)


def _link_item(member: Any) -> RemoteItem | None:
    """A link member (``origin``, ``target``, ``linkType``, ``sequence``, ``attributes``)."""
    if not isinstance(member, dict):
        return None
    origin = relation_id(member.get("origin"))
    target = relation_id(member.get("target"))
    link_type = relation_id(member.get("linkType"))
    if origin is None or target is None or link_type is None:
        return None
    sequence = member.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        sequence = None
    fields = {"sequence": sequence, "attributes": _attributes(member.get("attributes"))}
    # The link's id is what `DELETE /api/links/{id}` needs (prune).
    return RemoteItem("link", link_key(origin, target, link_type), relation_id(member), fields)


def relation_id(value: Any) -> str | None:
    """The id of a resource or relation: its ``id``, else the last segment of its IRI.

    The samples embed relations as objects with an ``id``; API Platform may also write a
    relation as its bare IRI (``/api/link_types/x``), and a bare code is taken as it is.
    """
    if isinstance(value, dict):
        ident = value.get("id")
        if isinstance(ident, str) and ident:
            return ident
        if isinstance(ident, int) and not isinstance(ident, bool):
            return str(ident)
        value = value.get("@id")
    if isinstance(value, str) and value.startswith(("/", "http://", "https://")):
        last = unquote(urlsplit(value).path.rstrip("/").rpartition("/")[2])
        return last or None
    if isinstance(value, str) and value:
        return value  # a bare code
    return None


def _attributes(value: Any) -> dict[str, Any]:
    # PHP serialises an empty map as [], which the samples show ("attributes": []).
    return dict(value) if isinstance(value, dict) else {}


def _next_request(kind: Kind, request: HttpRequest, view: Any) -> HttpRequest | None:
    """The request of ``hydra:next``, with its query kept in the URL and no ``params``.

    The query stays in the URL so that each page's request has its own URL (the engine
    detects looping listings by URL); the transport sends a URL's query as it is.
    """
    raw = view.get("hydra:next") if isinstance(view, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    parts = urlsplit(raw)
    url = _relative_path(kind, parts.path)
    if parts.query:
        url = f"{url}?{parts.query}"
    if _does_not_advance(url, request):
        return None
    return HttpRequest("GET", url, headers=_ACCEPT)


def _relative_path(kind: Kind, path: str) -> str:
    """A path from the host (or an absolute URL's path) as a path below our base URL.

    The engine joins a relative path to the base URL; anchoring on the collection's own path
    keeps that right even when the base URL carries a path of its own (a proxy), which the
    server's root-relative ``hydra:next`` would then repeat. Another path is taken as it is.
    """
    collection = _COLLECTIONS[kind]
    trimmed = path.strip("/")
    if trimmed == collection or trimmed.endswith("/" + collection):
        return collection
    return path.lstrip("/")


def _does_not_advance(url: str, request: HttpRequest) -> bool:
    """Whether ``url`` is the current page again, or an earlier one: following it would loop."""
    path, query = _parts(url)
    current_path, current_query = _parts(request.url, request.params)
    if path == current_path and sorted(query.items()) == sorted(current_query.items()):
        return True
    page, current = _page_number(query), _page_number(current_query)
    return page is not None and current is not None and page <= current


def _parts(url: str, params: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    query.update(params or {})
    return split.path.strip("/"), query


def _page_number(query: Mapping[str, str]) -> int | None:
    try:
        return int(query["page"])
    except (KeyError, ValueError):
        return None


def _asset_matches(record: AssetRecord, remote: Mapping[str, Any]) -> bool:
    held = remote.get("classifications")
    if record.classification and record.classification not in (held or ()):
        return False
    if not _holds(remote.get("attributes"), record.attributes):
        return False
    if record.file is not None:
        # The listing gives no checksum of the binary, so its bytes cannot be compared: the
        # file name the asset was created from is the best evidence the same file is there.
        # A file changed in place under the same name is not seen by --full. The name is
        # compared as it was sent: a double quote in it went as %22.
        return remote.get("originalFilename") == form_escape(record.file.name)
    # A remotePath asset: the listing shows no source URL to compare with (the name Quable
    # derives from it is not documented), so classification and attributes decide.
    return True


def _holds(remote: Any, wanted: Mapping[str, Any]) -> bool:
    """Every attribute the record sets has that value remotely; the remote may hold more."""
    if not wanted:
        return True
    if not isinstance(remote, Mapping):
        return False
    return all(
        name in remote and _same_value(remote[name], value) for name, value in wanted.items()
    )


def _same_value(remote: Any, wanted: Any) -> bool:
    """A localised value (a map of locales) holds when every locale the record gives is there.

    Seed 001's asset sample renders every locale of the PIM, the unset ones as null: a
    record that gives only the locales it sets must not look changed because of them. A
    locale the record leaves out is not touched by bulksync, so it is not compared.
    """
    if isinstance(wanted, Mapping) and isinstance(remote, Mapping):
        return all(remote.get(locale) == text for locale, text in wanted.items())
    return bool(remote == wanted)
