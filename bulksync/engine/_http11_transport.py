"""The default transport: HTTP/1.1 on asyncio connections, kept alive, for every request but
uploads (multipart file parts go through :class:`AiohttpTransport`, the media path).

Why not aiohttp for all: per request it builds a request object, a response object, a stream
reader, timers and a cookie filter, and that was most of the client's CPU per item (see README
*Performance*). A JSON API needs much less: one write of the request, one parse of the answer
(bulksync.engine._http11). The guarantees are the transport seam's: TLS verification on (the
system's CA store, ``SSL_CERT_FILE``), one request in is at most one on the wire (nothing is
ever sent again on its own, redirects are answers), a total timeout per request, and the same
:class:`TransportError` as the aiohttp transport for every way a request can go unanswered.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import orjson

from bulksync.engine._http11 import Connection, ProtocolError
from bulksync.engine.transport import AiohttpTransport
from bulksync.spi._errors import DNS, REFUSED, TLS, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse

# A request target keeps what RFC 3986 allows in a path and query; anything else (a space,
# non-ASCII) is percent-encoded as yarl (aiohttp's URL type) does; a fragment never goes out.
_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]")
_SAFE = "/:@!$&'()*+,;=%?[]~"
_WITH_BODY = frozenset(("POST", "PUT", "PATCH"))
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
SWEEP_S = 0.05  # how often the answers' deadlines are checked: a timeout fires this late


@dataclass(frozen=True, slots=True)
class _Origin:
    key: str  # scheme://host:port
    host: str  # for DNS and TLS (IDNA-encoded, no brackets)
    port: int
    tls: bool
    host_header: str


class _ConnectFailed(Exception):
    def __init__(self, error: OSError, cause: str | None, host: str) -> None:
        super().__init__(str(error))
        self.error, self.cause, self.host = error, cause, host


class Http11Transport:
    """Pooled keep-alive connections per origin, at most ``max_connections`` in use at once."""

    def __init__(
        self, *, max_connections: int = 64, timeout_s: float = 60.0, user_agent: str = ""
    ) -> None:
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        user_agent = user_agent or "bulksync"
        _check_header("User-Agent", user_agent)
        self._defaults = {
            "user-agent": ("User-Agent", user_agent),
            "accept": ("Accept", "*/*"),
            "accept-encoding": ("Accept-Encoding", "gzip, deflate"),
        }
        self._fixed = f"User-Agent: {user_agent}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate"
        self._uploads = AiohttpTransport(
            max_connections=max_connections, timeout_s=timeout_s, user_agent=user_agent
        )
        self._origins: dict[str, _Origin] = {}
        self._checked: set[tuple[str, str]] = set()  # headers found safe to send
        self._ssl: ssl.SSLContext | None = None
        self._reset()

    def _reset(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[str, list[Connection]] = {}
        self._open: set[Connection] = set()
        self._deadlines: dict[Connection, float] = {}  # connections awaiting an answer
        self._sweeper: asyncio.TimerHandle | None = None

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.files:
            return await self._uploads.send(request)  # streamed from disk, checked, by aiohttp
        method = request.method.upper()
        origin, target = self._split(request)
        data = self._encode(request, method, origin, target)
        limit = self._timeout_s if request.timeout_s is None else request.timeout_s
        try:
            deadline = asyncio.get_running_loop().time() + limit
            return await self._exchange(origin, data, method == "HEAD", deadline)
        except _ConnectFailed as exc:
            # The connection was never made: the server cannot have seen the request.
            message = f"cannot connect to {exc.host}: {exc.error}"
            raise TransportError(
                message, maybe_applied=False, cause=exc.cause, host=exc.host
            ) from exc.error
        except TimeoutError as exc:
            message = f"{method} timed out after {limit:g} s"
            raise TransportError(message, maybe_applied=True, timeout=True) from exc
        except (ProtocolError, OSError) as exc:
            message = f"{method} failed: {type(exc).__name__}: {exc}"
            raise TransportError(message, maybe_applied=True) from exc

    async def _exchange(
        self, origin: _Origin, data: bytes, head_only: bool, deadline: float
    ) -> HttpResponse:
        """One request within ``deadline`` (the loop's clock), from the wait for a free
        connection to the answer's last byte, as aiohttp's total timeout counts it."""
        slots = self._slots_here()
        if slots.locked():
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        else:
            await slots.acquire()  # free: no wait, no timer
        try:
            connection = self._idle_connection(origin.key)
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(origin)
            # The answer's wait is timed by the sweep, not a timer per request: a timer costs
            # as much as the rest of the request's bookkeeping here.
            self._deadlines[connection] = deadline
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
            try:
                response = await connection.request(data, head_only)
            except BaseException:
                self._discard(connection)
                raise
            finally:
                self._deadlines.pop(connection, None)
            if connection.reusable and not connection.closed:
                self._idle.setdefault(origin.key, []).append(connection)
            else:
                self._discard(connection)
            return response
        finally:
            slots.release()

    def _sweep(self) -> None:
        """Fail the requests whose time is up (at most SWEEP_S late), every SWEEP_S while
        any request waits for its answer."""
        self._sweeper = None
        if self._loop is None:
            return
        now = self._loop.time()
        for connection in [c for c, at in self._deadlines.items() if at <= now]:
            self._deadlines.pop(connection, None)
            connection.expire()
        if self._deadlines:
            self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)

    def _slots_here(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            # A new event loop (a second anyio.run): the old loop's connections are unusable.
            for connection in self._open:
                connection.close()
            self._reset()
            self._loop = loop
            self._slots = asyncio.Semaphore(self._max_connections)
        return self._slots

    def _idle_connection(self, key: str) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the most recent: the least likely to be timed out
            transport = connection.transport
            if connection.reusable and transport is not None and not transport.is_closing():
                return connection
            self._discard(connection)
        return None

    def _discard(self, connection: Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self, origin: _Origin) -> Connection:
        loop = asyncio.get_running_loop()
        where = f"{origin.host}:{origin.port}"
        try:
            addresses = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _ConnectFailed(exc, DNS, where) from exc
        context = self._tls_context() if origin.tls else None
        errors: list[OSError] = []
        for family, _, proto, _, address in addresses:
            host, port = str(address[0]), int(address[1])
            try:
                _, connection = await loop.create_connection(
                    Connection,
                    host=host,
                    port=port,
                    family=family,
                    proto=proto,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
            except ssl.SSLCertVerificationError as exc:
                raise _ConnectFailed(exc, TLS, where) from exc
            except OSError as exc:
                errors.append(exc)
                continue
            self._open.add(connection)
            return connection
        if not errors:
            raise _ConnectFailed(OSError(f"no address for {origin.host}"), DNS, where)
        refused = all(
            isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED for e in errors
        )
        raise _ConnectFailed(errors[-1], REFUSED if refused else None, where)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Verification on, the system's CA store (SSL_CERT_FILE and SSL_CERT_DIR honoured).
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    def _split(self, request: HttpRequest) -> tuple[_Origin, str]:
        """The request's origin (parsed once per origin) and its request target."""
        url = request.url
        start = url.find("://")
        slash = url.find("/", start + 3) if start >= 0 else -1
        prefix, target = (url, "/") if slash < 0 else (url[:slash], url[slash:])
        query_at = prefix.find("?")
        if query_at >= 0:  # "https://host?q": the query of an empty path
            prefix, target = prefix[:query_at], "/" + prefix[query_at:]
        origin = self._origins.get(prefix)
        if origin is None:
            origin = self._origins[prefix] = _parse_origin(prefix)
        if "#" in target:
            target = target.split("#", 1)[0]
        if _UNSAFE.search(target):
            target = quote(target, safe=_SAFE)
        if request.params:
            target += ("&" if "?" in target else "?") + urlencode(dict(request.params))
        return origin, target

    def _encode(self, request: HttpRequest, method: str, origin: _Origin, target: str) -> bytes:
        body: bytes | None = None
        content_type = ""
        if request.json is not None:
            body, content_type = orjson.dumps(request.json), "application/json"
        elif request.form is not None:
            body = urlencode(dict(request.form)).encode()
            content_type = "application/x-www-form-urlencoded"
        elif request.body is not None:
            body, content_type = request.body, "application/octet-stream"
        if body is None and method in _WITH_BODY:
            body = b""  # as aiohttp: a write says its length, even when it has no body
        if method not in _METHODS and not _is_token(method):
            raise ValueError(f"invalid HTTP method: {method[:40]!r}")
        head = f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
        if request.headers:
            headers = dict(self._defaults)
            if content_type:
                headers["content-type"] = ("Content-Type", content_type)
            checked = self._checked
            for name, value in request.headers.items():
                if (name, value) not in checked:  # the same auth header on every request
                    _check_header(name, value)
                    if len(checked) >= 256:
                        checked.clear()
                    checked.add((name, value))
                headers[name.lower()] = (name, value)
            headers.pop("host", None)  # the URL says where it goes
            headers.pop("content-length", None)  # the body says how long it is
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.values())
        else:
            head += self._fixed + "\r\n"
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        encoded = (head + "\r\n").encode()  # UTF-8, as aiohttp writes headers
        return encoded + body if body else encoded

    async def aclose(self) -> None:
        for connection in self._open:
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._reset()
        await self._uploads.aclose()


def _parse_origin(prefix: str) -> _Origin:
    parts = urlsplit(prefix)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme: {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL with credentials in it is not sent")
    hostname = parts.hostname
    if not hostname:
        raise ValueError("a URL without a host")
    host = hostname if hostname.isascii() else hostname.encode("idna").decode("ascii")
    tls = scheme == "https"
    port = parts.port or (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if tls else 80)
    host_header = shown if default else f"{shown}:{port}"
    return _Origin(f"{scheme}://{host_header}", host, port, tls, host_header)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def _check_header(name: str, value: str) -> None:
    """A header that could split the request (CR, LF) is refused, as aiohttp refuses it."""
    if not _is_token(name) or _BAD_VALUE.search(value):
        raise ValueError(f"invalid HTTP header {name[:40]!r}")
