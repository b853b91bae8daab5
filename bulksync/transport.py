"""The one narrow seam to the network: send an :class:`HttpRequest`, get an :class:`HttpResponse`.

aiohttp's exceptions are translated here, at the boundary, into :class:`TransportError`, so the
engine never needs to know which HTTP library is underneath. TLS verification is always on.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, Protocol

import aiohttp

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
            )
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        session = self._get_session()
        kwargs: dict[str, Any] = {"headers": dict(request.headers)}
        if request.params:
            kwargs["params"] = dict(request.params)
        if request.timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=request.timeout_s)
        try:
            async with AsyncExitStack() as files:
                if request.files:
                    form = aiohttp.FormData()
                    for name, value in (request.fields or {}).items():
                        form.add_field(name, value)
                    for part in request.files:
                        # An open file object is streamed by aiohttp chunk by chunk.
                        handle = files.enter_context(open(part.path, "rb"))  # noqa: ASYNC230, SIM115
                        form.add_field(
                            part.name,
                            handle,
                            filename=part.filename,
                            content_type=part.content_type,
                        )
                    kwargs["data"] = form
                elif request.json is not None:
                    kwargs["json"] = request.json
                elif request.form is not None:
                    kwargs["data"] = dict(request.form)
                elif request.body is not None:
                    kwargs["data"] = request.body
                async with session.request(request.method, request.url, **kwargs) as response:
                    body = await response.read()
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return HttpResponse(status=response.status, headers=headers, body=body)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            limit = self._timeout_s if request.timeout_s is None else request.timeout_s
            raise TransportError(
                f"{request.method} timed out after {limit:g} s", maybe_applied=True, timeout=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # The connection was never made: the server cannot have seen the request.
            raise TransportError(f"cannot connect: {exc.os_error}", maybe_applied=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"{request.method} failed: {type(exc).__name__}: {exc}", maybe_applied=True
            ) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
