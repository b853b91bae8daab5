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

__all__ = ["UNREADABLE_LINE", "row_line"]

# The line of a row that could not be written as one: it fails to parse, in its place.
UNREADABLE_LINE = b"\x00\n"


def row_line(row: object) -> bytes:
    """``row`` as one JSON line (with its newline); raises what the row's own code raises
    (a pydantic model's dump, a value orjson cannot write)."""
    fields = _fields(row)
    if fields is None:
        # Not an object: it still takes its line, so that it fails there with its own result
        # ("expected a JSON object") rather than shifting every row after it.
        return b"[" + orjson.dumps(type(row).__name__) + b"]\n"
    # Keys that are not strings become strings: the line then fails as an unknown field.
    return orjson.dumps(fields, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"


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
