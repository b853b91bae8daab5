"""bulksync's HTTP/1.1 transport against servers on 127.0.0.1: what it sends, what answers it
reads (lengths, chunks, gzip, interim 100s, bodies ended by a close), and how every way of
going unanswered becomes the same TransportError as with aiohttp."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulksync.engine._http11_transport import Http11Transport
from bulksync.spi._errors import REFUSED, TLS, TransportError
from bulksync.spi._http import HttpRequest

HEAD_END = b"\r\n\r\n"


@dataclass
class Canned:
    """A raw TCP server answering each request with the next canned bytes (then closing, if
    the canned answer says so), counting connections and requests."""

    answers: list[bytes | None]  # None: close the connection unanswered
    close_after: set[int] = field(default_factory=set)  # answer numbers followed by a close
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(HEAD_END)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                number = len(self.requests) - 1
                answer = self.answers[min(number, len(self.answers) - 1)]
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if number in self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def canned() -> AsyncIterator[Callable[..., Canned]]:
    servers: list[Canned] = []

    async def make(*answers: bytes | None, close_after: set[int] | None = None) -> Canned:
        server = Canned(list(answers), close_after or set())
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        assert server.server is not None
        server.server.close()


@pytest.fixture
async def transport() -> AsyncIterator[Http11Transport]:
    t = Http11Transport(max_connections=4, timeout_s=5.0)
    try:
        yield t
    finally:
        await t.aclose()


def ok(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


# --- what goes out ------------------------------------------------------------------------------


async def test_json_form_params_and_headers_reach_an_aiohttp_server() -> None:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        return web.json_response({"ok": True}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    transport = Http11Transport(timeout_s=5.0)
    base = str(server.make_url("/"))
    try:
        json_request = HttpRequest(
            "POST", base + "api/links", headers={"Authorization": "Bearer t"}, json={"a": [1]}
        )
        response = await transport.send(json_request)
        assert response.status == 201 and response.json() == {"ok": True}
        assert response.header("Content-Type") == "application/json; charset=utf-8"
        form = HttpRequest("POST", base + "token", form={"grant_type": "client credentials"})
        await transport.send(form)
        query = HttpRequest("GET", base + "api/a%2Fb é", params={"q": "x y&z", "n": "1"})
        await transport.send(query)
        await transport.send(HttpRequest("DELETE", base + "api/x#frag"))
        await transport.send(HttpRequest("PUT", base + "raw", body=b"\x00\x01"))
    finally:
        await transport.aclose()
        await server.close()
    method, path, headers, body = seen[0]
    assert (method, path, body) == ("POST", "/api/links", b'{"a":[1]}')
    assert headers["Authorization"] == "Bearer t"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "bulksync"
    assert seen[1][3] == b"grant_type=client+credentials"
    assert seen[1][2]["Content-Type"] == "application/x-www-form-urlencoded"
    # An encoded slash stays encoded; a space and non-ASCII are percent-encoded.
    assert seen[2][1] == "/api/a%2Fb%20%C3%A9?q=x+y%26z&n=1"
    assert seen[3][:2] == ("DELETE", "/api/x")  # a fragment never goes on the wire
    assert seen[4][2]["Content-Type"] == "application/octet-stream"
    assert seen[4][3] == b"\x00\x01"


async def test_a_header_that_would_split_the_request_is_refused(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    server = await canned(ok())
    with pytest.raises(ValueError, match="invalid HTTP header"):
        await transport.send(
            HttpRequest("GET", server.url + "/x", headers={"X-A": "1\r\nX-Injected: 2"})
        )
    assert server.requests == []


# --- what comes back ----------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    server = await canned(ok())
    for _ in range(5):
        assert (await transport.send(HttpRequest("GET", server.url + "/x"))).status == 200
    assert server.connections == 1 and len(server.requests) == 5


async def test_chunked_gzip_interim_and_close_framed_answers(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    packed = gzip.compress(b'{"gz":1}')
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    deflated = zlib.compress(b'{"df":1}')
    server = await canned(
        chunked,
        ok(packed, "Content-Encoding: gzip\r\n"),
        ok(deflated, "Content-Encoding: deflate\r\n"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b'HTTP/1.0 200 OK\r\n\r\n{"till":"close"}',
        ok(),
        close_after={4},
    )
    url = server.url + "/x"
    assert (await transport.send(HttpRequest("GET", url))).json() == {"a": 1}
    assert (await transport.send(HttpRequest("GET", url))).json() == {"gz": 1}
    assert (await transport.send(HttpRequest("GET", url))).json() == {"df": 1}
    response = await transport.send(HttpRequest("DELETE", url))
    assert (response.status, response.body) == (204, b"")
    assert (await transport.send(HttpRequest("GET", url))).json() == {"till": "close"}
    assert server.connections == 1
    assert (await transport.send(HttpRequest("GET", url))).status == 200  # a new connection
    assert server.connections == 2


async def test_a_head_answer_has_no_body_whatever_its_length_says(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    server = await canned(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", ok())
    response = await transport.send(HttpRequest("HEAD", server.url + "/x"))
    assert (response.status, response.body, response.header("content-length")) == (
        200,
        b"",
        "99",
    )
    assert (await transport.send(HttpRequest("GET", server.url + "/x"))).status == 200
    assert server.connections == 1


# --- going unanswered ---------------------------------------------------------------------------

BROKEN = [
    pytest.param(None, "the server closed the connection", id="closed-unanswered"),
    pytest.param(b"<html>hello</html>\r\n\r\n", "not an HTTP/1.1 status line", id="not-http"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", "closed", id="cut-short"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size", id="chunk"
    ),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n{", "Content-Length", id="cl"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        "cannot decode",
        id="bad-gzip",
    ),
]


@pytest.mark.parametrize(("answer", "message"), BROKEN)
async def test_a_broken_answer_may_have_been_applied(
    transport: Http11Transport, canned: Callable[..., Canned], answer: bytes | None, message: str
) -> None:
    # A cut-short body only ends when the server closes the connection.
    server = await canned(answer, ok(), close_after={0})
    with pytest.raises(TransportError, match=message) as caught:
        await transport.send(HttpRequest("POST", server.url + "/x", json={"n": 1}))
    assert caught.value.maybe_applied is True and caught.value.cause is None
    assert len(server.requests) == 1  # never sent again on its own
    assert (await transport.send(HttpRequest("POST", server.url + "/x", json={}))).status == 200
    assert server.connections == 2  # the broken connection was not reused


async def test_a_dropped_keep_alive_connection_is_an_error_not_a_resend(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    server = await canned(ok(), None, ok())
    url = server.url + "/x"
    assert await transport.send(HttpRequest("PUT", url, json={}))
    with pytest.raises(TransportError) as caught:
        await transport.send(HttpRequest("PUT", url, json={}))
    assert caught.value.maybe_applied is True
    assert len(server.requests) == 2
    assert (await transport.send(HttpRequest("PUT", url, json={}))).status == 200


async def test_a_timeout_may_have_been_applied(
    transport: Http11Transport, canned: Callable[..., Canned]
) -> None:
    server = await canned(b"HTTP/1.1 200 OK\r\n")  # the head never ends
    with pytest.raises(TransportError, match=r"POST timed out after 0\.2 s") as caught:
        await transport.send(HttpRequest("POST", server.url + "/x", json={}, timeout_s=0.2))
    assert caught.value.timeout is True and caught.value.maybe_applied is True


async def test_a_refused_connection_was_never_applied(transport: Http11Transport) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(TransportError, match=f"cannot connect to 127.0.0.1:{port}") as caught:
        await transport.send(HttpRequest("POST", f"http://127.0.0.1:{port}/x", json={}))
    assert caught.value.maybe_applied is False
    assert caught.value.cause == REFUSED and caught.value.host == f"127.0.0.1:{port}"


async def test_no_more_connections_than_allowed(canned: Callable[..., Canned]) -> None:
    server = await canned(ok())
    transport = Http11Transport(max_connections=3, timeout_s=5.0)
    try:
        await asyncio.gather(
            *(transport.send(HttpRequest("GET", server.url + "/x")) for _ in range(30))
        )
    finally:
        await transport.aclose()
    assert server.connections <= 3 and len(server.requests) == 30


def test_the_transport_reopens_on_a_new_event_loop() -> None:
    transport = Http11Transport(timeout_s=5.0)

    async def one() -> int:
        server = Canned([ok()])
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        try:
            return (await transport.send(HttpRequest("GET", server.url + "/x"))).status
        finally:
            server.server.close()

    assert asyncio.run(one()) == 200
    assert asyncio.run(one()) == 200
    asyncio.run(transport.aclose())


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_https_with_a_trusted_certificate_and_an_untrusted_one(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verification stays on: a CA the system trusts (here through SSL_CERT_FILE) is
    accepted, the same server is refused (cause TLS, never applied) by a client that does
    not trust it."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Canned([ok()])
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    url = "https" + server.url.removeprefix("http") + "/x"
    untrusting = Http11Transport(timeout_s=5.0)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    trusting = Http11Transport(timeout_s=5.0)
    try:
        for _ in range(2):  # the second on the kept-alive TLS connection
            assert (await trusting.send(HttpRequest("GET", url))).json() == {"ok": True}
        monkeypatch.delenv("SSL_CERT_FILE")
        with pytest.raises(TransportError) as caught:
            await untrusting.send(HttpRequest("POST", url, json={}))
        assert caught.value.cause == TLS and caught.value.maybe_applied is False
    finally:
        await trusting.aclose()
        await untrusting.aclose()
        server.server.close()
    # One kept-alive connection served both; the refused handshake never reached a request.
    assert server.connections == 1 and len(server.requests) == 2
