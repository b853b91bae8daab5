"""One-line notes to the user, outside the results: on stderr for the command line, to the
``bulksync`` logger within :func:`notes_to_log` (the Python API: a library prints nothing its
caller did not ask for; the caller's logging config decides what shows)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bulksync.spi._redact import redact

__all__ = ["note", "notes_to_log"]

_to_log: ContextVar[bool] = ContextVar("bulksync_notes_to_log", default=False)
_log = logging.getLogger("bulksync")


def note(message: str) -> None:
    """``message``, secrets masked, on stderr (or logged, see :func:`notes_to_log`)."""
    text = redact(message)
    if _to_log.get():
        _log.warning("%s", text.removeprefix("bulksync: "))
        return
    print(text, file=sys.stderr, flush=True)


@contextmanager
def notes_to_log() -> Iterator[None]:
    """Within: :func:`note` logs instead, in this task and in those it starts."""
    token = _to_log.set(True)
    try:
        yield
    finally:
        _to_log.reset(token)
