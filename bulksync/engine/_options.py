"""How an engine runs: workers, queues, retries, the state, fail-fast limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bulksync.engine._breaker import DEFAULT_UNREACHABLE_AFTER
from bulksync.engine.retry import RetryPolicy
from bulksync.store._backend import StateBackend
from bulksync.store.remote import RemoteIndex
from bulksync.store.shard import ShardGate

__all__ = ["EngineOptions"]


@dataclass(slots=True)
class EngineOptions:
    concurrency: int = 16  # workers per stage unless the stage has its own figure
    stage_concurrency: Mapping[str, int] = field(default_factory=dict)
    queue_size: int | None = None  # items buffered between stages; default 2 x workers
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    grace_s: float = 10.0  # how long in-flight items may finish after a stop
    batch_linger_s: float = 0.05  # how long a batch stage waits to fill a batch
    max_open_groups: int = 1000  # groups a grouped stage may hold open at once
    state: StateBackend | None = None  # what was confirmed before: skip it when unchanged
    full: bool = False  # ignore the state: compare with `remote` (or push everything again)
    remote: RemoteIndex | None = None  # the target's listing, with --full
    # Fail fast ([limits] unreachable_after, stall_s): so many requests in a row failing one
    # target-wide way, or no answer at all for so long, stop the run (exit 4). None: no watch.
    unreachable_after: int = DEFAULT_UNREACHABLE_AFTER
    stall_s: float | None = None
    # A sharded run (--shard I/N): its links to other shards' assets wait for them.
    shard: ShardGate | None = None
