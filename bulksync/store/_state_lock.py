"""One run per state: an exclusive lock file beside the state database (``<db>.lock``).

The lock is ``flock(LOCK_EX | LOCK_NB)`` on an open file, not the file's existence: the kernel
drops it when the holder's last descriptor closes, which a ``kill -9``, an OOM kill or a crash
all do. So a killed run leaves nothing stale to clean up: the next run simply gets the lock.
The file is never deleted (deleting it would let a third run lock a new file while a second
still holds the old one); it only carries the holder's pid, host and start time, for the
message a second run prints, and is emptied when the holder releases it.

Hosts: flock is kept by the kernel of the host that takes it. On a local disk that is all
that is needed. On NFS, Linux turns flock into NFS byte-range locks that other clients see
when the mount has working locking (not ``nolock``); on filesystems without shared locks two
hosts are not kept apart. SQLite's WAL mode, which the state uses, needs one host anyway. A
lock file that names another host and was not emptied is reported when the lock is taken:
that host's pid cannot be checked from here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

import orjson

from bulksync.spi._errors import ConfigError
from bulksync.spi._notes import note

_TRIES = 10


class StateInUse(ConfigError):
    """Another run holds the state: exit 2 at once, naming it."""


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def _holder_text(info: dict[str, object]) -> str:
    pid, host = info.get("pid", "?"), info.get("host", "?")
    started = info.get("started")
    since = ""
    if isinstance(started, int | float):
        since = " since " + time.strftime("%H:%M:%S", time.localtime(started))
    return f"pid {pid} on host {host}{since}"


def _read_info(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        info = orjson.loads(raw) if raw.strip() else {}
    except (OSError, orjson.JSONDecodeError):
        return {}  # written half-way, or not ours: the holder is then unnamed
    return info if isinstance(info, dict) else {}


class StateLock:
    """Held from :meth:`acquire` to :meth:`release` (or the process's end, whatever ends it)."""

    def __init__(self, db: Path, fd: int) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db: Path) -> StateLock:
        path = lock_path(db)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot open the state lock file {path}: {exc.strerror}") from None
        try:
            _lock_soon(fd)
        except BlockingIOError:
            info = _read_info(fd)
            os.close(fd)
            holder = _holder_text(info) if info else "a process that has not named itself yet"
            raise StateInUse(
                f"state {db.name} is in use by {holder} (another bulksync run); wait for it "
                "or use another [state] path"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot lock the state {path}: {exc.strerror}") from None
        previous = _read_info(fd)
        if previous:
            _note_takeover(db, previous)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(mine), 0)
        return cls(db, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an empty file: released cleanly, nobody to report
        except OSError:
            pass  # the lock still goes with the descriptor
        finally:
            os.close(fd)


def _lock_soon(fd: int) -> None:
    """The exclusive lock, waiting a few milliseconds at most: a dry run's :func:`holder`
    takes a shared lock for an instant, and that alone must not refuse a run."""
    for _ in range(_TRIES - 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.005)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _note_takeover(db: Path, previous: dict[str, object]) -> None:
    """The last holder did not release the lock: killed, or running on a host whose locks
    this one cannot see."""
    if previous.get("host") == socket.gethostname():
        # Same kernel: had it still been running we would not hold the lock now.
        note(
            f"bulksync: state {db.name}: the run of {_holder_text(previous)} stopped without "
            "releasing it; taking over (its unsettled items are checked on the target)"
        )
    else:
        note(
            f"bulksync: state {db.name} was last locked by {_holder_text(previous)} and not "
            "released; its pid cannot be checked from this host: if that run is still going, "
            "stop this one (locks are not shared between hosts on every filesystem)"
        )


def holder(db: Path) -> str | None:
    """Who holds the state now, for a dry run that reads it without locking; ``None``: free."""
    path = lock_path(db)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no run has ever held it
    try:
        try:
            # A shared lock is refused only while someone holds the exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(fd)
            return _holder_text(info) if info else "another bulksync run"
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
