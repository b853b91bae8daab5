"""What bulksync puts on the wire, seen by a tiny aiohttp server on 127.0.0.1 that counts
every request it receives: no hidden re-sends, no followed redirects, filenames as curl
sends them."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulksync.connectors.fake._fake import FakeTokenSource
from bulksync.engine._http11_transport import Http11Transport
from bulksync.engine.auth import NoAuth, SessionAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy
from bulksync.engine.transport import AiohttpTransport, Transport, form_disposition
from bulksync.spi._connector import RequestFailed
from bulksync.spi._errors import AuthError, ErrorClass, TransportError
from bulksync.spi._http import FilePart, HttpRequest
from bulksync.store.results import RunStats

FAST_RETRY = RetryPolicy(max_attempts=4, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)


@dataclass
class Wire:
    """What the server received, and how it misbehaves."""

    seen: list[str] = field(default_factory=list)  # "METHOD path" of every request received
    dropped: int = 0  # requests closed unanswered
    close_every: int = 0  # after every n-th answer, drop the keep-alive connection; 0: never
    redirect_to: str = ""  # answer every request with a 307 to here
    bodies: list[bytes] = field(default_factory=list)
    _answers: int = 0
    _closing: weakref.WeakSet[object] = field(default_factory=weakref.WeakSet)


async def start(wire: Wire) -> TestServer:
    async def handler(request: web.Request) -> web.StreamResponse:
        wire.seen.append(f"{request.method} {request.path}")
        transport = request.transport
        if transport is not None and transport in wire._closing:
            # The connection was closed after the last answer on it: this request, sent on
            # it, is never answered (as when an idle close crosses the client's next request).
            wire._closing.discard(transport)
            wire.dropped += 1
            transport.abort()
            return web.Response(status=499)
        wire.bodies.append(await request.read())
        if wire.redirect_to:
            return web.Response(status=307, headers={"Location": wire.redirect_to})
        wire._answers += 1
        if wire.close_every and wire._answers % wire.close_every == 0 and transport is not None:
            wire._closing.add(transport)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


TRANSPORTS = {"aiohttp": AiohttpTransport, "http11": Http11Transport}


@pytest.fixture(params=sorted(TRANSPORTS))
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """Both transports: the default (bulksync's HTTP/1.1) and aiohttp, the way back."""
    t: Transport = TRANSPORTS[request.param](timeout_s=5.0)
    try:
        yield t
    finally:
        await t.aclose()


class CountingBudget(RateBudget):
    def __init__(self) -> None:
        super().__init__()
        self.charged = 0

    async def acquire(self) -> None:
        self.charged += 1
        await super().acquire()


# --- no hidden re-sends --------------------------------------------------------------------------


def test_aiohttp_still_has_the_switch_bulksync_turns_off() -> None:
    # A private attribute: if a new aiohttp renames it, this fails rather than bulksync
    # silently counting fewer requests than the server sees.
    assert "_retry_connection" in aiohttp.ClientSession.ATTRS
    source = inspect.getsource(aiohttp.ClientSession._request)
    assert "self._retry_connection and method in IDEMPOTENT_METHODS" in source


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "POST"])
async def test_a_dropped_keepalive_connection_is_an_error_not_a_resend(
    transport: Transport, method: str
) -> None:
    wire = Wire(close_every=1)
    server = await start(wire)
    try:
        url = str(server.make_url("/item"))
        assert (await transport.send(HttpRequest(method, url, json={"n": 1}))).status == 200
        with pytest.raises(TransportError) as caught:
            await transport.send(HttpRequest(method, url, json={"n": 2}))
        assert caught.value.maybe_applied is True
        # aiohttp's default would have sent it a third time and answered 200.
        assert wire.seen == [f"{method} /item"] * 2 and wire.dropped == 1
        assert (await transport.send(HttpRequest(method, url, json={"n": 3}))).status == 200
        assert len(wire.seen) == 3
    finally:
        await server.close()


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
async def test_every_request_the_server_sees_was_charged_and_counted(kind: str) -> None:
    """5% of answers drop their connection; GETs and PUTs, 8 at a time, each retried until
    answered (at most 6 attempts), as the engine's item loop would."""
    wire = Wire(close_every=20)
    server = await start(wire)
    transport = TRANSPORTS[kind](max_connections=8, timeout_s=5.0)
    budget, stats = CountingBudget(), RunStats()
    client = EngineClient(
        Target(str(server.make_url("/")), transport, budget, NoAuth()), stats, FAST_RETRY
    )
    answered = 0
    gave_up = 0

    async def one(i: int, limit: anyio.CapacityLimiter) -> None:
        nonlocal answered, gave_up
        method = "GET" if i % 2 else "PUT"
        async with limit:
            for _ in range(6):
                try:
                    await client.send(HttpRequest(method, f"items/{i}", json={"i": i}))
                except TransportError as exc:
                    assert exc.maybe_applied
                    continue
                answered += 1
                return
            gave_up += 1

    try:
        with anyio.fail_after(60):
            limit = anyio.CapacityLimiter(8)
            async with anyio.create_task_group() as tg:
                for i in range(400):
                    tg.start_soon(one, i, limit)
    finally:
        await transport.aclose()
        await server.close()
    assert (answered, gave_up) == (400, 0)
    assert wire.dropped >= 10  # the drops did happen, GETs and PUTs alike
    assert {entry.split()[0] for entry in wire.seen} == {"GET", "PUT"}
    assert len(wire.seen) == stats.requests == budget.charged == 400 + wire.dropped


# --- redirects ----------------------------------------------------------------------------------


async def test_a_redirect_to_another_origin_is_not_followed(
    transport: Transport,
) -> None:
    elsewhere = Wire()
    other = await start(elsewhere)
    location = str(other.make_url("/landing?token=abc"))
    wire = Wire(redirect_to=location)
    server = await start(wire)
    try:
        url = str(server.make_url("/moved"))
        response = await transport.send(HttpRequest("POST", url, json={"secret": "body"}))
        assert response.status == 307 and response.header("location") == location
        stats = RunStats()
        target = Target(str(server.make_url("/")), transport, RateBudget(), NoAuth())
        client = EngineClient(target, stats, FAST_RETRY)
        with pytest.raises(RequestFailed) as caught:
            await client.send(HttpRequest("PUT", "moved", json={"secret": "body"}))
        assert caught.value.error_class is ErrorClass.ITEM
        assert caught.value.error.message == f"redirected to {location}; not followed"
        assert caught.value.error.http_status == 307
        assert stats.requests == 1
        assert elsewhere.seen == []  # the body never went to the other origin
    finally:
        await server.close()
        await other.close()


async def test_a_redirected_login_stops_with_an_auth_error(transport: Transport) -> None:
    wire = Wire(redirect_to="http://elsewhere.invalid/token")
    server = await start(wire)
    try:
        auth = SessionAuth(FakeTokenSource())
        target = Target(str(server.make_url("/")), transport, RateBudget(), auth)
        client = EngineClient(target, RunStats(), FAST_RETRY)
        with pytest.raises(AuthError, match=r"login redirected to http://elsewhere\.invalid/"):
            await client.send(HttpRequest("GET", "items/1"))
        assert wire.seen == ["POST /token"]  # one login, not retried, nothing followed
    finally:
        await server.close()


# --- multipart filenames ------------------------------------------------------------------------


def test_form_disposition_escapes_as_curl_does() -> None:
    assert form_disposition("file", "photo été.png") == (
        'form-data; name="file"; filename="photo été.png"'
    )
    assert form_disposition('a"b', 'say "hi"\r\n.png') == (
        'form-data; name="a%22b"; filename="say %22hi%22%0D%0A.png"'
    )
    assert form_disposition("title") == 'form-data; name="title"'


async def test_the_filename_goes_out_in_utf8_as_is(transport: Transport, tmp_path: Path) -> None:
    wire = Wire()
    server = await start(wire)
    content = bytes(range(256)) * 300
    path = tmp_path / "local.bin"
    path.write_bytes(content)
    try:
        request = HttpRequest(
            "POST",
            str(server.make_url("/files")),
            fields={"fileType": "image"},
            files=[FilePart("file", path, "photo été.png", "image/png")],
        )
        assert (await transport.send(request)).status == 200
    finally:
        await server.close()
    (body,) = wire.bodies
    disposition = 'Content-Disposition: form-data; name="file"; filename="photo été.png"'
    assert disposition.encode() in body
    assert b"%C3%A9" not in body and b"%20" not in body and b"filename*" not in body
    assert b'Content-Disposition: form-data; name="fileType"\r\n' in body
    assert content in body
