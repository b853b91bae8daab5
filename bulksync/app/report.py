"""`bulksync report`: a results file in the shape of a bulk links response."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from bulksync.spi._errors import InputFileError
from bulksync.store.results import read_results, summary_path


def write_report(results: Path, out: TextIO, *, failed_only: bool = False) -> int:
    """Stream ``{"data": [...], "messages": [...], "total": N}``; returns N.

    The data array is written item by item, so a results file of any size fits in memory.
    """
    if not results.is_file():
        raise InputFileError(f"results file not found: {results}")
    items = results_items(results)
    first = next(items, None)  # a file that is no results file fails before any output
    messages = ["Completed"]
    summary = summary_path(results)
    if summary.is_file():
        try:
            messages = orjson.loads(summary.read_bytes()).get("messages", messages)
        except (orjson.JSONDecodeError, AttributeError):
            messages = ["Completed"]  # a damaged summary does not hide the results
    out.write('{"data": [')
    total = 0
    for item in itertools.chain([] if first is None else [first], items):
        if failed_only and item.get("status") != "failed":
            continue
        out.write(("\n  " if total == 0 else ",\n  ") + orjson.dumps(item).decode())
        total += 1
    out.write(("\n" if total else "") + "], ")
    out.write(f'"messages": {orjson.dumps(messages).decode()}, "total": {total}}}\n')
    return total


def results_items(results: Path) -> Iterator[dict[str, Any]]:
    """The lines of a results file; an input file (a CSV, a links JSONL) given by mistake is
    named with its first line that no results file has."""
    try:
        for lineno, item in enumerate(read_results(results), 1):
            if not isinstance(item, dict) or "status" not in item:
                raise InputFileError(
                    f"{results} is not a bulksync results file (line {lineno} has no status)"
                )
            yield item
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{results} is not a bulksync results file: {exc}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {results}: {exc.strerror or exc}") from None
