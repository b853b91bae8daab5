"""Failed results grouped by what went wrong, for `bulksync report` and the HTML report.

A million failed lines are usually a handful of causes: the groups are keyed by error type and
the message with what varies from line to line masked (the file:line prefix, quoted values,
numbers), so "line 12: field 'id' missing" and "line 40: field 'id' missing" are one group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 3  # example lines kept per group
MAX_GROUPS = 1000  # beyond this many distinct causes, the rest are counted as one group

_ORIGIN = re.compile(r"^[^\s:]+(?::\d+)?: ")  # "assets.csv:12: " as readers prefix messages
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
OTHER = "other causes"


@dataclass(slots=True)
class ErrorGroup:
    type: str
    message: str  # the masked message shared by the group
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # source, line, key, message

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "count": self.count,
            "examples": self.examples,
        }


def pattern_of(message: str) -> str:
    """The message with what varies between lines of one cause masked."""
    masked = _ORIGIN.sub("", message, count=1)
    masked = _QUOTED.sub("'…'", masked)
    return _NUMBER.sub("N", masked)


def group_errors(items: Iterable[dict[str, Any]]) -> list[ErrorGroup]:
    """The failed items of a results stream, grouped; largest group first. Memory is bounded
    by the number of distinct causes (at most :data:`MAX_GROUPS`), not by the items."""
    groups: dict[tuple[str, str], ErrorGroup] = {}
    for item in items:
        if item.get("status") != "failed":
            continue
        error = item.get("error")
        if not isinstance(error, dict):
            error = {}
        kind = str(error.get("type") or "Error")
        message = str(error.get("message") or "")
        key = (kind, pattern_of(message))
        group = groups.get(key)
        if group is None:
            if len(groups) >= MAX_GROUPS:
                key = ("Error", OTHER)
                group = groups.setdefault(key, ErrorGroup("Error", OTHER))
            else:
                group = groups[key] = ErrorGroup(kind, key[1])
        group.count += 1
        if len(group.examples) < EXAMPLES:
            group.examples.append(
                {
                    "source": item.get("source"),
                    "line": item.get("line"),
                    "key": item.get("key"),
                    "message": message,
                }
            )
    return sorted(groups.values(), key=lambda g: (-g.count, g.type, g.message))
