"""The OCAPI request as the category-link routes see it (from the wire or a batch part), and
its checks: query parameters, the CategoryLink request document, the resource state token.

Each check raises :class:`Fault`, which the dispatcher turns into the documented fault document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulksync.sandbox._http import parse_json
from bulksync.sandbox.ocapi._errors import OCAPI_VERSION, ocapi_fault_body
from bulksync.sandbox.ocapi._select import Selector, parse

_WRITABLE = frozenset({"position", "_resource_state", "_v"})
_READ_ONLY = frozenset(
    {
        "_type",
        "last_modified",
        "link",
        "source_catalog_id",
        "source_catalog_name",
        "source_category_id",
        "source_category_name",
        "target_catalog_id",
        "target_catalog_name",
        "target_category_id",
        "target_category_name",
        "type",
    }
)
_PATH_FIELDS = (
    "source_catalog_id",
    "source_category_id",
    "target_catalog_id",
    "target_category_id",
    "type",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One OCAPI request, from the wire or from a batch part."""

    method: str
    path: str  # full path, starting with /s/-/dw/data/v23_2
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str
    content_type: str | None = None  # checked only for direct requests, batch parts have none


@dataclass(slots=True)
class Result:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class Fault(Exception):
    """Raised inside the OCAPI routes; becomes the fault document of ``result``."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        arguments: Mapping[str, Any],
        typed: bool = False,
    ) -> None:
        super().__init__(message)
        self.result = Result(status, ocapi_fault_body(type_, message, arguments, typed=typed))


def resource_state(key: tuple[str, ...], record: dict[str, Any]) -> str:
    material = "|".join((*key, repr(record["position"]), record["last_modified"]))
    return hashlib.sha256(material.encode()).hexdigest()


def selector(call: Call) -> Selector:
    text = call.query.get("select")
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise Fault(
            400,
            "MalformedSelectorException",
            f"The syntax of the specified selector '{text}' is malformed: {exc}.",
            {"selector": text},
        ) from exc


def int_param(call: Call, name: str, default: int, maximum: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise Fault(
            400,
            "MalformedParameterException",
            f"The value '{raw}' of parameter '{name}' is malformed.",
            {"parameter": name, "value": raw},
        ) from exc
    if not 0 <= value <= maximum:
        raise Fault(
            400,
            "ValueConstraintViolationException",
            f"The value '{value}' of parameter '{name}' must be between 0 and {maximum}.",
            {"parameter": name, "expected": f"0..{maximum}"},
        )
    return value


def document(call: Call, key: tuple[str, ...]) -> dict[str, Any]:
    """The CategoryLink request document, checked property by property."""
    if call.content_type is not None and call.body and call.content_type != "application/json":
        raise Fault(
            415,
            "UnsupportedContentTypeException",
            f"Unsupported media type '{call.content_type}' in Content-Type header. "
            "Only 'application/json' is supported by the sandbox.",
            {"contentType": call.content_type},
        )
    if not call.body.strip():
        return {}
    try:
        doc = parse_json(call.body)
    except ValueError as exc:
        raise Fault(
            400,
            "BodyDecodingException",
            "The request document (body) couldn't be decoded.",
            {"body": call.body[:200].decode("utf-8", "replace")},
        ) from exc
    if not isinstance(doc, dict):
        raise Fault(
            400,
            "BodyDecodingException",
            "The request document must be an object.",
            {"body": call.body[:200].decode("utf-8", "replace")},
        )
    for name, value in doc.items():
        if name not in _WRITABLE and name not in _READ_ONLY:
            raise Fault(
                400,
                "UnknownPropertyException",
                f"The property '{name}' is unknown in document 'category_link'.",
                {"property": name, "document": "category_link"},
            )
        if name in _PATH_FIELDS and value != key[_PATH_FIELDS.index(name)]:
            raise Fault(
                400,
                "PropertyConstraintViolationException",
                f"The value of property '{name}' does not match the resource path.",
                {"document": "category_link", "path": name},
            )
    if "_v" in doc and doc["_v"] != OCAPI_VERSION:
        raise Fault(
            400,
            "UnexpectedVersionException",
            f"The version '{doc['_v']}' of the request document is invalid. It has to be "
            f"the URL version '{OCAPI_VERSION}'.",
            {"version": str(doc["_v"])},
        )
    position = doc.get("position")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int | float)
    ):
        raise Fault(
            400,
            "TypeDecodingException",
            "The type of property 'position' is invalid: Double expected.",
            {"path": "position", "expectedTypes": "Double", "actualType": type(position).__name__},
        )
    if position is not None and position < 0:
        # The CategoryLink document: position "minNumberValue=0.0". The fault's name is not in
        # the docs; it is the one OCAPI gives other value constraints.
        raise Fault(
            400,
            "ValueConstraintViolationException",
            f"The value '{float(position)}' of property 'position' must be at least 0.0.",
            {"property": "position", "document": "category_link", "minimum": 0.0},
        )
    return doc


def check_state(
    call: Call, doc: Mapping[str, Any], key: tuple[str, ...], record: dict[str, Any]
) -> None:
    client = doc.get("_resource_state") or call.headers.get("x-dw-resource-state")
    if client is None:
        return
    server = resource_state(key, record)
    if client != server:
        raise Fault(
            409,
            "ResourceStateConflictException",
            "The resource state token sent with the request doesn't match the object's "
            "state on the server side.",
            {"client": str(client), "server": server},
        )
