"""Quable's login sessions: access tokens per user, and the remember-me tokens that renew them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bulksync.sandbox._settings import SandboxSettings
from bulksync.sandbox._tokens import Grant, Verdict, lifetime
from bulksync.sandbox.quable._settings import QuableSettings


@dataclass(slots=True)
class _Session:
    user: str
    expires_at: float


class QuableSessions:
    def __init__(
        self, settings: SandboxSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._knobs = settings.of(QuableSettings)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._live: dict[str, list[str]] = {}  # user -> live access tokens
        self._remember: dict[str, _Session] = {}  # remember-me token -> owner
        self._user_remember: dict[str, str] = {}

    def login(self, user: str) -> Grant:
        """A new login replaces the user's previous access and remember-me tokens."""
        old_remember = self._user_remember.pop(user, None)
        if old_remember is not None:
            self._remember.pop(old_remember, None)
        remember = secrets.token_hex(16)
        real, _ = lifetime(self._settings, self._knobs.remember_lifetime_s)
        self._remember[remember] = _Session(user, self._clock() + real)
        self._user_remember[user] = remember
        return self._issue(user, remember)

    def refresh(self, remember: str) -> Grant | None:
        """A new access token for the remember-me token's owner. The docs only say a *login*
        invalidates the previous token; whether a refresh does too is the
        ``quable.refresh_invalidates_previous`` knob."""
        session = self._remember.get(remember)
        if session is None or session.expires_at <= self._clock():
            return None
        invalidate = self._knobs.refresh_invalidates_previous
        return self._issue(session.user, remember, invalidate=invalidate)

    def _issue(self, user: str, remember: str, *, invalidate: bool = True) -> Grant:
        live = self._live.setdefault(user, [])
        if invalidate:
            for previous in live:
                self._sessions.pop(previous, None)
            live.clear()
        else:  # forget tokens that expired on their own
            now = self._clock()
            live[:] = [
                t for t in live if t in self._sessions and self._sessions[t].expires_at > now
            ]
        token = secrets.token_hex(16)
        real, reported = lifetime(self._settings, self._knobs.session_lifetime_s)
        self._sessions[token] = _Session(user, self._clock() + real)
        live.append(token)
        return Grant(token, reported, remember)

    def check(self, token: str, is_write: bool) -> Verdict:
        knobs = self._knobs
        if token in knobs.tokens:
            return "ok"
        if token in knobs.read_only_tokens:
            return "read_only" if is_write else "ok"
        session = self._sessions.get(token)
        if session is None:
            return "invalid"
        return "ok" if session.expires_at > self._clock() else "expired"
