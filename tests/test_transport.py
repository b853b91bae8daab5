"""Tests for bulksync.engine.transport.AiohttpTransport.

Most tests mock aiohttp with aioresponses; a few run against a local aiohttp server on
127.0.0.1 to see the bytes on the wire (multipart, timeouts, refused connections).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from yarl import URL

from bulksync.engine.transport import AiohttpTransport
from bulksync.spi._errors import TransportError
from bulksync.spi._http import FilePart, HttpRequest

URL_ = "https://api.example.com/v1/assets"


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(user_agent="bulksync-test/1.0", timeout_s=5.0)
    try:
        yield t
    finally:
        await t.aclose()


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 does not pass the ``stream_writer`` that aiohttp 3.14 requires
    (pnuckowski/aioresponses#289); give the mocked, already-sent response an empty one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


class _Mocked(aioresponses):  # type: ignore[misc]
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Any:
    with _Mocked() as m:
        yield m


def only_call(m: Any, method: str, url: str) -> Any:
    calls = m.requests[(method, URL(url))]
    assert len(calls) == 1
    return calls[0]


# --- what goes out ------------------------------------------------------------------------------


async def test_json_body_method_url_and_headers(transport: AiohttpTransport, mocked: Any) -> None:
    mocked.post(URL_, status=201, body=b'{"id": "1"}')
    request = HttpRequest(
        "POST",
        URL_,
        headers={"Authorization": "Bearer tok", "X-Trace": "abc"},
        json={"key": "k1", "tags": ["a", "b"], "n": None},
    )
    response = await transport.send(request)
    assert response.status == 201
    call = only_call(mocked, "POST", URL_)
    assert call.kwargs["json"] == {"key": "k1", "tags": ["a", "b"], "n": None}
    assert call.kwargs.get("data") is None
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == "Bearer tok"
    assert headers["X-Trace"] == "abc"
    assert headers["User-Agent"] == "bulksync-test/1.0"


async def test_form_body(transport: AiohttpTransport, mocked: Any) -> None:
    url = "https://api.example.com/token"
    mocked.post(url, status=200, payload={"access_token": "t"})
    form = {"grant_type": "client_credentials", "scope": "a b"}
    await transport.send(HttpRequest("POST", url, form=form, authenticated=False))
    call = only_call(mocked, "POST", url)
    assert call.kwargs["data"] == form
    assert call.kwargs.get("json") is None


async def test_raw_body_params_and_timeout(transport: AiohttpTransport, mocked: Any) -> None:
    mocked.put(URL_ + "?page=2&q=x+y", status=204)
    request = HttpRequest(
        "PUT", URL_, body=b"\x00raw\xff", params={"page": "2", "q": "x y"}, timeout_s=1.5
    )
    response = await transport.send(request)
    assert response.status == 204
    call = only_call(mocked, "PUT", URL_ + "?page=2&q=x+y")
    assert call.kwargs["data"] == b"\x00raw\xff"
    assert call.kwargs["params"] == {"page": "2", "q": "x y"}
    assert call.kwargs["timeout"].total == 1.5


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "HEAD"])
async def test_methods_pass_through(transport: AiohttpTransport, mocked: Any, method: str) -> None:
    mocked.add(URL_, method=method, status=200)
    response = await transport.send(HttpRequest(method, URL_))
    assert response.status == 200
    call = only_call(mocked, method, URL_)
    assert call.kwargs.get("json") is None and call.kwargs.get("data") is None


async def test_empty_json_object_is_still_sent(transport: AiohttpTransport, mocked: Any) -> None:
    mocked.post(URL_, status=200)
    await transport.send(HttpRequest("POST", URL_, json={}))
    assert only_call(mocked, "POST", URL_).kwargs["json"] == {}


# --- what comes back ----------------------------------------------------------------------------


async def test_status_body_and_lowercased_headers(transport: AiohttpTransport, mocked: Any) -> None:
    body = b'\x00\xff{"not": "json"'
    mocked.get(
        URL_,
        status=418,
        body=body,
        headers={"X-Request-ID": "req-1", "Retry-After": "12", "Content-Type": "text/plain"},
    )
    response = await transport.send(HttpRequest("GET", URL_))
    assert response.status == 418
    assert response.body == body
    assert response.headers["x-request-id"] == "req-1"
    assert response.headers["retry-after"] == "12"
    assert response.headers["content-type"] == "text/plain"
    assert all(k == k.lower() for k in response.headers)
    assert response.header("Retry-After") == "12"


@pytest.mark.parametrize("code", [200, 301, 404, 429, 500, 503])
async def test_error_statuses_are_answers_not_exceptions(
    transport: AiohttpTransport, mocked: Any, code: int
) -> None:
    mocked.get(URL_, status=code, body=b"x")
    response = await transport.send(HttpRequest("GET", URL_))
    assert response.status == code and response.body == b"x"


# --- failures ------------------------------------------------------------------------------------


async def test_connector_error_was_never_applied(transport: AiohttpTransport, mocked: Any) -> None:
    key = aiohttp.client_reqrep.ConnectionKey("api.example.com", 443, True, True, None, None, None)
    error = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    mocked.post(URL_, exception=error)
    with pytest.raises(TransportError) as caught:
        await transport.send(HttpRequest("POST", URL_, json={"key": "k"}))
    assert caught.value.maybe_applied is False
    assert caught.value.timeout is False
    assert "connect" in str(caught.value)


@pytest.mark.parametrize("error", [TimeoutError(), aiohttp.ServerTimeoutError("read timeout")])
async def test_timeout_may_have_been_applied(
    transport: AiohttpTransport, mocked: Any, error: Exception
) -> None:
    mocked.post(URL_, exception=error)
    with pytest.raises(TransportError) as caught:
        await transport.send(HttpRequest("POST", URL_, json={"key": "k"}, timeout_s=2.5))
    assert caught.value.timeout is True
    assert caught.value.maybe_applied is True
    assert "2.5" in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated"),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
    ],
)
async def test_other_client_errors_may_have_been_applied(
    transport: AiohttpTransport, mocked: Any, error: Exception
) -> None:
    mocked.post(URL_, exception=error)
    with pytest.raises(TransportError) as caught:
        await transport.send(HttpRequest("POST", URL_, json={}))
    assert caught.value.maybe_applied is True
    assert caught.value.timeout is False


async def test_missing_upload_file_is_not_a_maybe_applied_transport_error(
    transport: AiohttpTransport, mocked: Any, tmp_path: Path
) -> None:
    mocked.post(URL_, status=201)
    part = FilePart("file", tmp_path / "gone.png", "gone.png")
    try:
        await transport.send(HttpRequest("POST", URL_, files=[part]))
    except TransportError as exc:
        assert exc.maybe_applied is False  # nothing left the process
    except FileNotFoundError:
        pass  # a local error, not the network's: also fine
    else:
        pytest.fail("a missing file was uploaded")
    assert not mocked.requests


# --- against a local server: the wire itself ---------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    release = asyncio.Event()  # the slow handler waits for it, so none is left pending

    async def handler(request: web.Request) -> web.StreamResponse:
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
        }
        if request.path == "/slow":
            await asyncio.wait_for(release.wait(), timeout=5.0)
        if request.content_type.startswith("multipart/"):
            parts = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert isinstance(part, aiohttp.BodyPartReader)
                parts.append(
                    {
                        "name": part.name,
                        "filename": part.filename,
                        "content_type": part.headers.get("Content-Type"),
                        "data": await part.read(),
                    }
                )
            entry["parts"] = parts
        else:
            entry["body"] = await request.read()
        seen.append(entry)
        return web.json_response({"ok": True}, status=201, headers={"X-Served-By": "Local"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server, seen
    finally:
        release.set()
        await test_server.close()


async def test_multipart_upload_on_the_wire(
    transport: AiohttpTransport,
    server: tuple[TestServer, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    test_server, seen = server
    content = bytes(range(256)) * 1000  # binary, larger than one chunk
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    request = HttpRequest(
        "POST",
        str(test_server.make_url("/files")),
        headers={"Authorization": "Bearer wire"},
        fields={"title": "A photo", "folder": "root"},
        files=[FilePart("file", path, "renamed.jpg", "image/jpeg")],
    )
    response = await transport.send(request)
    assert response.status == 201
    assert response.json() == {"ok": True}
    assert response.headers["x-served-by"] == "Local"
    (entry,) = seen
    assert entry["method"] == "POST" and entry["path"] == "/files"
    assert entry["headers"]["Authorization"] == "Bearer wire"
    assert entry["headers"]["User-Agent"] == "bulksync-test/1.0"
    parts = entry["parts"]
    assert [p["name"] for p in parts] == ["title", "folder", "file"]
    assert parts[0]["data"] == b"A photo" and parts[1]["data"] == b"root"
    assert parts[2]["filename"] == "renamed.jpg"
    assert parts[2]["content_type"] == "image/jpeg"
    assert parts[2]["data"] == content


async def test_json_form_and_params_on_the_wire(
    transport: AiohttpTransport, server: tuple[TestServer, list[dict[str, Any]]]
) -> None:
    test_server, seen = server
    url = str(test_server.make_url("/assets"))
    await transport.send(HttpRequest("POST", url, json={"key": "é"}, params={"a": "1"}))
    await transport.send(HttpRequest("POST", url, form={"user": "u", "pass": "p&q"}))
    json_entry, form_entry = seen
    assert json_entry["query"] == {"a": "1"}
    assert json_entry["headers"]["Content-Type"].startswith("application/json")
    assert orjson.loads(json_entry["body"]) == {"key": "é"}
    assert form_entry["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert form_entry["body"] == b"user=u&pass=p%26q"


async def test_real_timeout(
    transport: AiohttpTransport, server: tuple[TestServer, list[dict[str, Any]]]
) -> None:
    test_server, _ = server
    request = HttpRequest("GET", str(test_server.make_url("/slow")), timeout_s=0.1)
    with pytest.raises(TransportError) as caught:
        await transport.send(request)
    assert caught.value.timeout is True
    assert caught.value.maybe_applied is True


async def test_real_refused_connection(transport: AiohttpTransport) -> None:
    with socket.socket() as sock:  # find a free port, then close it: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        await transport.send(HttpRequest("POST", f"http://127.0.0.1:{port}/x", json={}))
    assert caught.value.maybe_applied is False
    assert caught.value.timeout is False


async def test_aclose_is_idempotent_and_the_transport_reopens(
    server: tuple[TestServer, list[dict[str, Any]]],
) -> None:
    test_server, seen = server
    transport = AiohttpTransport()
    try:
        await transport.aclose()  # never opened
        url = str(test_server.make_url("/a"))
        assert (await transport.send(HttpRequest("GET", url))).status == 201
        await transport.aclose()
        await transport.aclose()
        assert (await transport.send(HttpRequest("GET", url))).status == 201
        assert seen[0]["headers"]["User-Agent"] == "bulksync"
    finally:
        await transport.aclose()
    assert len(seen) == 2


def test_connect_causes_work_on_an_aiohttp_without_the_dns_error_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from bulksync.engine.transport import connect_cause
    from bulksync.spi._errors import DNS, REFUSED

    # pyproject allows aiohttp>=3.9; ClientConnectorDNSError only exists from 3.10.10.
    monkeypatch.delattr(aiohttp, "ClientConnectorDNSError")
    key = aiohttp.client_reqrep.ConnectionKey("api.example.com", 443, True, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    unresolved = aiohttp.ClientConnectorError(key, socket.gaierror(-2, "Name or service unknown"))
    assert connect_cause(refused) == REFUSED
    assert connect_cause(unresolved) == DNS
