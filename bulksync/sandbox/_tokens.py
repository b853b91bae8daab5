"""Who holds which bearer token, and until when (a vendor's own sessions are its own).

Lifetimes are API seconds divided by ``time_scale``; ``expires_in`` reports the real remaining
seconds (floored, at least 1) so a client that trusts it refreshes in time, sandbox or not.
"""

from __future__ import annotations

import math
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bulksync.sandbox._settings import SandboxSettings

Verdict = Literal["ok", "read_only", "expired", "invalid"]
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: str
    expires_in: int
    refresh_token: str = ""


def lifetime(settings: SandboxSettings, seconds: float) -> tuple[float, int]:
    real = settings.scaled(seconds)
    return real, max(1, math.floor(real))


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class TokenRegistry:
    """Bearer tokens of the client-credential APIs, by API name."""

    def __init__(
        self, settings: SandboxSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._bearer: dict[str, dict[str, float]] = {}

    def lifetime(self, seconds: float) -> tuple[float, int]:
        """Real seconds an API lifetime lasts, and the ``expires_in`` to report for it."""
        return lifetime(self._settings, seconds)

    # -- client-credential APIs ---------------------------------------------------------------

    def issue(self, api: str, token: str, lifetime_s: float) -> Grant:
        """Register ``token`` (made in the API's own format) for ``lifetime_s`` API seconds."""
        real, reported = self.lifetime(lifetime_s)
        now = self._clock()
        tokens = self._bearer.setdefault(api, {})
        if len(tokens) > 1000:
            # Keep recently expired tokens (to answer "expired", not "invalid"), drop the rest.
            horizon = now - 3600.0
            for old in [t for t, exp in tokens.items() if exp < horizon]:
                del tokens[old]
        tokens[token] = now + real
        return Grant(token, reported)

    def check(self, api: str, token: str, static: tuple[str, ...] = ()) -> Verdict:
        """``static`` tokens never expire; the others are those :meth:`issue` handed out."""
        if token in static:
            return "ok"
        expires_at = self._bearer.get(api, {}).get(token)
        if expires_at is None:
            return "invalid"
        return "ok" if expires_at > self._clock() else "expired"
