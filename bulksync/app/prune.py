"""`--prune`: delete what the job's scope holds and its input no longer does, within a guard.

The scope is what earlier runs confirmed (the state store) and, with ``--full``, also what the
target's listing shows. Nothing is deleted when the count goes above ``--max-delete``: a
truncated input file must never empty a catalogue.

Prune is a flow, not an engine mode: the doomed items become :class:`Removal` records that
the engine's ordinary pipeline runs through the connector's delete stages; this module
forgets in the state what was deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bulksync.app._job_check import PRUNE_NEEDS_STATE
from bulksync.app.wiring import BuiltTarget
from bulksync.engine._engine import Engine
from bulksync.spi._errors import BulksyncError, ConfigError
from bulksync.spi._records import Kind, Origin, Removal
from bulksync.store._backend import StateBackend
from bulksync.store.remote import RemoteIndex
from bulksync.store.results import ItemResult, ResultWriter


class PruneGuardError(ConfigError):
    """Prune would delete more than --max-delete allows."""


class PruneSkipped(BulksyncError):
    """The sync ran, but some input lines could not be read or were refused: nothing is
    deleted (exit 1, the same as those failed lines give)."""

    exit_code = 1


class _DeletedKeys:
    """Passes every result on to the run's writer and notes the keys deleted, which the
    state may then forget (a removal that failed or was skipped stays in the state)."""

    def __init__(self, writer: ResultWriter) -> None:
        self._writer = writer
        self.keys: list[str] = []

    def write(self, result: ItemResult) -> None:
        self._writer.write(result)
        if result.status == "succeeded" and result.key is not None:
            self.keys.append(result.key)


def max_delete_limit(value: str, known: int) -> int:
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError(text)
            return int(known * share / 100)
        count = int(text)
        if count < 0:
            raise ValueError(text)
        return count
    except (ValueError, OverflowError):
        message = f"--max-delete takes a count or a percentage from 0 to 100%, got '{value}'"
        raise ConfigError(message) from None


def doomed_items(kind: Kind, state: StateBackend, remote: RemoteIndex | None) -> list[Removal]:
    """Every item in scope that this run's input did not hold, as a removal to run."""
    doomed: dict[str, Removal] = {}
    if remote is not None:
        for item in remote.unseen(kind):
            doomed[item.key] = Removal(Origin("target", 0), kind, item.key, item.remote_id)
    for key, remote_id in state.unseen(kind):
        # The listing's id is the current one; the state's may be from an older push, but it
        # is better than none.
        listed = doomed.get(key)
        if listed is None or (listed.remote_id is None and remote_id is not None):
            doomed[key] = Removal(Origin("state", 0), kind, key, remote_id)
    return [doomed[key] for key in sorted(doomed)]


def scope_size(kind: Kind, state: StateBackend, remote: RemoteIndex | None) -> int:
    """How many items the job's scope holds: what the --max-delete share is taken of."""
    if remote is None:
        return state.count(kind) + state.in_flight_count(kind)
    return remote.count(kind) + sum(1 for key in state.keys(kind) if not remote.has(kind, key))


async def prune(
    engines: list[Engine],
    built: BuiltTarget,
    writer: ResultWriter,
    state: StateBackend | None,
    kinds: Sequence[Kind],
    max_delete: str,
    remote: RemoteIndex | None = None,
) -> int:
    """Delete the doomed items of ``kinds`` (links before the assets they point at)."""
    engine = engines[0]
    if state is None:
        raise ConfigError(PRUNE_NEEDS_STATE)  # check_job refuses it first; kept for callers
    unreadable = sum(e.unreadable for e in engines)
    first = next((e.first_unreadable for e in engines if e.first_unreadable is not None), None)
    if unreadable:
        # Their items are unknown (a stray quote may have merged whole rows): any of them
        # could be taken for gone and deleted.
        raise PruneSkipped(
            f"prune skipped: {unreadable} input line(s) could not be read (first: {first}); "
            "nothing was deleted"
        )
    invalid = engine.stats.invalid
    if invalid:
        # A refused or duplicate line names its key, but that item was not pushed as the
        # input says: prune waits for an input that is clean throughout.
        raise PruneSkipped(
            f"prune skipped: {invalid} input line(s) were invalid, refused or duplicates; "
            "nothing was deleted"
        )
    doomed = {kind: doomed_items(kind, state, remote) for kind in kinds}
    total = sum(len(items) for items in doomed.values())
    known = sum(scope_size(kind, state, remote) for kind in kinds)
    limit = max_delete_limit(max_delete, known)
    if total > limit:
        raise PruneGuardError(
            f"prune stopped before deleting anything: it would delete {total} of {known} "
            f"items, above --max-delete {max_delete} ({limit}); rerun with a higher "
            "--max-delete to allow it"
        )
    deleted = 0
    for kind in kinds:
        if not doomed[kind]:
            continue
        removals = doomed[kind]
        if any(e.stop.is_set() for e in engines):
            break  # stopped between two kinds
        options = replace(engine.options, state=None, full=False, remote=None)
        deletions = _DeletedKeys(writer)
        # The same stats: deletions count in the summary and a failed one in the exit code.
        pruner = Engine(built.connector, built.target, deletions, options, stats=engine.stats)
        engines.append(pruner)  # so that Ctrl-C reaches it
        try:
            await pruner.run([(kind, iter(removals))], stages_of=built.connector.delete_stages)
        finally:
            for key in deletions.keys:
                state.forget(kind, key)
            deleted += len(deletions.keys)
        if pruner.interrupted:
            break
    return deleted
