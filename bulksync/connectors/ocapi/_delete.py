"""`DELETE .../category_links/{target_catalog_id}/{target_category_id}/{type}` for --prune."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from bulksync.spi import (
    UNSAFE_SEGMENTS,
    BaseStage,
    Client,
    Done,
    ErrorInfo,
    Failed,
    HttpRequest,
    Job,
    Outcome,
    Removal,
)

from ._errors import CATEGORY_LINK_NOT_FOUND, ocapi_error, read_fault
from ._links import _ENDPOINT_KEYS, LINK_TYPES, CategoryLink

_DECODER = json.JSONDecoder()


class DeleteLinkStage(BaseStage):
    """Deletes by the link's own resource path: the path of its recorded `link` URL, else the
    path built from the ids in its key.

    The spec makes a CategoryLink's `link` optional, so neither a listing nor a PUT answer
    need carry one; the four ids and the type, which make up the key, name the resource just
    as well. Only the path of a URL is used, joined to our base URL: the host a server writes
    into `link` is not necessarily the one we talk to (the docs' samples say example.com).
    """

    name = "delete"

    def __init__(self, data_path: str) -> None:
        self._data_path = data_path.strip("/")

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        record = jobs[0].record
        assert isinstance(record, Removal)
        path = self._recorded_path(record.remote_id) or self._key_path(record.key)
        if path is None:
            message = "no category link path was recorded for this link, nor is its key one"
            return [Failed(ErrorInfo("NoRemoteId", message))]
        response = await client.send(HttpRequest("DELETE", path))
        if response.status == 404:
            fault = read_fault(response.body)
            if fault is not None and fault.type == CATEGORY_LINK_NOT_FOUND:
                return [Done(remote_id=record.remote_id, action="gone")]
        if not response.ok:
            raise ocapi_error(response, f"delete of {record.key}")
        return [Done(remote_id=record.remote_id, action="deleted")]

    def _recorded_path(self, remote_id: str | None) -> str | None:
        path = urlsplit(remote_id or "").path
        marker = f"/{self._data_path}/"
        segments = path[path.find(marker) + len(marker) :].split("/")
        if any(unquote(segment) in UNSAFE_SEGMENTS for segment in segments):
            return None  # a server's URL that would climb out of the link's own path
        if marker not in path or "/category_links/" not in path:
            return None
        return path[path.index(marker) + 1 :]

    def _key_path(self, key: str) -> str | None:
        link = link_from_key(key)
        return None if link is None else f"{self._data_path}/{link.path_extension()}"


def link_from_key(key: str) -> CategoryLink | None:
    """The ids of an OCAPI link key (``records.link_key``: ``{from}->{to}:{type}``, each end a
    sorted JSON object ``{"catalog", "category"}``), or ``None`` for any other key."""
    body, sep, link_type = key.rpartition(":")
    if not sep or link_type not in LINK_TYPES:
        return None
    try:
        source, end = _DECODER.raw_decode(body)
        if body[end : end + 2] != "->":
            return None
        target = json.loads(body[end + 2 :])
    except ValueError:
        return None
    ends = [_ids(source), _ids(target)]
    if ends[0] is None or ends[1] is None:
        return None
    return CategoryLink(*ends[0], *ends[1], link_type, None)


def _ids(end: Any) -> tuple[str, str] | None:
    if not isinstance(end, dict) or frozenset(end) != _ENDPOINT_KEYS:
        return None
    catalog, category = end["catalog"], end["category"]
    if isinstance(catalog, str) and catalog and isinstance(category, str) and category:
        return catalog, category
    return None
