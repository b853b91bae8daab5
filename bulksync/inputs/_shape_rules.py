"""The reader's side of a target's :class:`InputShape`: the fields a line may have, the
endpoint objects it may give, and the checks of the target's extra link fields.

The shape is compiled once per input file, not looked at field by field on every line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulksync.inputs._fields import (
    INT64,
    MAX_ID_CHARS,
    FieldError,
    check_int_range,
    optional_bool,
    optional_int,
    optional_str,
    required_id,
)
from bulksync.spi._answers import type_name
from bulksync.spi._records import Endpoint, Kind
from bulksync.spi._shapes import (
    BOOLEAN,
    GENERIC_LINK_FIELDS,
    INT32,
    STRING,
    EndpointForm,
    InputShape,
    LinkField,
)

ASSET_FIELDS = frozenset({"id", "file", "remotePath", "classification", "attributes"})
# The column a run's failures file adds to the failed lines (bulksync.app._failures): known to
# be ours, so a failures file fed back as an input reads without an unknown-field warning. No
# record reads it.
FAILURE_COLUMN = "error"

# What a line is checked against when no target is named (a library caller, a test reading a
# file on its own): what any built-in target takes, so no line a target accepts is refused.
# A test checks it equals the union of the built-in targets' declared shapes.
ANY_BUILT_IN = InputShape(
    endpoint_objects=(
        EndpointForm(("class", "id"), numeric=frozenset({"id"})),
        EndpointForm(("class", "source", "sourceId"), optional=("language",)),
        EndpointForm(("catalog", "category")),
    ),
    link_fields={"subtype": STRING, "priority": INT32, "isDefault": BOOLEAN, "isActive": BOOLEAN},
)


class ShapeRules:
    """One shape, compiled for the reader."""

    def __init__(self, shape: InputShape) -> None:
        self.shape = shape
        self.link_fields: Mapping[str, LinkField] = dict(shape.link_fields)
        self.known: dict[Kind, frozenset[str]] = {
            "asset": ASSET_FIELDS | {FAILURE_COLUMN},
            "link": GENERIC_LINK_FIELDS | frozenset(self.link_fields) | {FAILURE_COLUMN},
        }
        self._key_sets = frozenset(
            keys for form in shape.endpoint_objects for keys in form.key_sets()
        )
        self._numeric = frozenset(key for form in shape.endpoint_objects for key in form.numeric)
        texts = [form.text() for form in shape.endpoint_objects]
        self._forms_text = (
            f"{', '.join(texts[:-1])} or {texts[-1]}" if len(texts) > 1 else "".join(texts)
        )
        # What a CSV cell is converted to before the checks: the JSON type of its field.
        typed = {name: spec.type for name, spec in self.link_fields.items()}
        self.int_cells = frozenset({"sequence"} | {n for n, t in typed.items() if t == "integer"})
        self.bool_cells = frozenset(n for n, t in typed.items() if t == "boolean")

    def endpoint(self, obj: Mapping[str, Any], name: str) -> Endpoint:
        if name not in obj:
            raise FieldError(f"missing field '{name}'")
        value = obj[name]
        if isinstance(value, str) and value:
            return required_id(obj, name)
        if not self._key_sets:
            raise FieldError(f"field '{name}' must be a non-empty string, got {type_name(value)}")
        if not isinstance(value, dict):
            raise FieldError(
                f"field '{name}' must be a non-empty string or an object, got {type_name(value)}"
            )
        keys = frozenset(value)
        if keys not in self._key_sets:
            # Guessing which form was meant would only move the error to the target's answer.
            raise FieldError(
                f"field '{name}' must be an object with keys {self._forms_text}, "
                f"got keys {{{', '.join(sorted(keys))}}}"
            )
        for key, item in value.items():
            self._endpoint_value(f"{name}.{key}", key, item)
        return dict(value)

    def _endpoint_value(self, where: str, key: str, item: Any) -> None:
        if key in self._numeric:
            if isinstance(item, int) and not isinstance(item, bool):
                check_int_range(where, item, INT64)
                return
            if isinstance(item, str) and item:
                return
            raise FieldError(
                f"field '{where}' must be an integer or a non-empty string, got {type_name(item)}"
            )
        if not isinstance(item, str) or not item:
            raise FieldError(f"field '{where}' must be a non-empty string, got {type_name(item)}")
        if item in (".", ".."):
            raise FieldError(
                f"field '{where}' cannot be '{item}': it would change the request's path"
            )
        if "\x00" in item:
            raise FieldError(f"field '{where}' contains a NUL byte")
        if len(item) > MAX_ID_CHARS:
            raise FieldError(f"field '{where}' is {len(item)} characters, over {MAX_ID_CHARS}")

    def extra(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The target's own link fields the line gives, checked against their declared type."""
        if obj.keys().isdisjoint(self.link_fields):
            return {}  # the common line: none of them (a check per field, twice a run, each)
        found: dict[str, Any] = {}
        for name, spec in self.link_fields.items():
            value: Any
            if spec.type == "integer":
                value = optional_int(obj, name, spec.bounds or INT64)
            elif spec.type == "boolean":
                value = optional_bool(obj, name)
            else:
                value = optional_str(obj, name)
            if value is not None:
                found[name] = value
        return found


def rules_for(shape: InputShape | None) -> ShapeRules:
    """The compiled rules of ``shape`` (None: :data:`ANY_BUILT_IN`)."""
    return ShapeRules(ANY_BUILT_IN if shape is None else shape)
