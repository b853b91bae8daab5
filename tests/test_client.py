"""Tests for bulksync.engine.client over the FakeServer and over a scripted transport."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
import orjson
import pytest

from bulksync.connectors.fake._fake import FakeServer, FakeSettings, FakeTokenSource
from bulksync.engine.auth import Authenticator, NoAuth, SessionAuth, StaticTokenAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._errors import AuthError, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.store.results import RunStats

BASE = "https://api.example.com/v1"

FAST_RETRY = RetryPolicy(max_attempts=4, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)


def login_ok(token: str, lifetime: float = 3600.0) -> HttpResponse:
    body = {"access_token": token, "expires_in": lifetime}
    return HttpResponse(200, {"content-type": "application/json"}, orjson.dumps(body))


def status(code: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(code, headers or {}, b"{}")


Reply = HttpResponse | Exception


class ScriptedTransport:
    """Answers each path from its own queue of replies, then from a default."""

    def __init__(
        self, script: dict[str, list[Reply]] | None = None, default: Reply | None = None
    ) -> None:
        self.script = {path: list(replies) for path, replies in (script or {}).items()}
        self.default = default if default is not None else status(200)
        self.requests: list[HttpRequest] = []
        self.on_send: Callable[[HttpRequest], None] | None = None
        self.closed = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.on_send is not None:
            self.on_send(request)
        await anyio.lowlevel.checkpoint()
        path = request.url.removeprefix(BASE + "/")
        queue = self.script.get(path)
        reply = queue.pop(0) if queue else self.default
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        self.closed = True

    def paths(self) -> list[str]:
        return [r.url.removeprefix(BASE + "/") for r in self.requests]

    def tokens(self) -> list[str | None]:
        return [r.headers.get("Authorization") for r in self.requests]


class SpyBudget(RateBudget):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.throttle_calls: list[float | None] = []

    def on_throttled(self, retry_after: float | None = None) -> None:
        self.throttle_calls.append(retry_after)
        super().on_throttled(retry_after)


@dataclass
class Rig:
    client: EngineClient
    transport: ScriptedTransport
    budget: SpyBudget
    stats: RunStats
    auth: Authenticator
    retry: RetryPolicy = field(default_factory=lambda: FAST_RETRY)


def rig(
    transport: ScriptedTransport,
    *,
    auth: Authenticator | None = None,
    budget: SpyBudget | None = None,
    retry: RetryPolicy = FAST_RETRY,
    base_url: str = BASE,
) -> Rig:
    auth = auth if auth is not None else SessionAuth(FakeTokenSource())
    budget = budget if budget is not None else SpyBudget()
    stats = RunStats()
    client = EngineClient(Target(base_url, transport, budget, auth), stats, retry)
    return Rig(client, transport, budget, stats, auth, retry)


def post(key: str) -> HttpRequest:
    return HttpRequest("POST", "assets", json={"key": key})


# --- over the FakeServer ------------------------------------------------------------------------


def fake_target(server: FakeServer, budget: RateBudget) -> tuple[EngineClient, RunStats]:
    stats = RunStats()
    target = Target("https://fake.invalid", server, budget, SessionAuth(FakeTokenSource()))
    return EngineClient(target, stats, FAST_RETRY), stats


async def test_fake_server_round_trip_charges_every_request() -> None:
    server = FakeServer(FakeSettings(token_lifetime_s=60.0))
    budget = RateBudget()
    client, stats = fake_target(server, budget)
    for i in range(20):
        response = await client.send(post(f"k{i}"))
        assert response.status == 201
    assert server.counters.logins == 1
    assert server.counters.requests == 21
    assert budget.granted == server.counters.requests
    assert stats.requests == server.counters.requests
    assert stats.latency.count == server.counters.requests
    assert sorted(server.counters.applied) == sorted(f"k{i}" for i in range(20))


async def test_fake_server_concurrent_workers_with_expiring_tokens() -> None:
    server = FakeServer(FakeSettings(token_lifetime_s=0.05))
    budget = RateBudget(pace=20_000.0)
    client, stats = fake_target(server, budget)
    statuses: list[int] = []

    async def worker(w: int) -> None:
        for i in range(6):
            statuses.append((await client.send(post(f"w{w}-{i}"))).status)
            await anyio.sleep(0.02)

    with anyio.fail_after(5.0):
        async with anyio.create_task_group() as tg:
            for w in range(50):
                tg.start_soon(worker, w)
    assert statuses == [201] * 300
    assert server.counters.logins >= 2  # tokens were renewed along the way...
    assert server.counters.logins <= 20  # ...single-flight, not once per worker (50)
    assert budget.granted == server.counters.requests == stats.requests
    assert all(n == 1 for n in server.counters.applied.values())


async def test_fake_server_expired_token_is_refreshed_after_401() -> None:
    # The session's clock is frozen, so it never renews on its own: only the 401 makes it.
    server = FakeServer(FakeSettings(token_lifetime_s=0.1))
    budget = RateBudget()
    stats = RunStats()
    auth = SessionAuth(FakeTokenSource(), clock=lambda: 0.0)
    client = EngineClient(Target("https://fake.invalid/", server, budget, auth), stats, FAST_RETRY)
    assert (await client.send(post("a"))).status == 201
    await anyio.sleep(0.12)
    assert (await client.send(post("b"))).status == 201
    assert server.counters.expired_tokens_seen == 1
    assert server.counters.logins == 2
    # login, a, (b refused, login, b again)
    assert server.counters.requests == 5
    assert budget.granted == 5 and stats.requests == 5


# --- 401 handling -------------------------------------------------------------------------------


async def test_401_refreshes_once_and_resends_once() -> None:
    transport = ScriptedTransport(
        {"token": [login_ok("tok-one"), login_ok("tok-two")], "assets": [status(401)]}
    )
    r = rig(transport)
    response = await r.client.send(post("a"))
    assert response.status == 200
    assert transport.paths() == ["token", "assets", "token", "assets"]
    assert transport.tokens() == [None, "Bearer tok-one", None, "Bearer tok-two"]
    assert r.budget.granted == len(transport.requests) == 4
    assert r.stats.requests == 4


async def test_second_401_raises_auth_error() -> None:
    transport = ScriptedTransport(
        {"token": [login_ok("tok-one"), login_ok("tok-two")], "assets": [status(401), status(401)]}
    )
    r = rig(transport)
    with pytest.raises(AuthError):
        await r.client.send(post("a"))
    assert transport.paths() == ["token", "assets", "token", "assets"]
    assert r.budget.granted == 4


async def test_401_with_a_static_token_raises_auth_error_without_resending() -> None:
    transport = ScriptedTransport({"assets": [status(401)]})
    r = rig(transport, auth=StaticTokenAuth("static-token-xyz"))
    with pytest.raises(AuthError):
        await r.client.send(post("a"))
    assert transport.paths() == ["assets"]
    assert transport.tokens() == ["Bearer static-token-xyz"]


async def test_401_without_auth_raises_auth_error() -> None:
    r = rig(ScriptedTransport({"assets": [status(401)]}), auth=NoAuth())
    with pytest.raises(AuthError):
        await r.client.send(post("a"))
    assert r.transport.tokens() == [None]


async def test_401_to_an_unauthenticated_request_is_returned_as_is() -> None:
    transport = ScriptedTransport({"public": [status(401)]})
    r = rig(transport)
    response = await r.client.send(HttpRequest("GET", "public", authenticated=False))
    assert response.status == 401
    assert transport.paths() == ["public"]  # no login, no resend
    assert transport.tokens() == [None]


async def test_concurrent_401s_refresh_once() -> None:
    transport = ScriptedTransport(
        {"token": [login_ok("tok-one"), login_ok("tok-two")], "assets": [status(401)] * 20}
    )
    r = rig(transport)
    await r.client.send(HttpRequest("GET", "ping"))  # log in first
    statuses: list[int] = []

    async def one(i: int) -> None:
        statuses.append((await r.client.send(post(str(i)))).status)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert statuses == [200] * 20
    assert transport.paths().count("token") == 2
    assert r.budget.granted == len(transport.requests) == 1 + 1 + 20 + 1 + 20


async def test_token_is_taken_after_the_budget_wait() -> None:
    """A long budget wait must not send a token that went stale while it waited."""
    clock = [0.0]

    async def fake_sleep(delay: float) -> None:
        clock[0] += delay
        await anyio.lowlevel.checkpoint()

    budget = SpyBudget(clock=lambda: clock[0], sleep=fake_sleep)
    auth = SessionAuth(FakeTokenSource(), margin_s=10.0, clock=lambda: clock[0])
    transport = ScriptedTransport(
        {"token": [login_ok("tok-one", 100.0), login_ok("tok-two", 100.0)]}
    )
    r = rig(transport, auth=auth, budget=budget)
    await r.client.send(HttpRequest("GET", "ping"))
    budget.on_throttled(retry_after=95.0)  # the whole budget pauses past the token's refresh
    await r.client.send(HttpRequest("GET", "ping"))
    assert clock[0] >= 95.0
    assert transport.paths() == ["token", "ping", "token", "ping"]
    assert transport.tokens()[-1] == "Bearer tok-two"
    assert budget.granted == 4


# --- 429 ----------------------------------------------------------------------------------------


async def test_429_with_retry_after_throttles_the_budget() -> None:
    transport = ScriptedTransport({"assets": [status(429, {"retry-after": "3"})]})
    r = rig(transport, auth=NoAuth())
    response = await r.client.send(post("a"))
    assert response.status == 429  # the client does not retry items: the engine does
    assert r.budget.throttle_calls == [3.0]
    assert r.stats.throttled == 1 and r.budget.throttled == 1
    assert transport.paths() == ["assets"]


async def test_429_pause_delays_the_next_request() -> None:
    clock = [0.0]

    async def fake_sleep(delay: float) -> None:
        clock[0] += delay
        await anyio.lowlevel.checkpoint()

    sent_at: list[float] = []
    transport = ScriptedTransport({"assets": [status(429, {"retry-after": "7"})]})
    transport.on_send = lambda _request: sent_at.append(clock[0])
    r = rig(transport, auth=NoAuth(), budget=SpyBudget(clock=lambda: clock[0], sleep=fake_sleep))
    await r.client.send(post("a"))
    await r.client.send(post("b"))
    assert sent_at[0] == 0.0
    assert sent_at[1] >= 7.0


async def test_429_with_an_infinite_retry_after_does_not_stop_the_budget() -> None:
    clock = [0.0]

    async def fake_sleep(delay: float) -> None:
        assert math.isfinite(delay), f"the budget would sleep {delay} s"
        clock[0] += delay
        await anyio.lowlevel.checkpoint()

    transport = ScriptedTransport({"assets": [status(429, {"retry-after": "inf"})]})
    r = rig(transport, auth=NoAuth(), budget=SpyBudget(clock=lambda: clock[0], sleep=fake_sleep))
    await r.client.send(post("a"))
    await r.client.send(post("b"))
    assert math.isfinite(clock[0])
    assert transport.paths() == ["assets", "assets"]


async def test_429_without_retry_after_slows_the_pace() -> None:
    transport = ScriptedTransport({"assets": [status(429)]})
    r = rig(transport, auth=NoAuth(), budget=SpyBudget(pace=100.0))
    await r.client.send(post("a"))
    assert r.budget.throttle_calls == [None]
    assert r.stats.throttled == 1
    assert r.budget.rate is not None and r.budget.rate < 100.0


async def test_429_with_an_http_date_retry_after() -> None:
    when = email.utils.formatdate(time.time() + 30.0, usegmt=True)
    transport = ScriptedTransport({"assets": [status(429, {"retry-after": when})]})
    r = rig(transport, auth=NoAuth())
    await r.client.send(post("a"))
    (retry_after,) = r.budget.throttle_calls
    assert retry_after is not None and 27.0 <= retry_after <= 31.0


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
@pytest.mark.parametrize("path", ["assets", "/assets"])
async def test_relative_urls_are_joined_to_the_base(base: str, path: str) -> None:
    transport = ScriptedTransport()
    r = rig(transport, auth=NoAuth(), base_url=base)
    await r.client.send(HttpRequest("GET", path, params={"page": "2"}))
    (request,) = transport.requests
    assert request.url == "https://api.example.com/v1/assets"
    assert request.params == {"page": "2"}


async def test_absolute_urls_are_left_alone_and_logins_are_joined_too() -> None:
    transport = ScriptedTransport({"token": [login_ok("tok")]})
    r = rig(transport)
    await r.client.send(HttpRequest("GET", "https://cdn.example.org/x.png"))
    assert [q.url for q in transport.requests] == [
        f"{BASE}/token",
        "https://cdn.example.org/x.png",
    ]
    assert transport.requests[1].headers == {"Authorization": "Bearer tok"}


async def test_relative_url_with_a_url_in_its_query_is_joined() -> None:
    transport = ScriptedTransport()
    r = rig(transport, auth=NoAuth())
    await r.client.send(HttpRequest("GET", "assets?source=https://cdn.example.org/a.png"))
    (request,) = transport.requests
    assert request.url == f"{BASE}/assets?source=https://cdn.example.org/a.png"


# --- login retries ------------------------------------------------------------------------------


async def test_login_is_retried_on_503_then_succeeds() -> None:
    transport = ScriptedTransport({"token": [status(503), status(503), login_ok("tok")]})
    r = rig(transport)
    response = await r.client.send(post("a"))
    assert response.status == 200
    assert transport.paths() == ["token", "token", "token", "assets"]
    assert r.budget.granted == len(transport.requests) == 4
    assert r.stats.requests == 4 and r.stats.retries == 2
    assert transport.tokens()[-1] == "Bearer tok"


async def test_login_is_retried_on_transport_errors() -> None:
    drop = TransportError("reset", maybe_applied=True)
    transport = ScriptedTransport({"token": [drop, status(502), login_ok("tok")]})
    r = rig(transport)
    assert (await r.client.send(post("a"))).status == 200
    assert transport.paths() == ["token", "token", "token", "assets"]
    assert r.budget.granted == 4 and r.stats.retries == 2


async def test_login_429_throttles_the_budget_and_is_retried() -> None:
    throttled = status(429, {"retry-after": "0"})
    transport = ScriptedTransport({"token": [throttled, login_ok("tok")]})
    r = rig(transport)
    assert (await r.client.send(post("a"))).status == 200
    assert r.budget.throttle_calls == [0.0]
    assert r.stats.throttled == 1 and r.stats.retries == 1
    assert r.budget.granted == 3


async def test_login_failing_beyond_the_retry_policy_raises_auth_error() -> None:
    transport = ScriptedTransport({"token": []}, default=status(503))
    retry = RetryPolicy(max_attempts=3, max_elapsed_s=10.0, base_s=0.001, cap_s=0.001)
    r = rig(transport, retry=retry)
    with pytest.raises(AuthError, match="3 attempts"):
        await r.client.send(post("a"))
    assert transport.paths() == ["token"] * 3  # the item's request was never sent
    assert r.stats.requests == 3
    # every login attempt is charged; so is the item's own slot, taken before its login
    assert r.budget.granted in (3, 4)
    assert r.stats.retries == 2


async def test_login_retries_stop_at_max_elapsed() -> None:
    transport = ScriptedTransport({"token": []}, default=status(503, {"retry-after": "60"}))
    retry = RetryPolicy(max_attempts=50, max_elapsed_s=5.0, base_s=0.001, cap_s=0.001)
    r = rig(transport, retry=retry)
    with anyio.fail_after(2.0), pytest.raises(AuthError):
        await r.client.send(post("a"))
    assert transport.paths() == ["token"]  # waiting 60 s would overrun 5 s: give up at once


@pytest.mark.parametrize("code", [400, 401, 403])
async def test_refused_login_is_not_retried(code: int) -> None:
    transport = ScriptedTransport({"token": [status(code)]})
    r = rig(transport)
    with pytest.raises(AuthError):
        await r.client.send(post("a"))
    assert transport.paths() == ["token"]
    assert r.budget.granted in (1, 2) and r.stats.retries == 0


async def test_transport_errors_on_items_propagate_unretried() -> None:
    transport = ScriptedTransport(
        {"token": [login_ok("tok")], "assets": [TransportError("gone", maybe_applied=True)]}
    )
    r = rig(transport)
    with pytest.raises(TransportError):
        await r.client.send(post("a"))
    assert transport.paths() == ["token", "assets"]
    assert r.budget.granted == 2 and r.stats.retries == 0


async def test_server_errors_on_items_are_returned_not_retried() -> None:
    transport = ScriptedTransport({"token": [login_ok("tok")], "assets": [status(503)]})
    r = rig(transport)
    assert (await r.client.send(post("a"))).status == 503
    assert transport.paths() == ["token", "assets"]
    assert r.stats.retries == 0


def test_the_request_sent_keeps_every_field_of_the_one_built() -> None:
    """The client copies a request field by field (cheaper than dataclasses.replace): a field
    added to HttpRequest must be copied there too."""
    from dataclasses import fields, replace

    from bulksync.engine.client import _sendable
    from bulksync.spi._http import FilePart

    built = HttpRequest(
        "PUT",
        "api/x",
        headers={"A": "1"},
        json={"j": 1},
        form={"f": "1"},
        fields={"m": "1"},
        files=(FilePart("file", Path("a.png"), "a.png"),),
        body=b"b",
        params={"p": "1"},
        timeout_s=3.0,
        authenticated=False,
    )
    assert {f.name for f in fields(HttpRequest)} == {
        "method", "url", "headers", "json", "form", "fields", "files", "body", "params",
        "timeout_s", "authenticated",
    }  # fmt: skip
    sent = _sendable(built, "http://h/api/x", {"Authorization": "t"})
    assert sent == replace(built, url="http://h/api/x", headers={"A": "1", "Authorization": "t"})
