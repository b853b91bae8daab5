"""What a target takes in an input line, declared by its spec so the reader knows no vendor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["int32", "string", "boolean"]


@dataclass(frozen=True, slots=True)
class InputShape:
    """The link and endpoint forms a target accepts (assets have one form for every target).

    A string endpoint (an id) is always accepted; ``endpoint_objects`` lists the key sets an
    object endpoint may have. ``link_fields`` are the optional fields of a link beyond
    ``from``, ``to``, ``type`` and ``attributes``, with their type.
    """

    endpoint_objects: tuple[frozenset[str], ...] = ()
    link_fields: dict[str, FieldType] = field(default_factory=dict)
