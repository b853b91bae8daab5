"""What an OCAPI job costs in requests (the plan of --dry-run).

A category link is one `PUT` (create or update alike), or with `batch = true` a part of a
`POST /s/-/dw/batch` of up to `batch_size` parts (a body over 5 MB is cut sooner: not
counted). A delete is one `DELETE`. One client-credentials token at the start, renewed about
every 30 minutes.

Not counted: retries, and the `GET` and second `PUT` that settle a 409 conflict.
"""

from __future__ import annotations

from collections.abc import Sequence

from bulksync.spi import BaseRequestModel, ItemCost, PlannedItem, RequestModel

from ._auth import DOCUMENTED_LIFETIME_S


class OcapiRequests(BaseRequestModel):
    session_s: float | None = DOCUMENTED_LIFETIME_S

    def __init__(self, batch: bool = False, batch_size: int = 50) -> None:
        self._batch = batch
        self._batch_size = batch_size

    def cost(self, item: PlannedItem) -> ItemCost:
        if item.action == "delete" or not self._batch:
            return ItemCost(1)
        # BatchLinkStage.group_key: any links may share a batch.
        return ItemCost(group="category_links", batch=self._batch_size)

    def alternatives(self) -> Sequence[tuple[str, RequestModel]]:
        if self._batch:
            return ()
        return [("batch = true", OcapiRequests(True, self._batch_size))]
