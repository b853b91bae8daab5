"""The CSV side of the readers: decode physical lines, parse rows, convert cells to fields.

The file is read in binary and each physical line is decoded on its own, so that one bad byte
spoils only the record it belongs to instead of stopping the whole file.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bulksync.inputs._shape_rules import ShapeRules
from bulksync.inputs._validate import (
    Item,
    MediaRoot,
    UnknownFields,
    build_record,
    describe_unknown,
    internal_error,
    note,
    record_key,
)
from bulksync.spi._errors import InputFileError
from bulksync.spi._records import BadRecord, Kind, Origin

BOM = b"\xef\xbb\xbf"
DELIMITERS = (",", ";", "\t", "|")
_UNTERMINATED = "unterminated quoted field"

_REQUIRED: dict[Kind, tuple[tuple[str, ...], ...]] = {
    # Each inner tuple is satisfied by any one of its columns.
    "asset": (("id",), ("file", "remotePath")),
    "link": (("from",), ("to",), ("type",)),
}
_JSON_CELLS = frozenset({"from", "to", "attributes"})
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
        # The physical lines of the row being parsed (cleared per row): the lines a bad
        # multi-line row swallowed get their own results. Bounded by the parser's field limit.
        self.texts: list[str] = []

    def __next__(self) -> str:
        data = self._raw.readline()
        if not data:
            raise StopIteration
        self.lineno += 1
        if self.lineno == 1 and data.startswith(BOM):
            data = data[len(BOM) :]
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            self.bad[self.lineno] = utf8_detail(exc)
            text = data.decode(errors="replace")
        self.texts.append(text)
        return text


def _is_blank(row: list[str]) -> bool:
    return all(not cell.strip() for cell in row)


def read_header(
    raw: BinaryIO,
    path: Path,
    kind: Kind,
    rules: ShapeRules,
    delimiter: str | None = None,
    strict_fields: bool = False,
) -> tuple[_DecodedLines, Iterator[list[str]], Columns]:
    """Read and check the header row; returns the line source, the csv reader and the columns.

    The delimiter is detected on the header line unless given; column names are matched
    without regard to case (``ID``, ``From``).
    """
    if delimiter is not None and delimiter not in DELIMITERS:
        shown = ", ".join(repr(d) for d in DELIMITERS)
        raise InputFileError(f"{path}: CSV delimiter must be one of {shown}, got {delimiter!r}")
    lines = _DecodedLines(raw)
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise InputFileError(f"{path}: CSV file has no header row")
    if delimiter is None:
        delimiter = _detect_delimiter(first, kind, rules)
    rows = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    try:
        header = next((row for row in rows if not _is_blank(row)), None)
    except csv.Error as exc:
        raise InputFileError(f"{path}: cannot read the CSV header: {exc}") from None
    if header is None:
        raise InputFileError(f"{path}: CSV file has no header row")
    if lines.bad:
        lineno, detail = next(iter(lines.bad.items()))
        raise InputFileError(f"{path}: CSV header line {lineno} is not valid UTF-8 ({detail})")
    lines.texts.clear()
    columns = _canonical(header, kind, rules)
    read = f"(header read: {_shown(header)}, delimiter {delimiter!r})"
    duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
    if duplicates:
        raise InputFileError(f"{path}: CSV header repeats column(s) {', '.join(duplicates)} {read}")
    missing = _missing(columns, kind)
    if missing:
        raise InputFileError(
            f"{path}: CSV header lacks required column(s) {', '.join(missing)} for {kind}s {read}"
        )
    fields = UnknownFields(kind, False, rules)
    unknown = [c for c in columns if c and c not in fields.known]
    fate = (
        "the rows that fill it fail (--strict-fields)"
        if strict_fields
        else "is ignored (--strict-fields fails the rows that fill it)"
    )
    for column in unknown:
        note(
            f"bulksync: warning: {path}:{lines.lineno}: unknown CSV column "
            f"{describe_unknown(column, fields.known)} {fate}"
        )
    return lines, rows, Columns(columns, delimiter, frozenset(unknown), rules)


class Columns(list[str]):
    """The header's column names, with the delimiter they were read with and the rules of the
    target's shape their cells are read by."""

    def __init__(
        self, names: list[str], delimiter: str, unknown: frozenset[str], rules: ShapeRules
    ) -> None:
        super().__init__(names)
        self.delimiter = delimiter
        self.unknown = unknown
        self.rules = rules


def _canonical(header: list[str], kind: Kind, rules: ShapeRules) -> list[str]:
    names = {name.lower(): name for name in rules.known[kind]}
    return [names.get(cell.strip().lower(), cell.strip()) for cell in header]


def _missing(columns: list[str], kind: Kind) -> list[str]:
    return [
        " or ".join(f"'{name}'" for name in group)
        for group in _REQUIRED[kind]
        if not any(name in columns for name in group)
    ]


def _shown(header: list[str]) -> str:
    text = ",".join(header)
    return repr(text if len(text) <= 200 else text[:200] + "...")


def _detect_delimiter(line: str, kind: Kind, rules: ShapeRules) -> str:
    """The delimiter that makes the header line hold the required columns; failing that,
    the one that splits it most (the error then shows the header as it was read)."""
    best, best_cells = ",", 0
    for candidate in DELIMITERS:
        try:
            cells = next(csv.reader([line], delimiter=candidate), [])
        except csv.Error:
            continue
        if not _missing(_canonical(cells, kind, rules), kind):
            return candidate
        if len(cells) > best_cells:
            best, best_cells = candidate, len(cells)
    return best


def _cell_value(name: str, cell: str, rules: ShapeRules) -> Any:
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
    if name in rules.int_cells:
        if _INT_RE.fullmatch(cell.strip()):
            return int(cell)
        raise ValueError(f"field '{name}' must be an integer, got '{cell}'")
    if name in rules.bool_cells:
        try:
            return _BOOL_WORDS[cell.strip().lower()]
        except KeyError:
            raise ValueError(
                f"field '{name}' must be true/false, 1/0 or yes/no, got '{cell}'"
            ) from None
    return cell


def _row_object(columns: Columns, row: list[str]) -> tuple[dict[str, Any], str | None]:
    obj: dict[str, Any] = {}
    error: str | None = None
    for name, cell in zip(columns, row, strict=True):
        if not name or not cell.strip():
            continue
        try:
            obj[name] = _cell_value(name, cell, columns.rules)
        except ValueError as exc:
            error = error or str(exc)
    return obj, error


def csv_records(
    lines: _DecodedLines,
    rows: Iterator[list[str]],
    columns: Columns,
    name: str,
    kind: Kind,
    root: MediaRoot,
    strict_fields: bool = False,
) -> Iterator[Item]:
    end = lines.lineno
    while True:
        start = end + 1
        row: list[str] | None
        try:
            row = next(rows)
            reason = ""
        except StopIteration:
            return
        except csv.Error as exc:
            row = None
            reason = f"malformed CSV row: {exc}"
            if "unexpected end of data" in str(exc):
                reason = _UNTERMINATED
        # csv.reader never reads past the end of the row it returns, so every line decoded
        # since the previous row belongs to this one.
        end = lines.lineno
        texts, lines.texts = lines.texts, []
        given = False  # line `start` has its result: a later bug must not give it a second
        try:
            for item in _row_records(
                lines,
                row,
                reason,
                columns,
                Origin(name, start),
                end,
                texts,
                kind,
                root,
                strict_fields,
            ):
                given = given or item.origin.line == start
                yield item
        except Exception as exc:
            if not given:
                yield internal_error(Origin(name, start), kind, exc)


def _row_records(
    lines: _DecodedLines,
    row: list[str] | None,
    reason: str,
    columns: Columns,
    origin: Origin,
    end: int,
    texts: list[str],
    kind: Kind,
    root: MediaRoot,
    strict_fields: bool,
) -> Iterator[Item]:
    start = origin.line
    decode_error = None
    if lines.bad:
        lineno, detail = next(iter(lines.bad.items()))
        where = "line" if lineno == start else f"line {lineno}"
        decode_error = f"{where} is not valid UTF-8 ({detail})"
        lines.bad.clear()
    if row is not None and _is_blank(row):
        return
    if row is not None and len(row) != len(columns):
        reason = f"row has {len(row)} cells but the header has {len(columns)} columns"
    if reason:
        span = end - start + 1
        # A quote opened and never closed (or closed rows later) merged these lines.
        if reason == _UNTERMINATED:
            reason = (
                f"lines {start}-{end}: {reason} swallows {span} lines"
                if span > 1
                else f"{reason} at the end of the file"
            )
        elif span > 1:
            reason = f"lines {start}-{end}: {reason} (a quoted field runs over {span} lines)"
        yield BadRecord(origin=origin, kind=kind, reason=reason)
        yield from _swallowed(texts[1:], start, end, columns, origin.path, kind)
        return
    assert row is not None
    obj, error = _row_object(columns, row)
    if decode_error is not None:
        error = decode_error
    if error is None and strict_fields and columns.unknown:
        filled = [c for c in columns.unknown if c in obj]
        if filled:
            error = "; ".join(
                f"unknown field {describe_unknown(c, columns.rules.known[kind])}" for c in filled
            )
    record = build_record(kind, obj, origin, root, columns.rules, error=error)
    if decode_error is not None and record.key is not None and "\ufffd" in record.key:
        # The key was read through a repaired byte: it names nothing the user wrote.
        record = BadRecord(origin=origin, kind=kind, reason=decode_error)
    yield record


def _swallowed(
    texts: list[str], start: int, end: int, columns: Columns, path: str, kind: Kind
) -> Iterator[BadRecord]:
    """Each further line of a failed multi-line row fails too, named by what it holds."""
    for lineno, text in enumerate(texts, start + 1):
        if not text.strip():
            continue
        key = None
        try:
            cells = next(csv.reader([text], delimiter=columns.delimiter), [])
            if len(cells) == len(columns):
                key = record_key(kind, _row_object(columns, cells)[0], columns.rules)
        except Exception:
            # No row of its own either (or a bug naming it): named by its line only, but it
            # keeps its one result.
            key = None
        reason = f"swallowed by the failed row at lines {start}-{end} (its quote opens there)"
        yield BadRecord(Origin(path, lineno), kind, reason, key)
