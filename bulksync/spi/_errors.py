"""The exceptions bulksync raises, and how each one ends a run.

Only configuration, input-file and authentication failures, and a target that cannot be
reached or used, stop a run; everything that concerns a single item becomes that item's result
instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

# A bug in bulksync outside any one record: one line on stderr, the traceback in a crash file.
EXIT_INTERNAL = 5


class ErrorClass(Enum):
    """What the engine should do with a failed request, as a connector classifies it."""

    RETRYABLE = "retryable"  # try again later: the same request may well succeed
    ITEM = "item"  # this item is wrong or refused: fail it, go on with the others
    AUTH = "auth"  # credentials are refused: refresh once, then stop the run
    FATAL = "fatal"  # nothing will work (bad base URL, wrong API): stop the run


class BulksyncError(Exception):
    """Base of every error bulksync raises on purpose."""

    exit_code = 1


class ConfigError(BulksyncError):
    """The configuration or the command line is wrong: exit 2 with a one-line reason."""

    exit_code = 2


class InputFileError(ConfigError):
    """An input file cannot be opened at all (a bad line inside it is an item error instead)."""


class AuthError(BulksyncError):
    """The target refused our credentials even after a refresh: exit 3."""

    exit_code = 3


class FatalTargetError(BulksyncError):
    """The target answers in a way that makes every further request pointless."""

    exit_code = 2


class TargetUnreachable(BulksyncError):
    """The target cannot be reached or used at all (connection refused, no DNS answer, an
    untrusted TLS certificate, no answer, a base URL with no API behind it): exit 4, one line
    naming the cause and what to check."""

    exit_code = 4


class QuotaExhausted(BulksyncError):
    """A quota window (Quable's 300,000 a day) is used up and the next request could go only
    after more than ``[limits] max_quota_wait_s``: the run stops cleanly, exit 6. ``limit`` per
    ``period_s`` seconds, ``used`` of them, and ``resume_at`` (UTC epoch seconds) the earliest
    wall-clock time the next request may go."""

    exit_code = 6

    def __init__(self, limit: int, period_s: float, used: int, resume_at: float) -> None:
        self.limit = limit
        self.period_s = period_s
        self.used = used
        self.resume_at = resume_at
        super().__init__(
            f"quota exhausted: {limit:,} per {window_span(period_s)} used; next request "
            f"possible at {utc_time(resume_at, period_s)} (run again then to resume, or use "
            "--wait-for-quota)"
        )

    def later(self, seconds: float) -> QuotaExhausted:
        """The same stop, resuming ``seconds`` later (as the next run will see the window)."""
        return QuotaExhausted(self.limit, self.period_s, self.used, self.resume_at + seconds)


def window_span(seconds: float) -> str:
    """A window's length as people say it: 24 h, 10 min, 86.4 s."""
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def utc_time(epoch: float, period_s: float) -> str:
    """Rounded up (never a minute too early) to the minute, or to the second for a window
    under an hour, where a minute is much of the wait."""
    step = 1 if period_s < 3600 else 60
    stamp = datetime.fromtimestamp(math.ceil(epoch / step) * step, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC" if step == 1 else "%Y-%m-%d %H:%M UTC")


# TransportError.cause: how a connection failed, when that says the target itself is out of
# reach rather than one request being unlucky. None for resets, timeouts and the like.
REFUSED, DNS, TLS = "connection refused", "DNS failure", "TLS certificate not trusted"


class TransportError(BulksyncError):
    """The request got no HTTP answer: connection refused or reset, timeout, TLS failure.

    ``maybe_applied`` is true when the request may have reached the server before the
    answer was lost, so a write might have happened and must be checked before repeating it.
    ``cause`` is :data:`REFUSED`, :data:`DNS` or :data:`TLS` when the connection was never
    made for that reason (``host`` names where it went), ``None`` otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        maybe_applied: bool,
        timeout: bool = False,
        cause: str | None = None,
        host: str = "",
    ) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.timeout = timeout
        self.cause = cause
        self.host = host


class LocalFileError(TransportError):
    """A media file was not sent as it was checked: swapped for a link, unreadable, or changed
    while it streamed. It says nothing of the target: the item alone fails, or is retried
    (``retryable``) when a fresh read of the file may well succeed."""

    def __init__(self, message: str, *, retryable: bool, sent: bool = False) -> None:
        super().__init__(message, maybe_applied=False)
        self.retryable = retryable
        self.sent = sent  # false when found before the request went out: nothing to count


def first_bulksync_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Task groups wrap errors; a run ends with the first one bulksync raised on purpose."""
    for error in group.exceptions:
        found = first_bulksync_error(error) if isinstance(error, BaseExceptionGroup) else error
        if isinstance(found, BulksyncError):
            return found
    return group


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an item failed: a short type, a human message and the HTTP status if any."""

    type: str
    message: str
    http_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "http_status": self.http_status}
