"""`bulksync report`: a results file in the shape of a bulk links response."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import orjson

from .errors import InputFileError
from .results import read_results, summary_path


def write_report(results: Path, out: TextIO, *, failed_only: bool = False) -> int:
    """Stream ``{"data": [...], "messages": [...], "total": N}``; returns N.

    The data array is written item by item, so a results file of any size fits in memory.
    """
    if not results.is_file():
        raise InputFileError(f"results file not found: {results}")
    messages = ["Completed"]
    summary = summary_path(results)
    if summary.is_file():
        messages = orjson.loads(summary.read_bytes()).get("messages", messages)
    out.write('{"data": [')
    total = 0
    for item in read_results(results):
        if failed_only and item.get("status") != "failed":
            continue
        out.write(("\n  " if total == 0 else ",\n  ") + orjson.dumps(item).decode())
        total += 1
    out.write(("\n" if total else "") + "], ")
    out.write(f'"messages": {orjson.dumps(messages).decode()}, "total": {total}}}\n')
    return total


def failed_lines(results: Path) -> dict[str, set[int]]:
    """The input lines that failed in a results file, by source file (for retry-failed)."""
    if not results.is_file():
        raise InputFileError(f"results file not found: {results}")
    wanted: dict[str, set[int]] = {}
    for item in read_results(results):
        error = item.get("error")
        if isinstance(error, dict) and error.get("type") == "DuplicateItem":
            continue  # retried alone it would overwrite the first line's item on the target
        if item.get("status") == "failed" and item.get("source") and item.get("line"):
            wanted.setdefault(str(item["source"]), set()).add(int(item["line"]))
    return wanted
