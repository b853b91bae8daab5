"""A fault proxy on 127.0.0.1 in front of any HTTP server: the conformance suite's misbehaviour.

A vendor's sandbox need not know how to fail: the proxy forwards each request, and on a seeded
share of writes it does the things no API documentation rules out. It forwards the write and
then hangs up without an answer, answers 500 in its place, or answers a 200 HTML page (a
gateway's); or it refuses every write with one status before forwarding anything. Requests whose
path holds one of ``spare`` (the logins) are never touched: a suite checks items, not logins.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones aiohttp recomputes for the new message.
_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)
_HTML = b"<!doctype html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n"


@dataclass(slots=True)
class Faults:
    """What the proxy does to writes; shares are of the writes it sees, drawn from ``seed``."""

    seed: int = 0
    drop_after_write: float = 0.0  # forwarded, then the connection closes unanswered
    error_after_write: float = 0.0  # forwarded, then answered 500: applied, said failed
    html_after_write: float = 0.0  # forwarded, then answered with a 200 HTML page
    disconnect: float = 0.0  # closed unanswered before forwarding: nothing was written
    # The faults of the first forwarded writes, in order, whatever the draw: a run of a few
    # batched writes still meets each one. Names: drop_after_write, error_after_write, ...
    opening: tuple[str, ...] = ()
    refuse_status: int | None = None  # every write answered so, never forwarded
    refuse_html: bool = False  # every write answered with a 200 HTML page, never forwarded
    retry_after: str | None = "0"  # sent with a refusal (429 and 503 name one)
    spare: tuple[str, ...] = ()  # path fragments never faulted, nor counted as writes


@dataclass(slots=True)
class ProxyStats:
    writes: Counter[str] = field(default_factory=Counter)  # by method, refused ones included
    forwarded: Counter[str] = field(default_factory=Counter)  # by method
    faults: Counter[str] = field(default_factory=Counter)

    def total_writes(self) -> int:
        return sum(self.writes.values())

    def total_forwarded(self) -> int:
        return sum(self.forwarded.values())


FAULT_NAMES = ("drop_after_write", "error_after_write", "html_after_write")


class FaultProxy:
    """The running proxy: ``url`` replaces the server's URL in a job; ``faults`` may change
    between runs; ``stats`` counts what it saw."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.stats = ProxyStats()
        self.url = ""
        self._random = random.Random(faults.seed)
        self._faults = faults
        self._session: aiohttp.ClientSession | None = None

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)

    def reset(self) -> None:
        """Forget the counts, so the next run's are read alone."""
        self.stats = ProxyStats()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        faults = self._faults
        write = request.method in WRITES and not any(s in request.path for s in faults.spare)
        if write:
            self.stats.writes[request.method] += 1
            if faults.refuse_status is not None:
                self.stats.faults[f"refused:{faults.refuse_status}"] += 1
                headers = {"Retry-After": faults.retry_after} if faults.retry_after else {}
                body = {"error": "refused by the fault proxy", "status": faults.refuse_status}
                return web.json_response(body, status=faults.refuse_status, headers=headers)
            if faults.refuse_html:
                self.stats.faults["refused:html"] += 1
                return web.Response(status=200, body=_HTML, content_type="text/html")
            if faults.disconnect and self._random.random() < faults.disconnect:
                self.stats.faults["disconnect"] += 1
                return _hang_up(request)
        answer = await self._forward(request)
        if not write:
            return answer
        self.stats.forwarded[request.method] += 1
        number = self.stats.total_forwarded() - 1
        forced = faults.opening[number] if number < len(faults.opening) else None
        draw = self._random.random()
        if forced is not None:
            draw = 2.0  # no drawn fault; the forced one below
        edge = faults.drop_after_write
        if forced == "drop_after_write" or draw < edge:
            self.stats.faults["drop_after_write"] += 1
            return _hang_up(request)
        edge += faults.error_after_write
        if forced == "error_after_write" or draw < edge:
            self.stats.faults["error_after_write"] += 1
            return web.json_response({"error": "internal error"}, status=500)
        edge += faults.html_after_write
        if forced == "html_after_write" or draw < edge:
            self.stats.faults["html_after_write"] += 1
            return web.Response(status=200, body=_HTML, content_type="text/html")
        return answer

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        body = await request.read()
        url = self.upstream + request.rel_url.raw_path_qs
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as upstream:
            content = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROPPED}
            kept.pop("Content-Encoding", None)  # aiohttp has decoded the body already
            return web.Response(status=upstream.status, body=content, headers=kept)


def _hang_up(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)  # never sent: the connection is gone


@asynccontextmanager
async def fault_proxy(upstream: str, faults: Faults | None = None) -> AsyncIterator[FaultProxy]:
    """Serve a :class:`FaultProxy` to ``upstream`` on an ephemeral 127.0.0.1 port."""
    proxy = FaultProxy(upstream, faults or Faults())
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session:
        proxy._session = session
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield proxy
        finally:
            await runner.cleanup()
