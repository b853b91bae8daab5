"""The failures file of a run: each failed item's original input line plus an `error` column,
in the input's own format, so a user can fix it and feed it back as the input.

CSV input gives a CSV file (the same header and delimiter, plus `error`); JSONL input gives a
JSONL file (each object plus an `"error"` key; a line that was no JSON object is copied as
it was). The readers know the `error` field and ignore it.

Memory stays flat whatever the number of failures: failed lines go to a temporary SQLite
file, then come back in line order while the input is read once, merged line by line.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from bulksync.spi._records import Kind
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import read_results

MESSAGE_CHARS = 1000
_DELIMITERS = (",", ";", "\t", "|")


def write_failures(
    results: Path, inputs: Mapping[Kind, Path], out_for: Mapping[Kind, Path]
) -> dict[Kind, int]:
    """Write ``out_for[kind]`` for each kind of ``inputs`` that has failed lines; returns the
    count written per kind. ``out_for`` gives the path without its extension."""
    sources = {str(path): kind for kind, path in inputs.items()}
    store = results.with_name(".failures.sqlite")
    store.unlink(missing_ok=True)
    db = sqlite3.connect(store)
    try:
        db.execute("CREATE TABLE failed (kind TEXT, line INTEGER, message TEXT)")
        rows = _failed_lines(results, sources)
        db.executemany("INSERT INTO failed VALUES (?, ?, ?)", rows)
        db.execute("CREATE INDEX by_line ON failed (kind, line)")
        written: dict[Kind, int] = {}
        for kind, path in inputs.items():
            failed = db.execute(
                "SELECT line, message FROM failed WHERE kind = ? ORDER BY line", (kind,)
            )
            first = failed.fetchone()
            if first is None:
                continue
            lines = _chain_first(first, failed)
            csv_input = path.suffix.lower() in (".csv", ".tsv")
            target = out_for[kind].with_suffix(".csv" if csv_input else ".jsonl")
            with open(target, "w", encoding="utf-8", newline="") as out:
                copy = _copy_csv if csv_input else _copy_jsonl
                written[kind] = copy(path, lines, out)
        return written
    finally:
        db.close()
        store.unlink(missing_ok=True)


def _failed_lines(results: Path, sources: Mapping[str, Kind]) -> Iterator[tuple[str, int, str]]:
    for item in read_results(results):
        if item.get("status") != "failed":
            continue
        kind = sources.get(str(item.get("source")))
        line = item.get("line")
        if kind is None or not isinstance(line, int):
            continue  # a prune's delete, or an item of another input
        error = item.get("error") or {}
        message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        yield kind, line, redacted_excerpt(message.replace("\n", " "), MESSAGE_CHARS)


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[tuple[int, str]]:
    yield int(first[0]), str(first[1])
    for line, message in rest:
        yield int(line), str(message)


def _copy_jsonl(path: Path, failed: Iterator[tuple[int, str]], out: IO[str]) -> int:
    count = 0
    wanted = next(failed, None)
    with open(path, "rb") as source:
        for number, raw in enumerate(source, 1):
            if wanted is None:
                break
            if number < wanted[0]:
                continue
            message = wanted[1]
            while wanted is not None and wanted[0] <= number:
                wanted = next(failed, None)
            out.write(_with_error(raw, message) + "\n")
            count += 1
    return count


def _with_error(raw: bytes, message: str) -> str:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        item = None
    if not isinstance(item, dict):
        # Not an object: nothing to add a field to; copied as it was, for the user to fix.
        return raw.decode("utf-8", "replace").rstrip("\r\n")
    item["error"] = message
    return orjson.dumps(item).decode()


class _NumberedLines:
    """Decoded lines for the csv module, counting physical lines as the reader does."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.lineno = 0

    def __iter__(self) -> _NumberedLines:
        return self

    def __next__(self) -> str:
        data = self._raw.readline()
        if not data:
            raise StopIteration
        self.lineno += 1
        if self.lineno == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        return data.decode("utf-8", "replace")


def _copy_csv(path: Path, failed: Iterator[tuple[int, str]], out: IO[str]) -> int:
    with open(path, "rb") as source:
        lines = _NumberedLines(source)
        header_line = next((x for x in lines if x.strip()), "")
        delimiter = max(_DELIMITERS, key=lambda d: len(_cells(header_line, d)))
        header = _cells(header_line, delimiter)
        names = [name.strip().lower() for name in header]
        # A failures file fed back and failing again keeps one error column, the latest.
        column = names.index("error") if "error" in names else None
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header if column is not None else [*header, "error"])
        rows = csv.reader(lines, delimiter=delimiter)
        count = 0
        wanted = next(failed, None)
        while wanted is not None:
            start = lines.lineno + 1
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error:
                row = []  # a malformed row: its error column says why
            if start < wanted[0]:
                continue
            message = wanted[1]
            while wanted is not None and wanted[0] <= lines.lineno:
                wanted = next(failed, None)
            if column is not None:
                row = [*row, *([""] * (len(header) - len(row)))]
                row[column] = message
            else:
                row = [*row, *([""] * (len(header) - len(row))), message]
            writer.writerow(row)
            count += 1
    return count


def _cells(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])
