"""A sharded run's inputs and results (``bulksync run --shard I/N``).

Each shard reads every input line and keeps those whose key hashes to it
(:mod:`bulksync.store.shard`); the others get no result line from it, since they are another
shard's: each shard writes its own results file, ``<results>.shard-I-of-N.jsonl`` beside the
configured one, and its own run folder (whose summary says ``"shard": {"index", "count"}``).
Together the N results files hold exactly one line per input line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bulksync.app.config import Config
from bulksync.spi._records import AssetRecord, BadRecord, Kind, Record
from bulksync.store.shard import Shard, ShardGate


def shard_results(config: Config, shard: Shard) -> Config:
    """The config with this shard's own results path."""
    results = config.output.results
    name = f"{results.stem}.{shard.suffix}{results.suffix}"
    output = config.output.model_copy(update={"results": results.with_name(name)})
    return config.model_copy(update={"output": output})


class ShardInputs:
    def __init__(self, shard: Shard, gate: ShardGate | None = None) -> None:
        self.shard = shard
        self._gate = gate

    def plan(self) -> ShardInputs:
        """For a pass of its own (the plan line): the same selection, no gate to feed."""
        return ShardInputs(self.shard)

    def gate(self, wait_s: float) -> ShardGate:
        """The engine's gate, fed with the foreign assets as this selection reads them."""
        self._gate = ShardGate(self.shard, wait_s)
        return self._gate

    def select(
        self, kind: Kind, records: Iterable[Record | BadRecord]
    ) -> Iterator[Record | BadRecord]:
        shard, gate = self.shard, self._gate
        for record in records:
            key = _key(record)
            if shard.holds(key):
                yield record
            elif gate is not None and key is not None and isinstance(record, AssetRecord):
                gate.add_foreign(key)


def _key(record: Record | BadRecord) -> str | None:
    try:
        return record.key
    except Exception:  # a key that cannot be computed: the line is shard 0's to report
        return None
