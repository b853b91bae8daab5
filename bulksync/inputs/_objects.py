"""Rows given in code (dicts, or record objects: dataclasses, attrs classes, named tuples,
pydantic models) as the JSON line a file would hold, so that each is checked exactly like one.

A field named ``from_`` (``from`` is a Python keyword, so a class cannot name a field so) is
the input's ``from``; a pydantic model gives its fields by alias.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["UNREADABLE_LINE", "RowError", "row_line", "spilled_line"]

# The line of a row that could not be written as one: it fails to parse, in its place.
UNREADABLE_LINE = b"\x00\n"


class RowError(ValueError):
    """A row that cannot be the JSON line of a record; the message says why."""

    def __init__(self, message: str, *, not_an_object: bool = False) -> None:
        super().__init__(message)
        self.not_an_object = not_an_object


def row_line(row: object) -> bytes:
    """``row`` as one JSON line (with its newline), or :class:`RowError`."""
    try:
        fields = _fields(row)
    except Exception as exc:  # the row's own code (a model's dump, a lazy attribute)
        raise RowError(f"row cannot be read as an object: {type(exc).__name__}: {exc}") from exc
    if fields is None:
        what = type(row).__name__
        message = f"expected an object (a dict or a record object), got {what}"
        raise RowError(message, not_an_object=True)
    try:
        # Keys that are not strings become strings: the line then fails as an unknown field.
        return orjson.dumps(fields, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    except (TypeError, orjson.JSONEncodeError) as exc:  # a lone surrogate, a cycle...
        raise RowError(f"row cannot be written as JSON: {exc}") from exc


def spilled_line(row: object) -> bytes:
    """:func:`row_line` for a file the run reads back: a row that cannot be one still takes
    its line, so that it fails there rather than shifting every row after it."""
    try:
        return row_line(row)
    except RowError as exc:
        if exc.not_an_object:  # the value itself, if JSON can write it: "got integer"
            try:
                return orjson.dumps(row) + b"\n"
            except (TypeError, orjson.JSONEncodeError):
                pass
        return UNREADABLE_LINE


def _fields(row: object) -> dict[str, Any] | None:
    if isinstance(row, Mapping):
        return dict(row)
    dump = getattr(row, "model_dump", None)  # pydantic 2
    if callable(dump):
        dumped = dump(mode="json", by_alias=True, exclude_none=True)
        return dumped if isinstance(dumped, dict) else None
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return _unkeyword({f.name: getattr(row, f.name) for f in dataclasses.fields(row)})
    attributes = getattr(type(row), "__attrs_attrs__", None)  # attrs, without importing it
    if attributes is not None:
        return _unkeyword({a.name: getattr(row, a.name) for a in attributes})
    as_dict = getattr(row, "_asdict", None)  # a named tuple
    if isinstance(row, tuple) and callable(as_dict):
        return _unkeyword(dict(as_dict()))
    return None


def _unkeyword(fields: dict[str, Any]) -> dict[str, Any]:
    # A None field is an absent one, as a dataclass default means "not given".
    return {
        name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name: value
        for name, value in fields.items()
        if value is not None
    }
