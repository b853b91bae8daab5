"""`retry-failed`: the failed items of a results file, found again in the input by their key.

A results line names its input line and the item's key. Line numbers move when a line is
inserted or removed, so the key decides: a failed key is retried wherever it now is, and a
failed line that now holds another item is reported, not retried blindly. Only a line that
could not be read at all (no key in its result) is taken by its number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bulksync.app.progress import note
from bulksync.app.report import results_items
from bulksync.spi._errors import ConfigError, InputFileError
from bulksync.spi._records import BadRecord, Record

SHOWN = 5  # mismatches named one per line; the rest are counted


@dataclass(slots=True)
class RetrySelection:
    """Failed lines by source file, each with the key its result named (``None``: unread)."""

    by_source: dict[str, dict[int, str | None]] = field(default_factory=dict)

    def count(self, source: str) -> int:
        return len(self.by_source.get(source, {}))

    def check_sources(self, inputs: Iterable[str]) -> None:
        """Failed items of a file that is not among this job's inputs would be dropped
        without a word (and the run end 0): none of them matching stops the run (exit 2),
        some of them not matching is said, one line per file."""
        given = set(inputs)
        missing = {src: len(lines) for src, lines in self.by_source.items() if src not in given}
        if not missing:
            return
        if len(missing) == len(self.by_source):
            names = ", ".join(sorted(missing))
            raise ConfigError(
                f"retry-failed: the failed items come from {names}, which this job does not "
                "read: give that input (--assets / --links or [inputs])"
            )
        for src, count in sorted(missing.items()):
            note(
                f"bulksync: retry-failed: {count} failed item(s) of {src} not retried: this "
                "job does not read that file"
            )

    def select(
        self, source: str, records: Iterable[Record | BadRecord]
    ) -> Iterator[Record | BadRecord]:
        """The records to retry, in input order; mismatches are reported once the input is
        read through."""
        failed = self.by_source.get(source, {})
        keys = {key: line for line, key in failed.items() if key is not None}
        found: dict[str, int] = {}  # failed key -> the line that holds it now
        moved: list[tuple[int, str, str | None]] = []  # failed line, its key, what it holds
        for record in records:
            line, key = record.origin.line, record.key
            if key is not None and key in keys:
                found.setdefault(key, line)
                yield record
            elif line in failed and failed[line] is None:
                yield record  # unreadable then: no identity to check it by
            elif line in failed:
                moved.append((line, failed[line] or "", key))
        _report(source, keys, found, moved)


def _report(
    source: str,
    keys: dict[str, int],
    found: dict[str, int],
    moved: list[tuple[int, str, str | None]],
) -> None:
    name = Path(source).name
    messages = []
    for line, key, now in moved:
        holds = f"now holds {now}" if now is not None else "now holds an item without a key"
        if key in found:
            messages.append(
                f"{name}:{line} {holds} (not retried); the failed {key} moved to line "
                f"{found[key]} and is retried there"
            )
        else:
            messages.append(
                f"{name}:{line} {holds}, not the failed {key} (not retried); {key} is no "
                "longer in the input"
            )
    reported = {key for _, key, _ in moved}
    for key, line in keys.items():
        if key not in found and key not in reported:
            messages.append(f"{name}:{line} failed as {key}, which is no longer in the input")
    for message in messages[:SHOWN]:
        note(f"bulksync: retry-failed: {message}")
    if len(messages) > SHOWN:
        note(f"bulksync: retry-failed: ... and {len(messages) - SHOWN} more input change(s)")


def failed_items(results: Path) -> RetrySelection:
    """The failed items of a results file, by source file and line, with their keys."""
    if not results.is_file():
        raise InputFileError(f"results file not found: {results}")
    selection = RetrySelection()
    for item in results_items(results):
        error = item.get("error")
        if isinstance(error, dict) and error.get("type") == "DuplicateItem":
            continue  # retried alone it would overwrite the first line's item on the target
        source, line = item.get("source"), item.get("line")
        if item.get("status") != "failed" or not source or not isinstance(line, int) or not line:
            continue
        key = item.get("key")
        selection.by_source.setdefault(str(source), {})[line] = (
            key if isinstance(key, str) else None
        )
    return selection
