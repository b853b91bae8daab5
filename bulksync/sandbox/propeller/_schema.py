"""JSON-schema checks of Propeller link payloads, worded like the vendor's (everit) messages:
``#/links/0/type: accessories-dummy is not a valid enum value``.

Every problem of a payload is reported at once, each naming the item index, so a client can
split a failed batch without guessing which item was wrong.
"""

from __future__ import annotations

from typing import Any

LINK_TYPES = (
    "accessories",
    "accessoryfor",
    "related",
    "relatedfor",
    "alternatives",
    "options",
    "parts",
    "partfor",
    "account",  # subtype manage, user or contact -> company (docs: rest-sonar/links)
)
CLASSES = ("product", "category", "cluster", "customer", "contact", "company", "user")
LOOKUP_KEYS = ("id", "sourceId")
LINK_FIELDS = frozenset({"type", "subtype", "isDefault", "isActive", "from", "to", "priority"})
ENDPOINT_FIELDS = frozenset({"class", "id", "sourceId", "source", "language"})
SEARCH_FIELDS = frozenset({"page", "offset", "type", "from", "to", "isActive", "ids"})


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "JSONArray" if isinstance(value, list) else "JSONObject"


def _expect(errors: list[str], path: str, value: Any, expected: str) -> bool:
    found = json_type(value)
    if found != expected:
        errors.append(f"{path}: expected type: {expected}, found: {found}")
        return False
    return True


def check_bulk(
    data: Any, lookup_key: str, max_items: int, strict_fields: bool
) -> tuple[list[str], list[str]]:
    """Returns (schema errors → 10007, missing lookup keys → 10016)."""
    schema: list[str] = []
    lookups: list[str] = []
    if not _expect(schema, "#", data, "JSONObject"):
        return schema, lookups
    if strict_fields:
        schema.extend(f"#: extraneous key [{k}] is not permitted" for k in data if k != "links")
    if "links" not in data:
        schema.append("#: required key [links] not found")
        return schema, lookups
    links = data["links"]
    if not _expect(schema, "#/links", links, "JSONArray"):
        return schema, lookups
    if len(links) > max_items:
        schema.append(f"#/links: expected maximum item count: {max_items}, found: {len(links)}")
        return schema, lookups
    for index, item in enumerate(links):
        _check_link(schema, lookups, f"#/links/{index}", item, lookup_key, strict_fields)
    return schema, lookups


def _check_link(
    schema: list[str], lookups: list[str], path: str, item: Any, lookup_key: str, strict: bool
) -> None:
    if not _expect(schema, path, item, "JSONObject"):
        return
    for key in ("type", "subtype", "from", "to"):
        if key not in item:
            schema.append(f"{path}: required key [{key}] not found")
    if strict:
        schema.extend(
            f"{path}: extraneous key [{k}] is not permitted" for k in item if k not in LINK_FIELDS
        )
    if (
        "type" in item
        and _expect(schema, f"{path}/type", item["type"], "String")
        and item["type"] not in LINK_TYPES
    ):
        schema.append(f"{path}/type: {item['type']} is not a valid enum value")
    if "subtype" in item:
        _expect(schema, f"{path}/subtype", item["subtype"], "String")
    for key in ("isDefault", "isActive"):
        if key in item:
            _expect(schema, f"{path}/{key}", item[key], "Boolean")
    if "priority" in item:
        _expect(schema, f"{path}/priority", item["priority"], "Integer")
    for end in ("from", "to"):
        if end in item:
            _check_endpoint(schema, lookups, f"{path}/{end}", item[end], lookup_key, strict)


def _check_endpoint(
    schema: list[str], lookups: list[str], path: str, value: Any, lookup_key: str, strict: bool
) -> None:
    if not _expect(schema, path, value, "JSONObject"):
        return
    if strict:
        schema.extend(
            f"{path}: extraneous key [{k}] is not permitted"
            for k in value
            if k not in ENDPOINT_FIELDS
        )
    if "class" not in value:
        schema.append(f"{path}: required key [class] not found")
    elif (
        _expect(schema, f"{path}/class", value["class"], "String") and value["class"] not in CLASSES
    ):
        schema.append(f"{path}/class: {value['class']} is not a valid enum value")
    if lookup_key == "id":
        if "id" not in value:
            lookups.append(f"{path}: lookup key [id] not found in payload")
        else:
            _expect(schema, f"{path}/id", value["id"], "Integer")
    else:
        if "sourceId" not in value:
            lookups.append(f"{path}: lookup key [sourceId] not found in payload")
        else:
            _expect(schema, f"{path}/sourceId", value["sourceId"], "String")
        if "source" not in value:
            schema.append(f"{path}: required key [source] not found")
        else:
            _expect(schema, f"{path}/source", value["source"], "String")
    if "language" in value:
        _expect(schema, f"{path}/language", value["language"], "String")


def check_search(data: Any) -> list[str]:
    """Schema errors of a ``POST /links/search`` body (paging is checked separately: 10015)."""
    errors: list[str] = []
    if not _expect(errors, "#", data, "JSONObject"):
        return errors
    errors.extend(
        f"#: extraneous key [{k}] is not permitted" for k in data if k not in SEARCH_FIELDS
    )
    types = data.get("type")
    if types is not None:
        values = types if isinstance(types, list) else [types]
        for value in values:
            if value not in LINK_TYPES:
                errors.append(f"#/type: {value} is not a valid enum value")
    for end in ("from", "to"):
        value = data.get(end)
        if value is not None and _expect(errors, f"#/{end}", value, "JSONObject"):
            if "class" in value and value["class"] not in CLASSES:
                errors.append(f"#/{end}/class: {value['class']} is not a valid enum value")
            if "id" in value:
                _expect(errors, f"#/{end}/id", value["id"], "Integer")
    if "isActive" in data:
        _expect(errors, "#/isActive", data["isActive"], "Boolean")
    ids = data.get("ids")
    if ids is not None and _expect(errors, "#/ids", ids, "JSONArray"):
        for index, value in enumerate(ids):
            _expect(errors, f"#/ids/{index}", value, "Integer")
    return errors
