"""Just enough image header parsing for Quable asset metadata: type, width and height.

Only headers are read (PNG IHDR, JPEG SOFn, GIF logical screen), so a truncated or fake file
still gets a mime type from its name instead of an exception.
"""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True, slots=True)
class FileInfo:
    mime_type: str
    file_type: str | None  # "PNG", "JPEG", "GIF", "PDF" when recognised from the bytes
    width: int | None = None
    height: int | None = None


def inspect(data: bytes, filename: str = "", declared: str | None = None) -> FileInfo:
    if data.startswith(_PNG_SIGNATURE):
        return FileInfo("image/png", "PNG", *_png_size(data))
    if data.startswith(b"\xff\xd8"):
        return FileInfo("image/jpeg", "JPEG", *_jpeg_size(data))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return FileInfo("image/gif", "GIF", width, height)
    if data.startswith(b"%PDF-"):
        return FileInfo("application/pdf", "PDF")
    guessed, _ = mimetypes.guess_type(filename)
    generic = declared in (None, "", "application/octet-stream")
    mime = guessed if generic and guessed else (declared or "application/octet-stream")
    return FileInfo(mime, None)


def _png_size(data: bytes) -> tuple[int | None, int | None]:
    # Signature, then the IHDR chunk: length (4), type (4), width (4), height (4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None, None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None, None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header came before it
            return None, None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                return None, None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None, None


def human_size(size: int) -> str:
    """Quable's ``file_size`` style: ``1.31 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def exif_size(size: int) -> str:
    """exiftool's ``FileSize`` style, as in Quable's ``metadata.detail``: ``1373 kB``."""
    return f"{size} bytes" if size < 1000 else f"{round(size / 1000)} kB"
