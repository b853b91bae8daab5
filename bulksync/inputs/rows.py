"""An input file's lines as written, numbered as the readers number them: for copying the
failed ones into a run's failures file (bulksync.app._failures) that reads back as an input.

CSV rows are numbered by the physical line they start on, exactly as :func:`csv_records` does
(quoted cells may span lines); JSONL lines by their physical line. Both stream: one row in
memory at a time.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bulksync.inputs._csv import (
    Columns,
    _canonical,
    _DecodedLines,
    _detect_delimiter,
    _is_blank,
    _missing,
    _row_object,
)
from bulksync.inputs._shape_rules import FAILURE_COLUMN, rules_for
from bulksync.spi._errors import InputFileError
from bulksync.spi._records import Kind
from bulksync.spi._shapes import InputShape

__all__ = ["FAILURE_COLUMN", "CsvRows", "csv_rows", "jsonl_lines", "read_back_as_csv"]


class CsvRows:
    """The header and the rows of a CSV input; ``rows`` yields ``(line, cells)``, cells None
    for a row the CSV parser could not read (its line still has its number)."""

    def __init__(self, header: list[str], delimiter: str, rows: Iterator[tuple[int, Any]]):
        self.header = header
        self.delimiter = delimiter
        self.rows: Iterator[tuple[int, list[str] | None]] = rows


def csv_rows(
    path: Path, kind: Kind, delimiter: str | None, shape: InputShape | None = None
) -> CsvRows:
    """The rows of ``path`` with the line numbers the reader gave them. The caller closes
    nothing: the file is closed when ``rows`` is exhausted or garbage collected."""
    rules = rules_for(shape)
    raw = path.open("rb")
    lines = _DecodedLines(raw)
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raw.close()
        raise InputFileError(f"{path}: CSV file has no header row")
    if delimiter is None:
        delimiter = _detect_delimiter(first, kind, rules)
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    try:
        header = next((row for row in reader if not _is_blank(row)), None)
    except csv.Error:
        header = None
    if header is None:
        raw.close()
        raise InputFileError(f"{path}: cannot read the CSV header")
    lines.texts.clear()
    return CsvRows(header, delimiter, _numbered(raw, lines, reader))


def _numbered(
    raw: Any, lines: _DecodedLines, reader: Iterator[list[str]]
) -> Iterator[tuple[int, list[str] | None]]:
    # The same walk as bulksync.inputs._csv.csv_records: a row starts on the line after the
    # previous row's last line.
    with raw:
        end = lines.lineno
        while True:
            start = end + 1
            row: list[str] | None
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                row = None
            end = lines.lineno
            lines.texts.clear()
            lines.bad.clear()
            yield start, row


def jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line, bytes)`` for each physical line of a JSONL input (BOM and newline removed)."""
    with path.open("rb") as raw:
        for lineno, line in enumerate(raw, 1):
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            yield lineno, line.rstrip(b"\r\n")


def read_back_as_csv(
    obj: dict[str, Any], kind: Kind, delimiter: str, shape: InputShape | None = None
) -> dict[str, str] | None:
    """The CSV cells of a JSONL object (by column) (top-level keys as columns, nested values as JSON
    text), when the CSV reader reads them back as the very same object; else None."""
    rules = rules_for(shape)
    names = [name for name in obj if name != FAILURE_COLUMN]
    if _canonical(names, kind, rules) != names or any(not n or n != n.strip() for n in names):
        return None  # "ID" would be read as "id"; a blank or padded name is no column
    cells = [_cell_text(obj[name]) for name in names]
    if any(cell is None for cell in cells):
        return None
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\n").writerow(cells)
    try:
        parsed = next(csv.reader(io.StringIO(text.getvalue()), delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration):
        return None
    columns = Columns(names, delimiter, frozenset(), rules)
    back, error = _row_object(columns, parsed)
    wanted = {name: obj[name] for name in names}
    if error is not None or back != wanted:
        return None
    return {name: cell for name, cell in zip(names, cells, strict=True) if cell is not None}


def _cell_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return None  # null or a float: no cell reads back as one


def header_readable(names: list[str], kind: Kind, shape: InputShape | None = None) -> bool:
    """Whether the CSV reader accepts this header: no repeated column, the required ones."""
    columns = _canonical(names, kind, rules_for(shape))
    return len(set(columns)) == len(columns) and not _missing(columns, kind)
