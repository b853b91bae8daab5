"""One-line messages for config mistakes, from pydantic's structured errors.

pydantic's own text spans several lines and repeats the offending value; a config message is
one line with the field path, and never repeats a value that may be a secret.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable, Mapping, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# How many problems one message lists: enough to fix several typos at once, still one line.
_MAX_SHOWN = 3

_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "path_type": "a path (a string)",
    "list_type": "an array",
    "tuple_type": "a [requests, seconds] pair",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dataclass_type": "a table",
}

_BOUNDS = {
    "greater_than": "more than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


def type_name(value: object) -> str:
    """A TOML user's name for a value's type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string" if value else "empty string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.date | datetime.time):
        return "date/time"
    if value is None:
        return "nothing"
    return type(value).__name__


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, if any is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The did-you-mean clause for a message ("; did you mean 'x'?"), or "" when none is close."""
    match = close_match(word, choices)
    return f"; did you mean '{match}'?" if match else ""


def field_path(loc: Sequence[int | str], table: str | None = None) -> str:
    """('target', 'base_url') -> '[target] base_url'; ('rate', 0, 1) in [limits] ->
    '[limits] rate[0][1]'."""
    parts = list(loc)
    if table is None and parts:
        table = str(parts.pop(0))
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    head = f"[{table}]" if table else ""
    return f"{head} {text}".strip()


def describe(
    exc: ValidationError, table: str | None = None, known: Mapping[str, Sequence[str]] | None = None
) -> str:
    """One line naming every problem's field path. ``table`` names the table when ``exc`` came
    from one table's model; ``known`` lists each table's keys for the did-you-mean."""
    errors = exc.errors(include_url=False)
    shown = [_one(error, table, known or {}) for error in errors[:_MAX_SHOWN]]
    more = len(errors) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def _one(error: ErrorDetails, table: str | None, known: Mapping[str, Sequence[str]]) -> str:
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    path = field_path(loc, table)
    if kind == "extra_forbidden":
        section = table if table is not None else (str(loc[0]) if len(loc) > 1 else "")
        key = str(loc[-1])
        keys = known.get(section, ())
        listing = f" (known: {', '.join(sorted(keys))})" if keys else ""
        where = f" in [{section}]" if section else ""
        return f"unknown key '{key}'{where}{did_you_mean(key, keys)}{listing}"
    if kind == "missing":
        return f"{path}: is required"
    if kind == "literal_error":
        value = error["input"]
        got = f"'{value}'" if isinstance(value, str) else type_name(value)
        expected = str(ctx.get("expected", "")).replace(" or ", ",")
        choices = [choice.strip(" '") for choice in expected.split(",")]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"{path}: expected one of {', '.join(choices)}, got {got}{hint}"
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, got {type_name(error['input'])}"
    if kind in _BOUNDS:
        return f"{path}: must be {_BOUNDS[kind].format(**ctx)}"
    if kind in ("too_long", "too_short") and ctx.get("field_type") == "Tuple":
        return f"{path}: expected a [requests, seconds] pair"
    # A custom error (PydanticCustomError) of ours: its message is written for the user and
    # never holds the value.
    return f"{path}: {error['msg']}"
