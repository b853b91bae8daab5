"""What a Quable job costs in requests (the plan of --dry-run), stage by stage.

- Assets (v5): a file asset is an upload (`POST /api/files`) then `POST /api/assets` (a
  create) or `PUT /api/assets/{id}` (an update): 2; a `remotePath` asset skips the upload: 1.
  A delete is one `DELETE`.
- v5 links: a create is one `POST /api/links`. A changed link is deleted and created again:
  2, or 3 when no id was kept (a `GET` finds it first). A delete is one `DELETE`, after a
  `GET` when no id was kept.
- v4 links: one `POST` per batch of up to `v4_batch` links of one (document, link type); a
  batch holding a changed link lists the group first (one page per 100 links; counted as
  one). A prune lists each group and sends it back with mode `replace`: 2 per batch.
- Logins: one with user_env/password_env (none with a token), again each hour.

Not counted: retries, and a create answered 409 because the item was on the target although
the state did not know it (one `PUT` more).
"""

from __future__ import annotations

from collections.abc import Sequence

from bulksync.spi import (
    AssetRecord,
    BaseRequestModel,
    CredentialKind,
    ItemCost,
    LinkRecord,
    PlannedItem,
    Removal,
    RequestModel,
)

from ._auth import DOCUMENTED_LIFETIME_S
from ._v4links import parse_key


class QuableRequests(BaseRequestModel):
    session_s: float | None = DOCUMENTED_LIFETIME_S

    def __init__(self, links_api: str = "v5", v4_batch: int = 200) -> None:
        self._links_api = links_api
        self._v4_batch = v4_batch

    def cost(self, item: PlannedItem) -> ItemCost:
        record = item.record
        if record.kind == "asset":
            if item.action == "delete":
                return ItemCost(1)
            has_file = isinstance(record, AssetRecord) and record.file is not None
            return ItemCost(2 if has_file else 1)
        if self._links_api == "v4":
            return self._v4(item)
        if item.action == "delete":
            return ItemCost(1 if item.remote_id else 2)
        if item.action == "update":
            return ItemCost(2 if item.remote_id else 3)
        return ItemCost(1)

    def _v4(self, item: PlannedItem) -> ItemCost:
        record = item.record
        if isinstance(record, Removal):
            parts = parse_key(record.key)
            group = ("invalid", record.key) if parts is None else (parts[0], parts[2])
            return ItemCost(group=group, batch=self._v4_batch, per_batch=2)
        assert isinstance(record, LinkRecord)
        group = (str(record.from_), record.type)  # V4LinkStage.group_key
        per_batch = 2 if item.action == "update" else 1
        return ItemCost(group=group, batch=self._v4_batch, per_batch=per_batch)

    def logins(self, credentials: CredentialKind) -> int:
        return 1 if credentials == "login" else 0

    def alternatives(self) -> Sequence[tuple[str, RequestModel]]:
        if self._links_api == "v4":
            return ()
        return [('links_api = "v4"', QuableRequests("v4", self._v4_batch))]
