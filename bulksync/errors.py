"""The exceptions bulksync raises, and how each one ends a run.

Only configuration, input-file and authentication failures stop a run; everything that concerns
a single item becomes that item's result instead.
"""

from __future__ import annotations

from enum import Enum

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


class TransportError(BulksyncError):
    """The request got no HTTP answer: connection refused or reset, timeout, TLS failure.

    ``maybe_applied`` is true when the request may have reached the server before the
    answer was lost, so a write might have happened and must be checked before repeating it.
    """

    def __init__(self, message: str, *, maybe_applied: bool, timeout: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.timeout = timeout


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
