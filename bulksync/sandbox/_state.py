"""Everything one running sandbox holds: settings, store, counters, tokens, limiters, faults."""

from __future__ import annotations

import time

from aiohttp import web

from ._faults import FaultInjector
from ._ratelimit import SlidingWindowLimiter
from ._seed import seed
from ._settings import APIS, SandboxSettings
from ._stats import Stats
from ._store import Store
from ._tokens import TokenRegistry


class SandboxState:
    """The live state behind one app; tests reach it as ``sandbox.state``."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.clock = time.monotonic
        self.stats = Stats()
        self.tokens = TokenRegistry(settings, self.clock)
        self.faults = FaultInjector(settings.faults)
        self.limiters = {
            api: SlidingWindowLimiter(settings.api(api).rate_limit.windows, settings.time_scale)
            for api in APIS
        }
        self.store = Store()
        seed(self.store, settings)

    def reset(self) -> None:
        """Back to the freshly seeded state: store, counters, sessions, windows, fault counter."""
        self.store = Store()
        seed(self.store, self.settings)
        self.stats.reset()
        self.tokens.reset()
        self.faults.reset()
        for limiter in self.limiters.values():
            limiter.reset()


STATE = web.AppKey("bulksync_sandbox_state", SandboxState)
