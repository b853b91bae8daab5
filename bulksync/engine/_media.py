"""Media files opened for upload as they were checked, and known unchanged when sent.

The input's paths were checked against the media root when read; between that check and the
upload the file can be swapped for a symbolic link pointing elsewhere, or rewritten while it
streams. The file is opened without following a final symbolic link, its descriptor's real
path must be the checked one, and its identity, size and mtime are compared again once the
upload has been answered: a torn or swapped file is never reported uploaded.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path

from bulksync.spi._errors import LocalFileError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class Stamp:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> Stamp:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(slots=True)
class OpenedMedia:
    path: Path
    handle: BufferedReader  # streamed, and closed, by the HTTP library
    stamp: Stamp
    watch_fd: int  # a second descriptor of the same file, ours to stat after the upload

    def close(self) -> None:
        self.handle.close()
        os.close(self.watch_fd)

    def check_unchanged(self) -> None:
        """After the upload: the bytes sent are the file's whole content, as it still is."""
        now = Stamp.of(os.fstat(self.watch_fd))
        try:
            on_disk = Stamp.of(os.stat(self.path, follow_symlinks=False))
        except OSError:
            on_disk = None
        if now != self.stamp or on_disk != self.stamp:
            raise LocalFileError(
                f"{self.path} changed while it was uploaded; the upload is not trusted",
                retryable=True,
                sent=True,
            )


def open_media(path: Path) -> OpenedMedia:
    """Open ``path`` (already resolved inside the media root) for streaming."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise LocalFileError(
                f"{path} became a symbolic link after it was checked; not uploaded",
                retryable=False,
            ) from None
        raise LocalFileError(f"cannot read {path}: {exc.strerror}", retryable=False) from None
    try:
        real = _real_path(fd)
        if real is not None and real != str(path):
            # A folder on the way was swapped for a link: the file opened is not the one the
            # media-root check accepted.
            raise LocalFileError(
                f"{path} now resolves to {real}, not the file that was checked; not uploaded",
                retryable=False,
            )
        info = os.fstat(fd)
        if not _is_regular(info):
            raise LocalFileError(f"{path} is not a regular file; not uploaded", retryable=False)
        watch_fd = os.dup(fd)
    except BaseException:
        os.close(fd)
        raise
    return OpenedMedia(path, os.fdopen(fd, "rb"), Stamp.of(info), watch_fd)


def _real_path(fd: int) -> str | None:
    """Where the descriptor really points (Linux /proc); None where that cannot be told."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _is_regular(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode)
