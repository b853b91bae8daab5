"""Sharded jobs: ``bulksync run --shard I/N`` takes the items whose key hashes to shard I.

The hash is the first 8 bytes of BLAKE2b (digest size 8) of the item's key in UTF-8, read as
a big-endian unsigned integer, modulo N: the same on every machine, Python version and run
(Python's own ``hash()`` of a string changes with every process). A line with no key (an
unreadable line) belongs to shard 0, so that every input line gets its one result from
exactly one shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bulksync.spi._errors import ConfigError

_SPEC = re.compile(r"(\d{1,6})/(\d{1,6})\Z")
MAX_SHARDS = 100_000


def key_hash(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` with 0 <= I < N."""
        match = _SPEC.match(text.strip())
        if match is None:
            raise ConfigError(f"--shard {text!r}: expected I/N, as 0/4 (shard 0 of 4)")
        index, count = int(match.group(1)), int(match.group(2))
        if not 0 <= index < count <= MAX_SHARDS:
            raise ConfigError(f"--shard {text}: needs 0 <= I < N <= {MAX_SHARDS}")
        return cls(index, count)

    def of(self, key: str | None) -> int:
        """The shard an item of this key belongs to."""
        return 0 if key is None else key_hash(key) % self.count

    def holds(self, key: str | None) -> bool:
        return self.of(key) == self.index

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """Beside a results file name: results.shard-0-of-4.jsonl."""
        return f"shard-{self.index}-of-{self.count}"


class ShardGate:
    """The cross-shard asset -> link gate of one sharded run.

    The run reads the whole asset input (it must, to find its own part) and keeps the keys of
    the assets other shards push: a link of this shard that names one of them waits until the
    shared state shows that asset confirmed, for ``wait_s`` at most after this shard's links
    have all been read, and then ends ``skipped: dependency not yet pushed`` (not confirmed in
    the state, so the next run pushes it). Keys are kept as 64-bit hashes: 8 bytes of key hash
    and a set entry each, about 60 MB for a million foreign assets.
    """

    def __init__(self, shard: Shard, wait_s: float) -> None:
        self.shard = shard
        self.wait_s = wait_s
        self._foreign: set[int] = set()

    def add_foreign(self, key: str) -> None:
        self._foreign.add(key_hash(key))

    def is_foreign_asset(self, key: str) -> bool:
        return bool(self._foreign) and key_hash(key) in self._foreign

    def owner(self, key: str) -> str:
        return f"{self.shard.of(key)}/{self.shard.count}"
