"""The CSV side of the readers: decode physical lines, parse rows, convert cells to fields.

The file is read in binary and each physical line is decoded on its own, so that one bad byte
spoils only the record it belongs to instead of stopping the whole file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ._validate import Item, MediaRoot, build_record
from .errors import InputFileError
from .records import BadRecord, Kind, Origin

BOM = b"\xef\xbb\xbf"

_REQUIRED: dict[Kind, tuple[tuple[str, ...], ...]] = {
    # Each inner tuple is satisfied by any one of its columns.
    "asset": (("id",), ("file", "remotePath")),
    "link": (("from",), ("to",), ("type",)),
}
_JSON_CELLS = frozenset({"from", "to", "attributes"})
_INT_CELLS = frozenset({"sequence", "priority"})
_BOOL_CELLS = frozenset({"isDefault", "isActive"})
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_INT_RE = re.compile(r"[+-]?[0-9]+")


def utf8_detail(exc: UnicodeDecodeError) -> str:
    return f"byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}"


class _DecodedLines(Iterator[str]):
    """Physical lines as text, remembering which ones had to be repaired to decode."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.lineno = 0
        self.bad: dict[int, str] = {}

    def __next__(self) -> str:
        data = self._raw.readline()
        if not data:
            raise StopIteration
        self.lineno += 1
        if self.lineno == 1 and data.startswith(BOM):
            data = data[len(BOM) :]
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            self.bad[self.lineno] = utf8_detail(exc)
            return data.decode(errors="replace")


def _is_blank(row: list[str]) -> bool:
    return all(not cell.strip() for cell in row)


def read_header(
    raw: BinaryIO, path: Path, kind: Kind
) -> tuple[_DecodedLines, Iterator[list[str]], list[str]]:
    """Read and check the header row; returns the line source, the csv reader and the columns."""
    lines = _DecodedLines(raw)
    rows = csv.reader(lines)
    try:
        header = next((row for row in rows if not _is_blank(row)), None)
    except csv.Error as exc:
        raise InputFileError(f"{path}: cannot read the CSV header: {exc}") from None
    if header is None:
        raise InputFileError(f"{path}: CSV file has no header row")
    if lines.bad:
        lineno, detail = next(iter(lines.bad.items()))
        raise InputFileError(f"{path}: CSV header line {lineno} is not valid UTF-8 ({detail})")
    columns = [cell.strip() for cell in header]
    duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
    if duplicates:
        raise InputFileError(f"{path}: CSV header repeats column(s) {', '.join(duplicates)}")
    missing = [
        " or ".join(f"'{name}'" for name in group)
        for group in _REQUIRED[kind]
        if not any(name in columns for name in group)
    ]
    if missing:
        raise InputFileError(
            f"{path}: CSV header lacks required column(s) {', '.join(missing)} for {kind}s"
        )
    return lines, rows, columns


def _cell_value(name: str, cell: str) -> Any:
    """Convert one non-empty cell to the value its field would have in JSON."""
    if name in _JSON_CELLS:
        if cell.lstrip().startswith("{"):
            try:
                return orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"field '{name}' is not valid JSON: {exc}") from None
        if name == "attributes":
            raise ValueError("field 'attributes' must be a JSON object")
        return cell
    if name in _INT_CELLS:
        if _INT_RE.fullmatch(cell.strip()):
            return int(cell)
        raise ValueError(f"field '{name}' must be an integer, got '{cell}'")
    if name in _BOOL_CELLS:
        try:
            return _BOOL_WORDS[cell.strip().lower()]
        except KeyError:
            raise ValueError(
                f"field '{name}' must be true/false, 1/0 or yes/no, got '{cell}'"
            ) from None
    return cell


def _row_object(columns: list[str], row: list[str]) -> tuple[dict[str, Any], str | None]:
    obj: dict[str, Any] = {}
    error: str | None = None
    for name, cell in zip(columns, row, strict=True):
        if not name or not cell.strip():
            continue
        try:
            obj[name] = _cell_value(name, cell)
        except ValueError as exc:
            error = error or str(exc)
    return obj, error


def csv_records(
    lines: _DecodedLines,
    rows: Iterator[list[str]],
    columns: list[str],
    name: str,
    kind: Kind,
    root: MediaRoot,
) -> Iterator[Item]:
    end = lines.lineno
    while True:
        start = end + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            row = None
            reason = f"malformed CSV row: {exc}"
        # csv.reader never reads past the end of the row it returns, so every line decoded
        # since the previous row belongs to this one.
        end = lines.lineno
        decode_error = None
        if lines.bad:
            lineno, detail = next(iter(lines.bad.items()))
            where = "line" if lineno == start else f"line {lineno}"
            decode_error = f"{where} is not valid UTF-8 ({detail})"
            lines.bad.clear()
        origin = Origin(name, start)
        if row is None:
            yield BadRecord(origin=origin, kind=kind, reason=reason)
            continue
        if _is_blank(row):
            continue
        if len(row) != len(columns):
            reason = f"row has {len(row)} cells but the header has {len(columns)} columns"
            yield BadRecord(origin=origin, kind=kind, reason=reason)
            continue
        obj, error = _row_object(columns, row)
        if decode_error is not None:
            error = decode_error
        record = build_record(kind, obj, origin, root, error=error)
        if decode_error is not None and record.key is not None and "\ufffd" in record.key:
            # The key was read through a repaired byte: it names nothing the user wrote.
            record = BadRecord(origin=origin, kind=kind, reason=decode_error)
        yield record
