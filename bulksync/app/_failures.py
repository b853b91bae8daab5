"""A run's failures file: the failed items' input lines as written, plus an ``error`` column,
ready to fix and feed back as an input.

Constant memory whatever the number of failures: the failed (line, error) pairs of the results
go into a scratch SQLite table in the run folder, then one ordered pass over each input joins
them with its lines (both in line order). CSV input keeps its header and delimiter and gains
``error``; JSONL input becomes CSV (top-level keys as columns, nested values as JSON text) when
every failed line reads back identically through the CSV reader, else ``failures.jsonl`` holds
the original lines with an ``"error"`` key.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bulksync.inputs.rows import (
    FAILURE_COLUMN,
    csv_rows,
    header_readable,
    jsonl_lines,
    read_back_as_csv,
)
from bulksync.spi._records import Kind
from bulksync.spi._redact import redact
from bulksync.spi._shapes import InputShape

__all__ = ["FailureInput", "FailuresWritten", "write_failures"]

# More distinct keys than this among the failed JSONL lines: no sensible CSV header.
_MAX_COLUMNS = 200
_BATCH = 5000


@dataclass(frozen=True, slots=True)
class FailureInput:
    kind: Kind
    path: Path
    csv: bool  # read as CSV (by the job's format or the file's extension)


@dataclass(slots=True)
class FailuresWritten:
    files: list[Path] = field(default_factory=list)
    not_copied: int = 0  # failed lines with no row to copy (unparsable, or not an input line)
    duplicates: int = 0  # left out: fed back alone, each would overwrite its first line's item


def write_failures(
    results: Path,
    inputs: Sequence[FailureInput],
    out_for: Any,
    *,
    delimiter: str | None,
    shape: InputShape | None,
    scratch: Path,
) -> FailuresWritten:
    """Write one failures file per input that has failed lines; ``out_for(kind, suffix)``
    names it. ``delimiter`` is the job's CSV delimiter (None: detected / ``,``)."""
    done = FailuresWritten()
    sources = {str(item.path): number for number, item in enumerate(inputs)}
    scratch.unlink(missing_ok=True)
    db = sqlite3.connect(scratch)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE failed (src INTEGER, line INTEGER, error TEXT, PRIMARY KEY (src, line))"
        )
        counts = _load_failed(db, results, sources)
        done.not_copied += counts.pop(-1, 0)
        done.duplicates += counts.pop(-2, 0)
        for number, item in enumerate(inputs):
            if not counts.get(number):
                continue
            failed = _cursor(db, number)
            if item.csv:
                target = out_for(item.kind, ".csv")
                copied = _copy_csv(item, failed, target, delimiter, shape)
            else:
                target, copied = _copy_jsonl(item, db, number, out_for, delimiter or ",", shape)
            done.files.append(target)
            done.not_copied += counts[number] - copied
    finally:
        db.close()
        scratch.unlink(missing_ok=True)
    return done


def _load_failed(db: sqlite3.Connection, results: Path, sources: dict[str, int]) -> dict[int, int]:
    """Failed result lines into the table; counts per input (-1: not from an input line,
    -2: a duplicate of an earlier line, which retry-failed leaves out too)."""
    counts: dict[int, int] = {}
    batch: list[tuple[int, int, str]] = []
    with results.open("rb") as fh:
        for raw in fh:
            if b'"failed"' not in raw:
                continue  # most lines: no parse at all
            doc = orjson.loads(raw)
            if doc.get("status") != "failed":
                continue
            error = doc.get("error")
            if isinstance(error, dict) and error.get("type") == "DuplicateItem":
                counts[-2] = counts.get(-2, 0) + 1
                continue
            number = sources.get(doc.get("source"), -1)
            line = doc.get("line")
            if number < 0 or not isinstance(line, int) or line < 1:
                counts[-1] = counts.get(-1, 0) + 1
                continue
            batch.append((number, line, _error_text(error)))
            if len(batch) >= _BATCH:
                counts_added(db, batch, counts)
                batch = []
    counts_added(db, batch, counts)
    return counts


def counts_added(
    db: sqlite3.Connection, batch: list[tuple[int, int, str]], counts: dict[int, int]
) -> None:
    for number, _, _ in batch:
        counts[number] = counts.get(number, 0) + 1
    # One result per input line; a repeat (none expected) keeps the first error.
    db.executemany("INSERT OR IGNORE INTO failed VALUES (?, ?, ?)", batch)


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "failed"
    text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}".strip()
    # One physical line per cell: the file stays greppable and the row one line.
    return redact(" ".join(text.split()))


def _cursor(db: sqlite3.Connection, number: int) -> Iterator[tuple[int, str]]:
    cursor = db.execute("SELECT line, error FROM failed WHERE src = ? ORDER BY line", (number,))
    while rows := cursor.fetchmany(_BATCH):
        yield from rows


def _joined(
    lines: Iterator[tuple[int, Any]], failed: Iterator[tuple[int, str]]
) -> Iterator[tuple[Any, str]]:
    """The input lines that failed, with their error: a merge of two line-ordered streams."""
    wanted = next(failed, None)
    for lineno, content in lines:
        while wanted is not None and wanted[0] < lineno:
            wanted = next(failed, None)  # a line that starts no row (swallowed, blank)
        if wanted is None:
            return
        if wanted[0] == lineno:
            yield content, wanted[1]
            wanted = next(failed, None)


def _copy_csv(
    item: FailureInput,
    failed: Iterator[tuple[int, str]],
    target: Path,
    delimiter: str | None,
    shape: InputShape | None,
) -> int:
    source = csv_rows(item.path, item.kind, delimiter, shape)
    header = list(source.header)
    names = [name.strip().lower() for name in header]
    if FAILURE_COLUMN in names:
        at = names.index(FAILURE_COLUMN)  # a failures file fed back: its error is replaced
    else:
        at = len(header)
        header.append(FAILURE_COLUMN)
    copied = 0
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=source.delimiter, lineterminator="\n")
        writer.writerow(header)
        for cells, error in _joined(source.rows, failed):
            if cells is None:
                continue  # a row the CSV parser could not read: nothing faithful to copy
            row = list(cells)
            if len(row) < len(header):
                row.extend([""] * (len(header) - len(row)))
            row[at] = error
            writer.writerow(row)
            copied += 1
    return copied


def _copy_jsonl(
    item: FailureInput,
    db: sqlite3.Connection,
    number: int,
    out_for: Any,
    delimiter: str,
    shape: InputShape | None,
) -> tuple[Path, int]:
    # First pass: the columns, and whether every failed object survives the trip through CSV.
    columns: dict[str, None] = {}
    as_csv = True
    for obj, _ in _objects(item, db, number):
        if as_csv and read_back_as_csv(obj, item.kind, delimiter, shape) is None:
            as_csv = False
        for name in obj:
            if name != FAILURE_COLUMN:
                columns[name] = None
        if len(columns) > _MAX_COLUMNS:
            as_csv = False
        if not as_csv:
            break
    names = list(columns)
    if as_csv and not header_readable([*names, FAILURE_COLUMN], item.kind, shape):
        as_csv = False
    copied = 0
    if as_csv:
        target = out_for(item.kind, ".csv")
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
            writer.writerow([*names, FAILURE_COLUMN])
            for obj, error in _objects(item, db, number):
                cells = read_back_as_csv(obj, item.kind, delimiter, shape) or {}
                writer.writerow([*(cells.get(name, "") for name in names), error])
                copied += 1
        return target, copied
    target = out_for(item.kind, ".jsonl")
    with target.open("wb") as out:
        for obj, error in _objects(item, db, number):
            obj[FAILURE_COLUMN] = error
            out.write(orjson.dumps(obj) + b"\n")
            copied += 1
    return target, copied


def _objects(
    item: FailureInput, db: sqlite3.Connection, number: int
) -> Iterator[tuple[dict[str, Any], str]]:
    """The failed JSONL lines that are JSON objects (an unreadable line has nothing to copy)."""
    for raw, error in _joined(jsonl_lines(item.path), _cursor(db, number)):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj, error
