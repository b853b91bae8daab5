"""The checks of one field value that every target shares: ids, strings, integers, booleans.

Each raises :class:`FieldError` with the words the line's result shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulksync.spi._answers import type_name
from bulksync.spi._shapes import INT32_BOUNDS

# `sequence` goes to targets as a GraphQL Int (Propeller) or a database integer column
# (Quable): signed 32 bits is what all of them take. Numeric endpoint ids are identities
# only, so they get the 64 bits every JSON library and the state's hash can carry.
INT32 = INT32_BOUNDS
INT64 = (-(2**63), 2**63 - 1)
# Ids go into URL paths and the state: no target takes an id of thousands of characters.
MAX_ID_CHARS = 1000


class FieldError(Exception):
    """One field of a record is missing or wrong; the message is the record's reason."""


def required_str(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj:
        raise FieldError(f"missing field '{name}'")
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise FieldError(f"field '{name}' must be a non-empty string, got {type_name(value)}")
    return value


def required_id(obj: Mapping[str, Any], name: str) -> str:
    """A required string that ends up as a URL path segment on some target: "." and ".."
    would be dropped or climbed by the URL, sending the request to another resource."""
    value = required_str(obj, name)
    if value in (".", ".."):
        raise FieldError(f"field '{name}' cannot be '{value}': it would change the request's path")
    if len(value) > MAX_ID_CHARS:
        raise FieldError(f"field '{name}' is {len(value)} characters, over {MAX_ID_CHARS}")
    if "\x00" in value:
        # Servers written in C, and most databases, cut a text at a NUL: the target would
        # store another id than the one sent, or refuse it only after the request.
        raise FieldError(f"field '{name}' contains a NUL byte")
    return value


# Optional fields treat an explicit null like an absent field: exporters often write null
# for "no value", and refusing it would fail whole files for no benefit.
def optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FieldError(f"field '{name}' must be a string, got {type_name(value)}")


def optional_int(obj: Mapping[str, Any], name: str, bounds: tuple[int, int] = INT32) -> int | None:
    value = obj.get(name)
    if value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        check_int_range(name, value, bounds)
        return value
    if isinstance(value, float) and abs(value) > INT64[1]:
        # The JSON parser turns an integer too big for 64 bits into a float.
        raise FieldError(f"field '{name}' is out of range: {bounds[0]} to {bounds[1]}")
    raise FieldError(f"field '{name}' must be an integer, got {type_name(value)}")


def check_int_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    """Integers must fit what the target stores (a GraphQL Int is signed 32-bit)."""
    low, high = bounds
    if not low <= value <= high:
        raise FieldError(f"field '{name}' is out of range: {low} to {high}, got {value}")


def optional_bool(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise FieldError(f"field '{name}' must be a boolean, got {type_name(value)}")


def attributes(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("attributes")
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise FieldError(f"field 'attributes' must be an object, got {type_name(value)}")
