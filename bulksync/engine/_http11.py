"""One HTTP/1.1 client connection on an asyncio protocol: a request out, one answer parsed.

What a JSON API answers, read as RFC 9112 says: a status line, headers, and a body framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection; 1xx interim
answers skipped; ``gzip``/``deflate`` bodies decoded. One request at a time per connection (no
pipelining), and a connection is reused only when the answer said it may be and nothing
followed it. Anything else (a status line that is not HTTP, a header block over 64 KiB, a bad
chunk, a connection that ends early) fails that request as a :class:`ProtocolError` and closes
the connection; the transport turns it into a maybe-applied :class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import cast

from bulksync.spi._http import HttpResponse

MAX_HEAD = 64 * 1024  # aiohttp allows 8,190 bytes per line, the whole block far more than we use
_NO_BODY = frozenset((204, 304))


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 answer to our request."""


class Connection(asyncio.Protocol):
    """A keep-alive connection: :meth:`request` writes one request and waits for its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reusable = True  # cleared by anything that makes a next request unsafe here
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._head_only = False  # the request was a HEAD: no body follows the head
        self._status = 0
        self._headers: dict[str, str] | None = None  # the head parsed, the body not yet
        self._length = -1  # the body's Content-Length; -1 chunked or until close
        self._chunked = False
        self._chunks: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for: the next answer on this connection could be misread.
            self.reusable = False
            self.close()
            return
        self._buffer += data
        try:
            answer = self._parse()
        except ProtocolError as exc:
            self._fail(exc)
            return
        if answer is not None:
            if self._buffer:
                self.reusable = False  # more than one answer to one request
            self._waiter.set_result(answer)

    def eof_received(self) -> bool:
        self.reusable = False
        return False  # let the transport close; connection_lost ends a pending request

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers is not None and self._length == -1 and not self._chunked:
            # A body framed by the end of the connection: this is its end.
            try:
                waiter.set_result(self._answer(bytes(self._buffer)))
            except ProtocolError as error:
                waiter.set_exception(error)
            return
        cause = f": {exc}" if exc else ""
        waiter.set_exception(ConnectionResetError(f"the server closed the connection{cause}"))

    # the client side
    async def request(self, head_and_body: bytes, head_only: bool) -> HttpResponse:
        """Send one request (bytes ready for the wire) and wait for the whole answer."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise ConnectionResetError("the connection was closed before the request was sent")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[HttpResponse] = loop.create_future()
        self._waiter = waiter
        self._head_only = head_only
        self._status, self._headers, self._length = 0, None, -1
        self._chunked, self._chunks = False, []
        transport.write(head_and_body)
        try:
            return await waiter
        finally:
            self._waiter = None
            if not waiter.done():  # cancelled or timed out mid-answer: unusable from now on
                self.reusable = False

    def expire(self) -> None:
        """The request's time is up: it fails with TimeoutError, the connection is closed."""
        self._fail(TimeoutError())

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.close()
            except RuntimeError:  # its event loop is closed (an earlier anyio.run): gone
                self.closed = True

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    # parsing
    def _parse(self) -> HttpResponse | None:
        buffer = self._buffer
        while self._headers is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError("answer head larger than 64 KiB")
                return None
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if self._read_head(head):
                return self._answer(b"")
        if self._chunked:
            return self._parse_chunks()
        if self._length < 0:
            return None  # until the connection ends
        if len(buffer) < self._length:
            return None
        body = bytes(buffer[: self._length])
        del buffer[: self._length]
        return self._answer(body)

    def _read_head(self, head: bytes) -> bool:
        """Read a status line and headers; True when the answer has no body at all."""
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
            raise ProtocolError(str(exc)) from None
        lines = text.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            return False  # an interim answer (100 Continue): the real one follows
        self._status, self._headers = status, headers
        keep = headers.get("connection", "").lower()
        if "close" in keep or (version == "HTTP/1.0" and "keep-alive" not in keep):
            self.reusable = False
        if self._head_only or status in _NO_BODY:
            return True
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.lower().rsplit(",", 1)[-1].strip() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding: {coding[:80]}")
            self._chunked = True
            return False
        length = headers.get("content-length")
        if length is None:
            self.reusable = False  # the body ends with the connection
            return False
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not (value := values.pop()).isdigit():
            raise ProtocolError(f"bad Content-Length: {length[:80]!r}")
        self._length = int(value)
        return self._length == 0

    def _parse_chunks(self) -> HttpResponse | None:
        buffer = self._buffer
        while True:
            if self._length >= 0:  # inside a chunk of this size, CRLF after it
                if len(buffer) < self._length + 2:
                    return None
                if buffer[self._length : self._length + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                self._chunks.append(bytes(buffer[: self._length]))
                del buffer[: self._length + 2]
                self._length = -1
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError("chunk size line too long")
                return None
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size: {size_text[:40]!r}") from None
            if size < 0:
                raise ProtocolError("negative chunk size")
            if size > 0:
                del buffer[: line_end + 2]
                self._length = size
                continue
            # The last chunk: trailers (ignored) up to an empty line.
            trailers_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end + 2 : line_end + 4] == b"\r\n":  # no trailers: "0\r\n\r\n"
                del buffer[: line_end + 4]
            elif trailers_end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError("chunked trailers larger than 64 KiB")
                return None
            else:
                del buffer[: trailers_end + 4]
            return self._answer(b"".join(self._chunks))

    def _answer(self, body: bytes) -> HttpResponse:
        headers = self._headers
        assert headers is not None
        encoding = headers.get("content-encoding")
        if body and encoding is not None:
            body = decode_body(body, encoding)
        # Names lower-cased; a repeated header keeps its last value, as with aiohttp.
        return HttpResponse(self._status, headers, body)


def decode_body(body: bytes, encoding: str) -> bytes:
    """A ``gzip`` or ``deflate`` body decoded, as aiohttp decodes it (we ask for both)."""
    coding = encoding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            try:
                return zlib.decompress(body)  # zlib-wrapped, as RFC 9110 says
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw, as some servers send
    except zlib.error as exc:
        raise ProtocolError(f"cannot decode a {coding} body: {exc}") from None
    if coding in ("", "identity"):
        return body
    raise ProtocolError(f"unsupported Content-Encoding: {encoding[:40]}")
