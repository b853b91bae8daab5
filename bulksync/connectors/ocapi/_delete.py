"""`DELETE .../category_links/{target_catalog_id}/{target_category_id}/{type}` for --prune."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from ...connector import BaseStage, Client, Done, Failed, Job, Outcome
from ...http import HttpRequest
from ...records import Removal
from ...results import ErrorInfo
from ._errors import CATEGORY_LINK_NOT_FOUND, ocapi_error, read_fault


class DeleteLinkStage(BaseStage):
    """Deletes by the link's own resource path, kept from its `link` when it was pushed.

    Only the path of that URL is used, joined to our base URL: the host a server writes into
    `link` is not necessarily the one we talk to (the docs' samples say example.com).
    """

    name = "delete"

    def __init__(self, data_path: str) -> None:
        self._data_path = "/" + data_path.strip("/") + "/"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        record = jobs[0].record
        assert isinstance(record, Removal)
        path = urlsplit(record.remote_id or "").path
        if self._data_path not in path or "/category_links/" not in path:
            message = "no category link path was recorded for this link"
            return [Failed(ErrorInfo("NoRemoteId", message))]
        path = path[path.index(self._data_path) + 1 :]
        response = await client.send(HttpRequest("DELETE", path))
        if response.status == 404:
            fault = read_fault(response.body)
            if fault is not None and fault.type == CATEGORY_LINK_NOT_FOUND:
                return [Done(remote_id=record.remote_id, extra={"action": "gone"})]
        if not response.ok:
            raise ocapi_error(response, f"delete of {record.key}")
        return [Done(remote_id=record.remote_id, extra={"action": "deleted"})]
