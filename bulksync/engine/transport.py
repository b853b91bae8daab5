"""The one narrow seam to the network: send an :class:`HttpRequest`, get an :class:`HttpResponse`.

aiohttp's exceptions are translated here, at the boundary, into :class:`TransportError`, so the
engine never needs to know which HTTP library is underneath. TLS verification is always on.

One request in is at most one request on the wire: aiohttp's own re-send on a dropped
keep-alive connection is turned off and redirects are never followed, so every attempt the
server sees went through the engine's budget, its request count and its retry decision.
"""

from __future__ import annotations

import errno
import socket
from contextlib import ExitStack
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import hdrs

from bulksync.engine._media import OpenedMedia, open_media
from bulksync.spi._errors import DNS, REFUSED, TLS, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse, form_escape


class Transport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """One pooled aiohttp session per target; requests carry absolute URLs."""

    def __init__(
        self, *, max_connections: int = 64, timeout_s: float = 60.0, user_agent: str = ""
    ) -> None:
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        self._user_agent = user_agent or "bulksync"
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"User-Agent": self._user_agent},
                raise_for_status=False,
                # orjson: the stdlib encoder was a few percent of the client's CPU per item.
                json_serialize=lambda value: orjson.dumps(value).decode(),
            )
            disable_hidden_resend(self._session)
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        session = self._get_session()
        kwargs: dict[str, Any] = {"headers": dict(request.headers)}
        if request.params:
            kwargs["params"] = dict(request.params)
        if request.timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=request.timeout_s)
        with ExitStack() as files:
            opened: list[OpenedMedia] = []
            kwargs.update(_body(request, files, opened))
            try:
                # Redirects are answers for the engine to judge (it refuses them): following one
                # could carry the body and credentials to another origin, or to plain http.
                async with session.request(
                    request.method, request.url, allow_redirects=False, **kwargs
                ) as response:
                    body = await response.read()
                    for media in opened:  # what was sent is the file, whole and as it still is
                        media.check_unchanged()
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return HttpResponse(status=response.status, headers=headers, body=body)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                limit = self._timeout_s if request.timeout_s is None else request.timeout_s
                message = f"{request.method} timed out after {limit:g} s"
                raise TransportError(message, maybe_applied=True, timeout=True) from exc
            except aiohttp.ClientConnectorError as exc:
                # The connection was never made: the server cannot have seen the request.
                cause = connect_cause(exc)
                host = f"{exc.host}:{exc.port}"
                message = f"cannot connect to {host}: {exc.os_error}"
                raise TransportError(message, maybe_applied=False, cause=cause, host=host) from exc
            except (aiohttp.ClientError, OSError) as exc:
                message = f"{request.method} failed: {type(exc).__name__}: {exc}"
                raise TransportError(message, maybe_applied=True) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def connect_cause(exc: aiohttp.ClientConnectorError) -> str | None:
    """Why a connection was never made, when the reason is the target's, not bad luck: the
    run's circuit breaker and the preflight stop on these."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLS
    # ClientConnectorDNSError exists from aiohttp 3.10.10 only (pyproject allows 3.9): the
    # gaierror it wraps says the same on every version.
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", ())
    if isinstance(exc, dns_error) or isinstance(exc.os_error, socket.gaierror):
        return DNS
    if isinstance(exc.os_error, ConnectionRefusedError) or (
        exc.os_error.errno == errno.ECONNREFUSED
    ):
        return REFUSED
    return None


def disable_hidden_resend(session: aiohttp.ClientSession) -> None:
    """Stop aiohttp from silently sending GET/PUT/DELETE/HEAD/OPTIONS again on a dropped
    keep-alive connection (``ClientSession._request``, since aiohttp 3.10).

    Such a repeat bypasses the rate budget, the request count and the backoff, and a PUT
    repeated that way may be applied twice without anyone knowing. Without it the drop
    surfaces as a maybe-applied :class:`TransportError` and the engine decides. aiohttp has no
    public switch for it; ``_retry_connection`` is what its own test client sets, and
    tests/test_transport.py fails if a new aiohttp renames it.
    """
    session._retry_connection = False


def _body(request: HttpRequest, files: ExitStack, opened: list[OpenedMedia]) -> dict[str, Any]:
    """aiohttp's keyword for the request body; upload files are opened here, streamed later."""
    if request.files:
        return {"data": _multipart(request, files, opened)}
    if request.json is not None:
        return {"json": request.json}
    if request.form is not None:
        return {"data": dict(request.form)}
    if request.body is not None:
        return {"data": request.body}
    return {}


def _multipart(
    request: HttpRequest, files: ExitStack, opened: list[OpenedMedia]
) -> aiohttp.MultipartWriter:
    """A multipart/form-data body whose names go out as curl and browsers send them.

    ``aiohttp.FormData`` percent-encodes a filename (``photo%20%C3%A9t%C3%A9.png``) and the
    target then stores that as the file's name; curl sends it as is, in UTF-8, so each part's
    Content-Disposition is written here.
    """
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in (request.fields or {}).items():
        text = aiohttp.StringPayload(value)
        text.headers[hdrs.CONTENT_DISPOSITION] = form_disposition(name)
        writer.append_payload(text)
    for part in request.files:
        # Opened as checked (no link followed), streamed by aiohttp chunk by chunk, never
        # read whole; compared again once the upload is answered.
        media = open_media(part.path)
        files.callback(media.close)
        opened.append(media)
        payload = aiohttp.BufferedReaderPayload(media.handle, content_type=part.content_type)
        # Replaces the disposition aiohttp guessed from the local path.
        payload.headers[hdrs.CONTENT_DISPOSITION] = form_disposition(part.name, part.filename)
        writer.append_payload(payload)
    return writer


def form_disposition(name: str, filename: str | None = None) -> str:
    """The Content-Disposition of one form-data part (RFC 7578 section 4.2)."""
    value = f'form-data; name="{form_escape(name)}"'
    if filename is not None:
        value += f'; filename="{form_escape(filename)}"'
    return value
