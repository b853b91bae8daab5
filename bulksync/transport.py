"""The one narrow seam to the network: send an :class:`HttpRequest`, get an :class:`HttpResponse`.

aiohttp's exceptions are translated here, at the boundary, into :class:`TransportError`, so the
engine never needs to know which HTTP library is underneath. TLS verification is always on.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Protocol

import aiohttp
import orjson

from .errors import TransportError
from .http import HttpRequest, HttpResponse


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
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        session = self._get_session()
        kwargs: dict[str, Any] = {"headers": dict(request.headers)}
        if request.params:
            kwargs["params"] = dict(request.params)
        if request.timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=request.timeout_s)
        with ExitStack() as files:
            kwargs.update(_body(request, files))
            try:
                async with session.request(request.method, request.url, **kwargs) as response:
                    body = await response.read()
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return HttpResponse(status=response.status, headers=headers, body=body)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                limit = self._timeout_s if request.timeout_s is None else request.timeout_s
                message = f"{request.method} timed out after {limit:g} s"
                raise TransportError(message, maybe_applied=True, timeout=True) from exc
            except aiohttp.ClientConnectorError as exc:
                # The connection was never made: the server cannot have seen the request.
                message = f"cannot connect: {exc.os_error}"
                raise TransportError(message, maybe_applied=False) from exc
            except (aiohttp.ClientError, OSError) as exc:
                message = f"{request.method} failed: {type(exc).__name__}: {exc}"
                raise TransportError(message, maybe_applied=True) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _body(request: HttpRequest, files: ExitStack) -> dict[str, Any]:
    """aiohttp's keyword for the request body; upload files are opened here, streamed later."""
    if request.files:
        form = aiohttp.FormData()
        for name, value in (request.fields or {}).items():
            form.add_field(name, value)
        for part in request.files:
            try:
                # An open file object is streamed by aiohttp chunk by chunk, never read whole.
                handle = files.enter_context(open(part.path, "rb"))  # noqa: SIM115
            except OSError as exc:
                # Local, and nothing was sent: not a network failure that may have applied.
                message = f"cannot read {part.path}: {exc.strerror}"
                raise TransportError(message, maybe_applied=False) from exc
            form.add_field(
                part.name, handle, filename=part.filename, content_type=part.content_type
            )
        return {"data": form}
    if request.json is not None:
        return {"json": request.json}
    if request.form is not None:
        return {"data": dict(request.form)}
    if request.body is not None:
        return {"data": request.body}
    return {}
