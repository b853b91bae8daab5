"""The shard hash and the cross-shard gate (issue 19) on their own: the hash is the documented
one, stable across processes; a held link goes as soon as a poll finds its asset confirmed,
the state asked once per awaited asset per poll, and what still waits at the bound is skipped.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import anyio
import pytest

from bulksync.engine import _shard_wait
from bulksync.engine._shard_wait import CrossShardWait
from bulksync.spi._connector import Job
from bulksync.spi._errors import ConfigError
from bulksync.spi._records import LinkRecord, Origin
from bulksync.store.shard import Shard, ShardGate, key_hash
from bulksync.store.state import StateStore


def test_the_hash_is_blake2b_8_bytes_big_endian_and_the_same_in_another_process() -> None:
    key = "doc-00001->asset-7:t"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    assert key_hash(key) == int.from_bytes(digest, "big")
    assert Shard(0, 4).of(key) == key_hash(key) % 4
    code = "from bulksync.store.shard import key_hash; print(key_hash('doc-00001->asset-7:t'))"
    # Another interpreter, another PYTHONHASHSEED: Python's hash() would differ, this must not.
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
        timeout=60,
    )
    assert int(other.stdout) == key_hash(key)
    assert Shard(0, 4).of(None) == 0  # a line without a key is shard 0's


@pytest.mark.parametrize("text", ["", "4/4", "-1/4", "1/0", "a/b", "1", "1/2/3"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        Shard.parse(text)


def test_every_key_lands_in_exactly_one_shard() -> None:
    shards = [Shard(i, 3) for i in range(3)]
    for n in range(300):
        assert sum(s.holds(f"k{n}") for s in shards) == 1


class CountingStore(StateStore):
    asked: list[set[str]]

    def confirmed_among(self, kind: str, keys: Collection[str]) -> set[str]:
        self.asked.append(set(keys))
        return super().confirmed_among(kind, keys)


def link(to: str, line: int) -> Job:
    return Job(LinkRecord(Origin("links.jsonl", line), "doc-1", to, "t"))


async def test_a_held_link_goes_once_its_asset_is_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shard_wait, "POLL_S", 0.05)
    shard = Shard(0, 2)
    foreign = next(f"asset-{i}" for i in range(100) if not shard.holds(f"asset-{i}"))
    gate = ShardGate(shard, wait_s=5.0)
    gate.add_foreign(foreign)
    store = CountingStore(tmp_path / "state.sqlite", "t")
    store.asked = []
    waiting = CrossShardWait(gate, store)
    first, second, own = link(foreign, 1), link(foreign, 2), link("doc-2", 3)
    assert waiting.hold(first) and waiting.hold(second)
    assert not waiting.hold(own)  # not another shard's asset: it goes
    assert store.asked == [{foreign}]  # the second link did not ask again before a poll
    assert waiting.due() == []  # polled: still not there
    store.confirm("asset", foreign, "h", "id-1")  # its shard pushed it
    store.flush()
    for _ in range(100):
        released = waiting.due()
        if released:
            break
        await anyio.sleep(0.01)
    assert released == [first, second]
    store.close()


async def test_what_still_waits_at_the_bound_is_skipped_unless_the_run_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shard_wait, "POLL_S", 0.01)
    shard = Shard(1, 2)
    foreign = next(f"asset-{i}" for i in range(100) if not shard.holds(f"asset-{i}"))
    gate = ShardGate(shard, wait_s=0.05)
    gate.add_foreign(foreign)
    store = StateStore(tmp_path / "state.sqlite", "t")
    waiting = CrossShardWait(gate, store)
    job = link(foreign, 1)
    assert waiting.hold(job)
    sent: list[Job] = []
    skipped: list[tuple[Job, str]] = []

    async def send(jobs: Sequence[Job]) -> None:
        sent.extend(jobs)

    with anyio.fail_after(10):
        await waiting.release(send, lambda j, why: skipped.append((j, why)), anyio.Event(), 64)
    assert sent == []
    assert skipped == [(job, f"dependency not yet pushed: asset '{foreign}' (shard 0/2)")]

    stopped = anyio.Event()
    stopped.set()
    again = CrossShardWait(gate, store)
    assert again.hold(link(foreign, 2))
    skipped.clear()
    await again.release(send, lambda j, why: skipped.append((j, why)), stopped, 64)
    assert skipped == []  # a stop leaves it live: the engine reports it interrupted
    store.close()
