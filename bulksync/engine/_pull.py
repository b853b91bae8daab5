"""Records from an async iterable (the Python API's streamed rows), pulled by a task of their
own so that the feed can tell a record ready now from one it would have to wait for.

Why it matters: the feed gathers records into batches (one state transaction each). From a
file, the next line is always ready; from a caller's generator it may not be, and a batch
held back while the caller waits (for its database, or for results it has not taken yet)
would stall both sides. So the feed takes what is ready, sends its batch the moment nothing
is, and waits for the next record or a stop, whichever comes first.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulksync.spi._records import BadRecord, Record

__all__ = ["PULL_AHEAD", "WAIT", "PulledRecords", "Wait", "pulled_records"]

Item = Record | BadRecord


class Wait:
    """No record is ready now: send what was read, then wait (:meth:`PulledRecords.next`)."""

    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = Wait()
# Records pulled ahead of the feed: enough for a full batch to be ready when the feed looks.
PULL_AHEAD: Final = 64


class PulledRecords:
    def __init__(self, receive: MemoryObjectReceiveStream[Item]) -> None:
        self._receive = receive
        # What was pulled and not taken once the pulling stopped (see pulled_records).
        self.leftover: list[Item] = []

    def drain(self) -> list[Item]:
        """Every record ready now."""
        taken: list[Item] = []
        while not isinstance(record := self.ready(), Wait) and record is not None:
            taken.append(record)
        return taken

    def ready(self) -> Item | Wait | None:
        """The next record if one is ready now, :data:`WAIT` if not, None at the end."""
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            return WAIT
        except anyio.EndOfStream:
            return None

    async def next(self, stop: anyio.Event) -> Item | None:
        """The next record, or None at the end or once ``stop`` is set while waiting."""
        found: list[Item] = []
        async with anyio.create_task_group() as waiting:

            async def until_stop() -> None:
                await stop.wait()
                waiting.cancel_scope.cancel()

            waiting.start_soon(until_stop)
            with suppress(anyio.EndOfStream):
                found.append(await self._receive.receive())
            waiting.cancel_scope.cancel()
        return found[0] if found else None


@asynccontextmanager
async def pulled_records(records: AsyncIterable[Item]) -> AsyncIterator[PulledRecords]:
    """``records`` pulled at most :data:`PULL_AHEAD` ahead; leaving the block stops the
    pulling, closing the caller's iterator, even mid-wait. What was pulled and not taken is
    then in ``leftover``: it is gone from the caller's iterator, so it still needs a result."""
    send, receive = anyio.create_memory_object_stream[Item](PULL_AHEAD)
    pulled = PulledRecords(receive)
    async with anyio.create_task_group() as group:
        group.start_soon(_pull, records, send)
        try:
            yield pulled
        finally:
            group.cancel_scope.cancel()
    pulled.leftover = pulled.drain()
    receive.close()


async def _pull(records: AsyncIterable[Item], send: MemoryObjectSendStream[Item]) -> None:
    iterator = aiter(records)
    try:
        async with send:
            async for record in iterator:
                await send.send(record)
    except anyio.BrokenResourceError:
        pass  # the feed stopped reading
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()
