"""What a Propeller job costs in requests (the plan of --dry-run).

Links go in `POST /links/bulk/{id|sourceId}` chunks of up to `chunk` links sharing one lookup
key (a create and an update cost the same: the bulk is an upsert). One OAuth token at the
start, renewed about every 25 minutes (30 minus the documented 5-minute margin).

Not counted: retries, and the chunk sent again without the items a whole-chunk 400 named.
"""

from __future__ import annotations

from bulksync.spi import BaseRequestModel, ItemCost, LinkRecord, PlannedItem

from ._auth import DEFAULT_LIFETIME_S, RENEWAL_MARGIN_S
from ._links import lookup_key


class PropellerRequests(BaseRequestModel):
    session_s: float | None = DEFAULT_LIFETIME_S - RENEWAL_MARGIN_S

    def __init__(self, chunk: int = 100) -> None:
        self._chunk = chunk

    def cost(self, item: PlannedItem) -> ItemCost:
        record = item.record
        # Prune is refused for Propeller before the plan; a link is grouped as the stage does.
        key = lookup_key(record.from_) if isinstance(record, LinkRecord) else None
        return ItemCost(group=key, batch=self._chunk)
