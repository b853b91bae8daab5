"""Tests for bulksync.engine.auth: Token, NoAuth, StaticTokenAuth and single-flight SessionAuth."""

from __future__ import annotations

import itertools

import anyio
import anyio.lowlevel
import orjson
import pytest

from bulksync.engine.auth import NoAuth, SessionAuth, StaticTokenAuth
from bulksync.spi._auth import Token
from bulksync.spi._errors import AuthError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._redact import MASK, redact


class Clock:
    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Source:
    """A tiny TokenSource: POST login (form), optional POST refresh (json)."""

    def __init__(self, lifetime: float | None = 1000.0, *, refreshable: bool = False) -> None:
        self.lifetime = lifetime
        self.refreshable = refreshable

    def login_request(self) -> HttpRequest:
        return HttpRequest("POST", "login", form={"user": "u"}, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        if not self.refreshable:
            return None
        body = {"refresh_token": token.refresh_value}
        return HttpRequest("POST", "refresh", json=body, authenticated=False)

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        body = response.json()
        expires = None if self.lifetime is None else now + self.lifetime
        return Token(body["token"], expires, body.get("refresh"))

    def auth_headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.value}"}


class AuthServer:
    """The fake ``send``: counts logins and refreshes, yields so that callers interleave."""

    def __init__(self, *, login_status: int = 200, refresh_status: int = 200) -> None:
        self.login_status = login_status
        self.refresh_status = refresh_status
        self.logins = 0
        self.refreshes = 0
        self.requests: list[HttpRequest] = []
        self._ids = itertools.count(1)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        for _ in range(3):  # a few scheduling points, as a network round trip would have
            await anyio.lowlevel.checkpoint()
        n = next(self._ids)
        if request.url == "login":
            self.logins += 1
            if self.login_status != 200:
                return HttpResponse(self.login_status, {}, b'{"error": "no"}')
            return self._token(f"login-token-{n}")
        if request.url == "refresh":
            self.refreshes += 1
            if self.refresh_status != 200:
                return HttpResponse(self.refresh_status, {}, b'{"error": "no"}')
            return self._token(f"refreshed-token-{n}")
        raise AssertionError(f"unexpected request {request.url}")

    @staticmethod
    def _token(value: str) -> HttpResponse:
        body = {"token": value, "refresh": f"refresh-{value}"}
        return HttpResponse(200, {"content-type": "application/json"}, orjson.dumps(body))


async def gather_headers(auth: SessionAuth, send: AuthServer, n: int) -> list[dict[str, str]]:
    results: list[dict[str, str]] = []

    async def one() -> None:
        results.append(dict(await auth.headers(send)))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return results


# --- single flight -------------------------------------------------------------------------


async def test_concurrent_first_calls_log_in_exactly_once() -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer()
    results = await gather_headers(auth, send, 50)
    assert send.logins == 1 and auth.logins == 1
    assert len(results) == 50
    assert all(h == {"Authorization": "Bearer login-token-1"} for h in results)
    # later calls reuse the token
    assert await auth.headers(send) == {"Authorization": "Bearer login-token-1"}
    assert send.logins == 1
    assert all(not r.authenticated for r in send.requests)


async def test_concurrent_refreshes_of_one_stale_token_log_in_once() -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer()
    stale = dict(await auth.headers(send))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(auth.refresh, send, stale)
    assert send.logins == 2  # the first login, then one for the 50 refusals
    fresh = await auth.headers(send)
    assert fresh != stale
    assert fresh == {"Authorization": "Bearer login-token-2"}


async def test_refresh_of_an_already_replaced_token_does_nothing() -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer()
    first = dict(await auth.headers(send))
    await auth.refresh(send, first)
    second = dict(await auth.headers(send))
    assert second != first and send.logins == 2
    await auth.refresh(send, first)  # a late worker reporting the old token's 401
    assert send.logins == 2
    assert await auth.headers(send) == second
    await auth.refresh(send, second)  # the current token refused: that one does renew
    assert send.logins == 3


# --- refresh before expiry -------------------------------------------------------------------


async def test_long_token_is_renewed_a_margin_before_expiry() -> None:
    clock = Clock(500.0)
    auth, send = SessionAuth(Source(lifetime=1000.0), margin_s=60.0, clock=clock), AuthServer()
    first = await auth.headers(send)
    clock.t = 500.0 + 939.0
    assert await auth.headers(send) == first
    assert send.logins == 1
    clock.t = 500.0 + 941.0  # inside the 60 s margin: renewed before it expires
    second = await auth.headers(send)
    assert second != first and send.logins == 2
    # the new token's clock starts at the renewal
    clock.t = 500.0 + 941.0 + 939.0
    assert await auth.headers(send) == second and send.logins == 2


async def test_short_token_is_renewed_at_80_percent_of_its_life() -> None:
    clock = Clock(0.0)
    auth, send = SessionAuth(Source(lifetime=10.0), margin_s=60.0, clock=clock), AuthServer()
    await auth.headers(send)
    clock.t = 7.9
    await auth.headers(send)
    assert send.logins == 1
    clock.t = 8.1
    await auth.headers(send)
    assert send.logins == 2


async def test_concurrent_callers_at_expiry_renew_once() -> None:
    clock = Clock(0.0)
    auth, send = SessionAuth(Source(lifetime=100.0), margin_s=10.0, clock=clock), AuthServer()
    await auth.headers(send)
    clock.t = 95.0
    results = await gather_headers(auth, send, 50)
    assert send.logins == 2
    assert {h["Authorization"] for h in results} == {"Bearer login-token-2"}


async def test_token_without_expiry_is_never_renewed() -> None:
    clock = Clock(0.0)
    auth, send = SessionAuth(Source(lifetime=None), clock=clock), AuthServer()
    await auth.headers(send)
    clock.t = 1e9
    await auth.headers(send)
    assert send.logins == 1


# --- refresh requests ---------------------------------------------------------------------------


async def test_refresh_request_is_used_when_the_source_has_one() -> None:
    clock = Clock(0.0)
    auth = SessionAuth(Source(lifetime=100.0, refreshable=True), margin_s=10.0, clock=clock)
    send = AuthServer()
    await auth.headers(send)
    assert (send.logins, send.refreshes) == (1, 0)
    clock.t = 95.0
    headers = await auth.headers(send)
    assert (send.logins, send.refreshes) == (1, 1)
    assert (auth.logins, auth.refreshes) == (1, 1)
    assert headers == {"Authorization": "Bearer refreshed-token-2"}
    refresh = send.requests[-1]
    assert refresh.url == "refresh"
    assert refresh.json == {"refresh_token": "refresh-login-token-1"}


async def test_refresh_after_401_uses_the_refresh_request() -> None:
    auth = SessionAuth(Source(refreshable=True), clock=Clock())
    send = AuthServer()
    stale = dict(await auth.headers(send))
    await auth.refresh(send, stale)
    assert (send.logins, send.refreshes) == (1, 1)


async def test_failed_refresh_falls_back_to_a_login() -> None:
    clock = Clock(0.0)
    auth = SessionAuth(Source(lifetime=100.0, refreshable=True), margin_s=10.0, clock=clock)
    send = AuthServer(refresh_status=401)
    await auth.headers(send)
    clock.t = 95.0
    headers = await auth.headers(send)
    assert (send.logins, send.refreshes) == (2, 1)
    assert (auth.logins, auth.refreshes) == (2, 0)
    assert headers == {"Authorization": "Bearer login-token-3"}


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 500])
async def test_refused_login_raises_auth_error(status: int) -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer(login_status=status)
    with pytest.raises(AuthError, match=str(status)):
        await auth.headers(send)
    assert auth.logins == 0
    # nothing is left locked or half-adopted: the next call tries again, and can succeed
    send.login_status = 200
    with anyio.fail_after(1.0):
        assert await auth.headers(send) == {"Authorization": "Bearer login-token-2"}
    assert auth.logins == 1


async def test_refused_login_during_refresh_raises_auth_error() -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer()
    stale = dict(await auth.headers(send))
    send.login_status = 403
    with pytest.raises(AuthError):
        await auth.refresh(send, stale)


async def test_static_token_auth() -> None:
    send = AuthServer()
    auth = StaticTokenAuth("static-api-token-123")
    assert await auth.headers(send) == {"Authorization": "Bearer static-api-token-123"}
    assert await StaticTokenAuth("abcd1234", scheme="Token").headers(send) == {
        "Authorization": "Token abcd1234"
    }
    with pytest.raises(AuthError):
        await auth.refresh(send, {"Authorization": "Bearer static-api-token-123"})
    assert send.requests == []
    assert redact("token static-api-token-123 leaked") == f"token {MASK} leaked"


async def test_no_auth() -> None:
    send = AuthServer()
    auth = NoAuth()
    assert await auth.headers(send) == {}
    with pytest.raises(AuthError):
        await auth.refresh(send, {})
    assert send.requests == []


# --- Token and redaction -------------------------------------------------------------------------


def test_token_repr_never_shows_the_secret() -> None:
    token = Token("s3cr3t-access-value", 123.0, "s3cr3t-refresh-value")
    for text in (repr(token), str(token), f"{token!r}", f"{token}"):
        assert "s3cr3t" not in text
    assert "123.0" in repr(token)


def test_tokens_are_registered_for_redaction() -> None:
    Token("access-value-9f8e7d", None, "refresh-value-1a2b3c")
    line = "sent access-value-9f8e7d, refresh with refresh-value-1a2b3c"
    assert redact(line) == f"sent {MASK}, refresh with {MASK}"


async def test_tokens_from_a_login_are_redacted() -> None:
    auth, send = SessionAuth(Source(), clock=Clock()), AuthServer()
    headers = await auth.headers(send)
    value = headers["Authorization"].removeprefix("Bearer ")
    assert redact(f"Authorization: Bearer {value}") == f"Authorization: Bearer {MASK}"
    assert value not in redact(f"refresh token: refresh-{value}")


def test_very_short_values_are_not_registered() -> None:
    Token("ab")  # too short to mask without masking ordinary words
    assert redact("ab cab") == "ab cab"


def test_a_secret_containing_another_is_masked_whole() -> None:
    # 30 independent (short, long) pairs: the set order gets every pair right with p = 2**-30.
    line = []
    for i in range(30):
        short = f"nested-{i:02d}-access"
        long = f"{short}-and-{i:02d}-refresh-tail"
        Token(short, None, long)
        line.append(long)
    redacted = redact(" ".join(line))
    assert "refresh-tail" not in redacted
    assert redacted == " ".join([MASK] * 30)
