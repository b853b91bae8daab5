"""The --full listing of a run: which part of the target each input touches, paged into a
RemoteIndex that the judge reads instead of the state."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bulksync.app._job_inputs import input_records, prune_kinds
from bulksync.app.config import Config
from bulksync.app.progress import note
from bulksync.app.wiring import BuiltTarget
from bulksync.engine.client import EngineClient
from bulksync.engine.listing import list_remote
from bulksync.spi._connector import RemoteLister
from bulksync.spi._http import HttpRequest
from bulksync.spi._records import AssetRecord, Kind, LinkRecord
from bulksync.store.remote import RemoteIndex

__all__ = ["list_target", "lister_of", "remote_index"]


def lister_of(built: BuiltTarget) -> RemoteLister | None:
    # The declared capability decides: a connector may hold a lister for one kind only.
    listed = built.connector.capabilities.listing
    return built.connector.lister if listed else None


def remote_index(
    config: Config, built: BuiltTarget, full: bool, stack: ExitStack
) -> RemoteIndex | None:
    """With --full, a place for the target's listing (none when the target cannot be listed)."""
    if not full:
        return None
    if lister_of(built) is None:
        return None  # check_job refuses --full where nothing can be listed
    index = RemoteIndex(config.output.results.parent)
    stack.callback(index.close)
    return index


async def list_target(
    config: Config, built: BuiltTarget, client: EngineClient, index: RemoteIndex, quiet: bool
) -> int:
    """Page through the part of the target each input touches, into ``index``; returns the
    pages read."""
    lister = lister_of(built)
    assert lister is not None
    read = 0
    for kind in reversed(prune_kinds(config)):  # assets, then links
        if kind not in built.connector.capabilities.listing:
            continue  # check_job refuses --full for a kind the target cannot list
        path = config.inputs.assets if kind == "asset" else config.inputs.links
        assert path is not None
        scopes = _listing_scopes(config, path, kind, lister)
        if not quiet:
            note(f"bulksync: --full: listing the target's {kind}s ({len(scopes)} scope(s))...")
        pages, items = await list_remote(client, lister, kind, scopes, index)
        read += pages
        if not quiet:
            note(f"bulksync: --full: the target holds {items} {kind}(s) ({pages} page(s) read)")
    return read


def _listing_scopes(
    config: Config, path: Path, kind: Kind, lister: RemoteLister
) -> Sequence[HttpRequest]:
    """A separate pass over the input, only to learn which parts of the target it touches."""
    records = input_records(config, path, kind)
    valid = (r for r in records if isinstance(r, AssetRecord | LinkRecord))
    return list(lister.listing_requests(kind, valid))
