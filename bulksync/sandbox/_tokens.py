"""Who holds which token, and until when.

Lifetimes are API seconds divided by ``time_scale``; ``expires_in`` reports the real remaining
seconds (floored, at least 1) so a client that trusts it refreshes in time, sandbox or not.
"""

from __future__ import annotations

import math
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ._settings import SandboxSettings

Verdict = Literal["ok", "read_only", "expired", "invalid"]
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: str
    expires_in: int
    refresh_token: str = ""


@dataclass(slots=True)
class _Session:
    user: str
    expires_at: float


class TokenRegistry:
    def __init__(
        self, settings: SandboxSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._quable_sessions: dict[str, _Session] = {}
        self._quable_live: dict[str, list[str]] = {}  # user -> live access tokens
        self._quable_remember: dict[str, _Session] = {}  # remember-me token -> owner
        self._quable_user_remember: dict[str, str] = {}
        self._bearer: dict[str, dict[str, float]] = {"propeller": {}, "ocapi": {}}

    def _lifetime(self, seconds: float) -> tuple[float, int]:
        real = self._settings.scaled(seconds)
        return real, max(1, math.floor(real))

    # -- Quable sessions ----------------------------------------------------------------------

    def quable_login(self, user: str) -> Grant:
        """A new login replaces the user's previous access and remember-me tokens."""
        old_remember = self._quable_user_remember.pop(user, None)
        if old_remember is not None:
            self._quable_remember.pop(old_remember, None)
        remember = secrets.token_hex(16)
        real, _ = self._lifetime(self._settings.quable.remember_lifetime_s)
        self._quable_remember[remember] = _Session(user, self._clock() + real)
        self._quable_user_remember[user] = remember
        return self._quable_issue(user, remember)

    def quable_refresh(self, remember: str) -> Grant | None:
        """A new access token for the remember-me token's owner. The docs only say a *login*
        invalidates the previous token; whether a refresh does too is the
        ``quable.refresh_invalidates_previous`` knob."""
        session = self._quable_remember.get(remember)
        if session is None or session.expires_at <= self._clock():
            return None
        invalidate = self._settings.quable.refresh_invalidates_previous
        return self._quable_issue(session.user, remember, invalidate=invalidate)

    def _quable_issue(self, user: str, remember: str, *, invalidate: bool = True) -> Grant:
        live = self._quable_live.setdefault(user, [])
        if invalidate:
            for previous in live:
                self._quable_sessions.pop(previous, None)
            live.clear()
        else:  # forget tokens that expired on their own
            now = self._clock()
            live[:] = [
                t
                for t in live
                if t in self._quable_sessions and self._quable_sessions[t].expires_at > now
            ]
        token = secrets.token_hex(16)
        real, reported = self._lifetime(self._settings.quable.session_lifetime_s)
        self._quable_sessions[token] = _Session(user, self._clock() + real)
        live.append(token)
        return Grant(token, reported, remember)

    def quable_check(self, token: str, is_write: bool) -> Verdict:
        knobs = self._settings.quable
        if token in knobs.tokens:
            return "ok"
        if token in knobs.read_only_tokens:
            return "read_only" if is_write else "ok"
        session = self._quable_sessions.get(token)
        if session is None:
            return "invalid"
        return "ok" if session.expires_at > self._clock() else "expired"

    # -- client-credential APIs ---------------------------------------------------------------

    def issue(self, api: Literal["propeller", "ocapi"]) -> Grant:
        knobs = self._settings.propeller if api == "propeller" else self._settings.ocapi
        if api == "propeller":
            token = "".join(secrets.choice(_ALNUM) for _ in range(28))
        else:
            token = str(uuid.uuid4())
        real, reported = self._lifetime(knobs.token_lifetime_s)
        now = self._clock()
        tokens = self._bearer[api]
        if len(tokens) > 1000:
            # Keep recently expired tokens (to answer "expired", not "invalid"), drop the rest.
            horizon = now - 3600.0
            for old in [t for t, exp in tokens.items() if exp < horizon]:
                del tokens[old]
        tokens[token] = now + real
        return Grant(token, reported)

    def check(self, api: Literal["propeller", "ocapi"], token: str) -> Verdict:
        knobs = self._settings.propeller if api == "propeller" else self._settings.ocapi
        if token in knobs.tokens:
            return "ok"
        expires_at = self._bearer[api].get(token)
        if expires_at is None:
            return "invalid"
        return "ok" if expires_at > self._clock() else "expired"
