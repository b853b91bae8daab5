"""Whether an input item needs a create, an update or nothing: one rule for runs and dry runs.

Without ``--full`` the state store decides (what bulksync confirmed before, by content hash).
With ``--full`` the state is ignored and the target's own listing decides, through the
connector's ``matches``; a target that cannot be listed gets every item pushed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from bulksync.spi._connector import RemoteLister
from bulksync.spi._records import AssetRecord, LinkRecord
from bulksync.store._backend import StateBackend
from bulksync.store.remote import RemoteIndex
from bulksync.store.state import content_hash

log = logging.getLogger("bulksync.engine._engine")

Action = Literal["create", "update", "skip"]


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    digest: str | None = None  # content hash, for the state store once the push is confirmed
    remote_id: str | None = None  # the target's id of an existing object
    # A skip the state may record as a confirmed push: false when --full could compare only
    # part of the item (an asset's file bytes are not in a listing).
    confirmable: bool = True
    # A create because the target's own listing (--full) lacks the item: evidence it is not
    # there. The state's silence is not: it knows only what bulksync pushed with it (a fresh
    # state, another tool, another results folder), so it leaves this False.
    absent: bool = False


@dataclass(slots=True)
class Judge:
    state: StateBackend | None = None
    remote: RemoteIndex | None = None  # the target's listing, with --full
    lister: RemoteLister | None = None
    full: bool = False
    empty_kinds: set[str] = field(default_factory=set)  # the state holds none: no lookups

    def judge(self, record: AssetRecord | LinkRecord) -> Verdict:
        """Also records that the input holds this item, so prune keeps it."""
        kind, key = record.kind, record.key
        state, remote = self.state, self.remote
        digest = None
        if state is not None:
            digest = content_hash(record)
            state.saw(kind, key)
        if self.full:
            if remote is None or self.lister is None:
                return Verdict("create", digest)
            remote.saw(kind, key)
            found = remote.lookup(kind, key)
            if found is None:
                return Verdict("create", digest, absent=True)
            try:
                same = self.lister.matches(record, found)
            except Exception:  # a connector bug must not stop the run: push the item
                log.exception("comparing %s %s with the target failed", kind, key)
                same = False
            if not same:
                return Verdict("update", digest, found.remote_id)
            return Verdict("skip", digest, found.remote_id, self._compares_all(record))
        if state is None or kind in self.empty_kinds:
            return Verdict("create", digest)
        known = state.lookup(kind, key)
        if known is None:
            return Verdict("create", digest)
        if known.hash == digest:
            return Verdict("skip", digest, known.remote_id)
        return Verdict("update", digest, known.remote_id)

    def _compares_all(self, record: AssetRecord | LinkRecord) -> bool:
        try:
            return bool(self.lister and self.lister.compares_all(record))
        except Exception:  # unsure: the state is not told, the next run looks again
            log.exception("compares_all failed for %s %s", record.kind, record.key)
            return False
