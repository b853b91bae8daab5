"""Streaming readers for the assets and links input files (JSONL or CSV).

Files are read line by line and never held in memory whole: a million-line file streams with
flat memory. Every record carries its file and the 1-based physical line where it starts; a
line that cannot become a record yields a ``BadRecord`` instead of stopping the file, so each
input line still gets exactly one result. Only a file that cannot be read at all raises
``InputFileError``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import orjson

from bulksync.inputs._csv import BOM, csv_records, read_header, utf8_detail
from bulksync.inputs._objects import UNREADABLE_LINE, RowError, row_line
from bulksync.inputs._shape_rules import ShapeRules, rules_for
from bulksync.inputs._validate import (
    Item,
    MediaRoot,
    UnknownFields,
    build_record,
    internal_error,
    record_key,
)
from bulksync.spi._answers import type_name
from bulksync.spi._errors import InputFileError
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Origin
from bulksync.spi._redact import redacted_excerpt
from bulksync.spi._shapes import InputShape

__all__ = ["RecordStream", "read_records", "stream_records"]

Format = Literal["auto", "jsonl", "csv"]
# One record is a few hundred bytes; a line of megabytes is a broken export (or an attack on
# the state and the target), refused whole rather than pushed.
MAX_LINE_BYTES = 1 << 20


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
    strict_fields: bool = False,
    csv_delimiter: str | None = None,
    shape: InputShape | None = None,
) -> RecordStream:
    """Stream the records of an assets or links file.

    The file is opened (and for CSV its header checked) before this returns, so a missing,
    unreadable or header-less file raises ``InputFileError`` here, not at the first ``next()``.
    ``fmt="auto"`` reads ``*.csv`` as CSV and anything else as JSONL. Asset ``file`` paths are
    resolved against ``media_root``, or the input file's folder, and may not leave it.
    An unknown field is warned about once per name, or with ``strict_fields`` fails its line.
    ``csv_delimiter`` is one of ``, ; | \\t``; None detects it from the header line.
    Lines are checked against ``shape``, the run's target's (None, no target named: what any
    built-in target takes).
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
    rules = rules_for(shape)
    if fmt == "jsonl":
        fields = UnknownFields(kind, strict_fields, rules)
        records = _jsonl_records(file, name, kind, root, fields, rules)
        return RecordStream(file, _guarded(file, path, records))
    try:
        lines, rows, columns = read_header(file, path, kind, rules, csv_delimiter, strict_fields)
    except OSError as exc:
        file.close()
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except BaseException:
        file.close()
        raise
    records = csv_records(lines, rows, columns, name, kind, root, strict_fields)
    return RecordStream(file, _guarded(file, path, records))


async def stream_records(
    rows: Iterable[object] | AsyncIterable[object],
    kind: Kind,
    name: str,
    *,
    media_root: Path,
    strict_fields: bool = False,
    shape: InputShape | None = None,
) -> AsyncIterator[Item]:
    """The records of rows given in code (any iterable or async iterable of dicts or record
    objects), one row pulled per record and each checked exactly as a JSONL line: row ``i``
    is line ``i + 1`` of ``name``. Asset ``file`` paths resolve against ``media_root``."""
    rules = rules_for(shape)
    fields = UnknownFields(kind, strict_fields, rules)
    line = _OneLine()
    parse = _jsonl_records(line, name, kind, MediaRoot(media_root), fields, rules)

    def record_of(row: object) -> Item:
        try:
            line.push(row_line(row))
        except RowError as exc:
            line.push(UNREADABLE_LINE)  # numbered as a line, failed with the row's own reason
            record = next(parse)
            return BadRecord(record.origin, kind, redacted_excerpt(str(exc), 300))
        return next(parse)

    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield record_of(row)
    else:
        for row in rows:
            yield record_of(row)


class _OneLine(Iterator[bytes]):
    """The JSONL parser's input, one pushed line at a time: a row's line is never blank, so
    each push gives exactly one record."""

    def __init__(self) -> None:
        self._line: bytes | None = None

    def push(self, line: bytes) -> None:
        self._line = line

    def __next__(self) -> bytes:
        line, self._line = self._line, None
        if line is None:
            raise StopIteration
        return line


def _guarded(file: BinaryIO, path: Path, records: Iterator[Item]) -> Iterator[Item]:
    # A read failure halfway (I/O error, file on a vanished mount) means the rest of the file
    # cannot be known, which is the same run-stopping condition as not opening it.
    with file:
        try:
            yield from records
        except OSError as exc:
            raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _jsonl_records(
    file: Iterable[bytes],
    name: str,
    kind: Kind,
    root: MediaRoot,
    fields: UnknownFields,
    rules: ShapeRules,
) -> Iterator[Item]:
    known = fields.known
    for lineno, raw in enumerate(file, 1):
        # One function per line would cost more than every check below: the work is inline.
        try:
            line = raw[len(BOM) :] if lineno == 1 and raw.startswith(BOM) else raw
            if not line.strip():
                continue
            origin = Origin(name, lineno)
            if len(line) > MAX_LINE_BYTES:
                size = len(line)
                reason = f"line is {size} bytes; a record may take {MAX_LINE_BYTES} at most"
                yield BadRecord(origin=origin, kind=kind, reason=reason)
                continue
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
            colons = line.count(b":")
            # Every key of the text has one colon outside strings, so as many colons as the
            # object kept keys proves no key repeats (a flat line: the common case). Else the
            # object written back has one colon per kept key plus those of its strings: more
            # in the text (or an escaped colon, which the rewrite spells out) sends the line to
            # the exact check.
            if colons != len(obj) and (
                colons != orjson.dumps(obj).count(b":") or b"\\u003" in line
            ):
                duplicate = _duplicate_key(text)
                if duplicate is not None:
                    reason = f"duplicate key {duplicate!r} in an object"
                    yield BadRecord(origin, kind, reason, None)
                    continue
            if not known.issuperset(obj):
                unknown = fields.check(obj, origin)
                if unknown is not None:
                    yield BadRecord(origin, kind, unknown, record_key(kind, obj, rules))
                    continue
            record = build_record(kind, obj, origin, root, rules)
        except Exception as exc:
            # A bug on one line (not a mistake in it) fails that line; the file goes on.
            record = internal_error(Origin(name, lineno), kind, exc)
        yield record


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def _duplicate_key(text: str) -> str | None:
    """The first key an object of ``text`` repeats (the slow, exact check), or None."""
    try:
        json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        return str(exc.args[0])
    except ValueError:
        return None  # orjson read it: what the stdlib refuses (e.g. big numbers) is no duplicate
    return None
