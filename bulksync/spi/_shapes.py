"""What a target takes in an input line, declared by its spec so the reader knows no vendor.

Every target takes the same asset lines and the same generic link fields (``from``, ``to``,
``type``, ``sequence``, ``attributes``); a target's :class:`InputShape` adds the object forms
an endpoint may take and the extra link fields it reads (Propeller's ``subtype``, say). The
reader validates each line against the shape of the run's target, so a field the target
would ignore is reported as unknown instead of being carried along silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

FieldType = Literal["integer", "string", "boolean"]

# What every target can store for an integer (a GraphQL Int, a database integer column).
INT32_BOUNDS = (-(2**31), 2**31 - 1)
# The fields every link has; a shape cannot redeclare them.
GENERIC_LINK_FIELDS = frozenset({"from", "to", "type", "sequence", "attributes"})


@dataclass(frozen=True, slots=True)
class LinkField:
    """One extra link field: its JSON type and, for an integer, its inclusive bounds.

    A null value is the same as an absent field; a present one must be of ``type``.
    """

    type: FieldType
    bounds: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # A plug-in's typo ("int") would otherwise make the field a string without a word.
        if self.type not in get_args(FieldType):
            raise ValueError(
                f"a link field's type is one of {get_args(FieldType)}, not {self.type!r}"
            )
        if self.bounds is not None and self.type != "integer":
            raise ValueError("only an integer field has bounds")
        if self.bounds is not None and self.bounds[0] > self.bounds[1]:
            raise ValueError(f"empty bounds {self.bounds}")


STRING = LinkField("string")
BOOLEAN = LinkField("boolean")
INT32 = LinkField("integer", INT32_BOUNDS)


@dataclass(frozen=True, slots=True)
class EndpointForm:
    """An object endpoint's keys: all of ``keys``, plus any of ``optional``.

    Every value is a non-empty id string; a key in ``numeric`` may also hold an integer (a
    64-bit id, as JSON libraries and the state's hash carry it).
    """

    keys: tuple[str, ...]
    optional: tuple[str, ...] = ()
    numeric: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = self.keys + self.optional
        if not self.keys or len(set(names)) != len(names):
            raise ValueError(f"an endpoint form needs distinct keys, got {names}")
        if not self.numeric <= set(names):
            raise ValueError(f"numeric keys {sorted(self.numeric)} are not keys of the form")

    def key_sets(self) -> Iterator[frozenset[str]]:
        """Every key set this form accepts (the required keys with each choice of optional)."""
        for count in range(len(self.optional) + 1):
            for chosen in itertools.combinations(self.optional, count):
                yield frozenset(self.keys + chosen)

    def text(self) -> str:
        """``{class, source, sourceId[, language]}``, as error messages show the form."""
        optional = "".join(f"[, {name}]" for name in self.optional)
        return "{" + ", ".join(self.keys) + optional + "}"


@dataclass(frozen=True, slots=True)
class InputShape:
    """The endpoint forms and extra link fields a target accepts.

    A string endpoint (an id) is always accepted; ``endpoint_objects`` lists the object forms,
    in the order error messages name them (none: ids only). ``link_fields`` are the optional
    link fields beyond the generic ones, by their name in the input.
    """

    endpoint_objects: tuple[EndpointForm, ...] = ()
    link_fields: Mapping[str, LinkField] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = GENERIC_LINK_FIELDS & set(self.link_fields)
        if clash:
            raise ValueError(
                f"link fields {sorted(clash)} are generic; a shape cannot redeclare them"
            )


def union(*shapes: InputShape) -> InputShape:
    """A shape accepting what any of ``shapes`` does; one field declared with two types
    has no single meaning, and is refused."""
    forms: list[EndpointForm] = []
    fields: dict[str, LinkField] = {}
    for shape in shapes:
        forms.extend(form for form in shape.endpoint_objects if form not in forms)
        for name, spec in shape.link_fields.items():
            if fields.setdefault(name, spec) != spec:
                raise ValueError(f"link field '{name}' is declared as {fields[name]} and {spec}")
    return InputShape(tuple(forms), fields)
