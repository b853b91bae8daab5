"""Authentication as the engine runs it: one session per job, refreshed single-flight.

A connector only knows how to ask for a token and how to read the answer (a
:class:`TokenSource`); when to log in, when to refresh and how to keep fifty workers from
logging in at once is decided here. A new login can invalidate the previous token (Quable
does), so there is never more than one login in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import anyio

from bulksync.spi._auth import Token, TokenSource
from bulksync.spi._errors import AuthError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._redact import register_secret

log = logging.getLogger("bulksync.auth")

SendUnauthenticated = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Authenticator(Protocol):
    async def headers(self, send: SendUnauthenticated) -> Mapping[str, str]: ...

    async def refresh(self, send: SendUnauthenticated, stale: Mapping[str, str]) -> None: ...


class NoAuth:
    async def headers(self, send: SendUnauthenticated) -> Mapping[str, str]:
        return {}

    async def refresh(self, send: SendUnauthenticated, stale: Mapping[str, str]) -> None:
        raise AuthError("the target refused the request (401) and no credentials are configured")


class StaticTokenAuth:
    """A fixed bearer token (Quable API tokens): nothing to refresh."""

    def __init__(self, token: str, scheme: str = "Bearer") -> None:
        register_secret(token)
        self._headers = {"Authorization": f"{scheme} {token}"}

    async def headers(self, send: SendUnauthenticated) -> Mapping[str, str]:
        return self._headers

    async def refresh(self, send: SendUnauthenticated, stale: Mapping[str, str]) -> None:
        raise AuthError("the target refused the API token (401): check the token and its rights")


class SessionAuth:
    """A login shared by every worker: refreshed before expiry and once after a 401."""

    def __init__(
        self,
        source: TokenSource,
        *,
        margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._margin_s = margin_s
        self._clock = clock
        self._lock = anyio.Lock()
        self._token: Token | None = None
        self._refresh_at = 0.0
        self.logins = 0
        self.refreshes = 0

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    def _adopt(self, token: Token) -> None:
        self._token = token
        if token.expires_at is None:
            self._refresh_at = float("inf")
            return
        now = self._clock()
        lifetime = token.expires_at - now
        if lifetime <= 0:
            # An expiry already past ("expires_in": "0"): refresh on a 401 only, or every
            # request would log in first.
            self._refresh_at = float("inf")
            return
        # Refresh a margin before expiry; short-lived tokens (seconds, in tests) at 80% of
        # their life, so the margin never swallows the whole lifetime.
        self._refresh_at = now + max(lifetime - self._margin_s, lifetime * 0.8)

    async def headers(self, send: SendUnauthenticated) -> Mapping[str, str]:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    why = "first request" if self._token is None else "token about to expire"
                    await self._renew(send, why)
        assert self._token is not None
        return self._source.auth_headers(self._token)

    async def refresh(self, send: SendUnauthenticated, stale: Mapping[str, str]) -> None:
        async with self._lock:
            if self._token is not None and self._source.auth_headers(self._token) != stale:
                return  # another worker already replaced the token that was refused
            await self._renew(send, "the target answered 401")

    async def _renew(self, send: SendUnauthenticated, why: str) -> None:
        request = self._source.refresh_request(self._token) if self._token else None
        if request is not None:
            response = await send(request)
            if response.ok:
                self.refreshes += 1
                self._adopt(self._source.parse_token(response, self._clock()))
                self._log("token refreshed", "token_refresh", why)
                return
            log.info(
                "token refresh refused (HTTP %d): logging in again",
                response.status,
                extra={"event": "token_refresh_refused", "status": response.status},
            )
        response = await send(self._source.login_request())
        if not response.ok:
            raise AuthError(f"login refused by the target (HTTP {response.status})")
        self.logins += 1
        self._adopt(self._source.parse_token(response, self._clock()))
        self._log("logged in", "login", why)

    def _log(self, what: str, event: str, why: str) -> None:
        assert self._token is not None
        expires = self._token.expires_at
        life = None if expires is None else round(expires - self._clock(), 1)
        lasting = "" if life is None else f", valid {life:g} s"
        log.info(
            "%s (%s%s)", what, why, lasting, extra={"event": event, "reason": why, "valid_s": life}
        )
