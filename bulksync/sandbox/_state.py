"""Everything one running sandbox holds: settings, store, counters, tokens, limiters, faults."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from bulksync.sandbox._faults import FaultInjector
from bulksync.sandbox._load import LoadMeter
from bulksync.sandbox._ratelimit import SlidingWindowLimiter
from bulksync.sandbox._seed import seed
from bulksync.sandbox._settings import SandboxSettings
from bulksync.sandbox._stats import Stats
from bulksync.sandbox._store import Store
from bulksync.sandbox._tokens import TokenRegistry
from bulksync.sandbox._vendor import Resettable, SandboxVendor
from bulksync.sandbox._vendors import vendors as registered


class SandboxState:
    """The live state behind one app; tests reach it as ``sandbox.state``."""

    def __init__(
        self, settings: SandboxSettings, vendors: Sequence[SandboxVendor] | None = None
    ) -> None:
        self.settings = settings
        self.vendors = tuple(registered() if vendors is None else vendors)
        self.clock = time.monotonic
        self.stats = Stats()
        self.tokens = TokenRegistry(settings, self.clock)
        # A vendor's own login state (Quable's sessions), by vendor name.
        self.sessions: dict[str, Resettable] = {
            v.name: v.new_sessions(settings, self.clock)
            for v in self.vendors
            if v.new_sessions is not None
        }
        self.faults = FaultInjector(settings.faults)
        self.limiters = {
            v.name: SlidingWindowLimiter(
                settings.api(v.name).rate_limit.windows, settings.time_scale
            )
            for v in self.vendors
        }
        # Only fed for an API whose latency degrades with its load (degrade_above_rps).
        self.load = {v.name: LoadMeter() for v in self.vendors}
        self.store = self._seeded()

    def _seeded(self) -> Store:
        store = Store({v.name: v.new_store() for v in self.vendors})
        seed(store, self.settings, self.vendors)
        return store

    def session(self, name: str) -> Any:
        """The login state of vendor ``name``, for that vendor's own code to type."""
        return self.sessions[name]

    def reset(self) -> None:
        """Back to the freshly seeded state: store, counters, sessions, windows, fault counter."""
        self.store = self._seeded()
        self.stats.reset()
        self.tokens.reset()
        for sessions in self.sessions.values():
            sessions.reset()
        self.faults.reset()
        for limiter in self.limiters.values():
            limiter.reset()
        for meter in self.load.values():
            meter.reset()


STATE = web.AppKey("bulksync_sandbox_state", SandboxState)
