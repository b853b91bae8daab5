"""Streaming readers for the assets and links input files (JSONL or CSV).

Files are read line by line and never held in memory whole: a million-line file streams with
flat memory. Every record carries its file and the 1-based physical line where it starts; a
line that cannot become a record yields a ``BadRecord`` instead of stopping the file, so each
input line still gets exactly one result. Only a file that cannot be read at all raises
``InputFileError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import orjson

from ._csv import BOM, csv_records, read_header, utf8_detail
from ._validate import Item, MediaRoot, build_record, type_name
from .errors import InputFileError
from .records import AssetRecord, BadRecord, Kind, LinkRecord, Origin

__all__ = ["RecordStream", "read_records"]

Format = Literal["auto", "jsonl", "csv"]


class RecordStream(Iterator[AssetRecord | LinkRecord | BadRecord]):
    """The records of one open input file; ``close()`` (or ``with``) releases the file early.

    The file is also closed when iteration ends. A stream dropped before its first ``next()``
    keeps its file open until garbage collection, hence ``close()``.
    """

    def __init__(self, file: BinaryIO, records: Iterator[Item]) -> None:
        self._file = file
        self._records = records

    def __next__(self) -> Item:
        return next(self._records)

    def close(self) -> None:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
        self._file.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_records(
    path: Path,
    kind: Kind,
    *,
    media_root: Path | None = None,
    fmt: Format = "auto",
) -> RecordStream:
    """Stream the records of an assets or links file.

    The file is opened (and for CSV its header checked) before this returns, so a missing,
    unreadable or header-less file raises ``InputFileError`` here, not at the first ``next()``.
    ``fmt="auto"`` reads ``*.csv`` as CSV and anything else as JSONL. Asset ``file`` paths are
    resolved against ``media_root``, or the input file's folder, and may not leave it.
    """
    if kind not in ("asset", "link"):
        raise ValueError(f"unknown record kind {kind!r}")
    if fmt not in ("auto", "jsonl", "csv"):
        raise ValueError(f"unknown input format {fmt!r}")
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    try:
        root = MediaRoot(media_root if media_root is not None else path.parent)
    except (OSError, RuntimeError) as exc:
        raise InputFileError(f"cannot resolve the media root for {path}: {exc}") from None
    try:
        file: BinaryIO = path.open("rb")
    except OSError as exc:
        raise InputFileError(f"cannot open {path}: {exc.strerror or exc}") from None
    name = str(path)
    if fmt == "jsonl":
        return RecordStream(file, _guarded(file, path, _jsonl_records(file, name, kind, root)))
    try:
        lines, rows, columns = read_header(file, path, kind)
    except OSError as exc:
        file.close()
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except BaseException:
        file.close()
        raise
    records = csv_records(lines, rows, columns, name, kind, root)
    return RecordStream(file, _guarded(file, path, records))


def _guarded(file: BinaryIO, path: Path, records: Iterator[Item]) -> Iterator[Item]:
    # A read failure halfway (I/O error, file on a vanished mount) means the rest of the file
    # cannot be known, which is the same run-stopping condition as not opening it.
    with file:
        try:
            yield from records
        except OSError as exc:
            raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _jsonl_records(file: BinaryIO, name: str, kind: Kind, root: MediaRoot) -> Iterator[Item]:
    for lineno, raw in enumerate(file, 1):
        line = raw[len(BOM) :] if lineno == 1 and raw.startswith(BOM) else raw
        if not line.strip():
            continue
        origin = Origin(name, lineno)
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            reason = f"line is not valid UTF-8 ({utf8_detail(exc)})"
            yield BadRecord(origin=origin, kind=kind, reason=reason)
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield BadRecord(origin=origin, kind=kind, reason=f"invalid JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            reason = f"expected a JSON object, got {type_name(obj)}"
            yield BadRecord(origin=origin, kind=kind, reason=reason)
            continue
        yield build_record(kind, obj, origin, root)
