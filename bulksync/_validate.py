"""Turn one decoded input object (a JSONL line or a CSV row) into a typed record.

Both readers funnel into ``build_record`` so that a field means the same thing, and fails with
the same words, whichever file format it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .records import AssetRecord, BadRecord, Endpoint, Kind, LinkRecord, Origin, link_key

Item = AssetRecord | LinkRecord | BadRecord

# The key sets an endpoint object may have; anything else is most likely a typo, and guessing
# which platform shape was meant would only move the error to the target's answer.
_ENDPOINT_SHAPES: tuple[frozenset[str], ...] = (
    frozenset({"class", "id"}),
    frozenset({"class", "source", "sourceId"}),
    frozenset({"class", "source", "sourceId", "language"}),
    frozenset({"catalog", "category"}),
)
_SHAPES_TEXT = "{class, id}, {class, source, sourceId[, language]} or {catalog, category}"
# What a header field value cannot hold (RFC 9110 section 5.5): the controls but tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class FieldError(Exception):
    """One field of a record is missing or wrong; the message is the record's reason."""


def type_name(value: object) -> str:
    """The JSON name of a value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string" if value else "empty string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _required_str(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj:
        raise FieldError(f"missing field '{name}'")
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise FieldError(f"field '{name}' must be a non-empty string, got {type_name(value)}")
    return value


# Optional fields treat an explicit null like an absent field: exporters often write null
# for "no value", and refusing it would fail whole files for no benefit.
def _id(obj: Mapping[str, Any], name: str) -> str:
    """A required string that ends up as a URL path segment on some target: "." and ".."
    would be dropped or climbed by the URL, sending the request to another resource."""
    value = _required_str(obj, name)
    if value in (".", ".."):
        raise FieldError(f"field '{name}' cannot be '{value}': it would change the request's path")
    return value


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FieldError(f"field '{name}' must be a string, got {type_name(value)}")


def _optional_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise FieldError(f"field '{name}' must be an integer, got {type_name(value)}")


def _optional_bool(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise FieldError(f"field '{name}' must be a boolean, got {type_name(value)}")


def _attributes(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("attributes")
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise FieldError(f"field 'attributes' must be an object, got {type_name(value)}")


def _endpoint(obj: Mapping[str, Any], name: str) -> Endpoint:
    if name not in obj:
        raise FieldError(f"missing field '{name}'")
    value = obj[name]
    if isinstance(value, str) and value:
        return _id(obj, name)
    if not isinstance(value, dict):
        raise FieldError(
            f"field '{name}' must be a non-empty string or an object, got {type_name(value)}"
        )
    keys = frozenset(value)
    if keys not in _ENDPOINT_SHAPES:
        raise FieldError(
            f"field '{name}' must be an object with keys {_SHAPES_TEXT}, "
            f"got keys {{{', '.join(sorted(keys))}}}"
        )
    for key, item in value.items():
        if key == "id":
            if (isinstance(item, int) and not isinstance(item, bool)) or (
                isinstance(item, str) and item
            ):
                continue
            raise FieldError(
                f"field '{name}.id' must be an integer or a non-empty string, got {type_name(item)}"
            )
        if not isinstance(item, str) or not item:
            raise FieldError(
                f"field '{name}.{key}' must be a non-empty string, got {type_name(item)}"
            )
        if item in (".", ".."):
            raise FieldError(
                f"field '{name}.{key}' cannot be '{item}': it would change the request's path"
            )
    return dict(value)


class MediaRoot:
    """Resolves asset ``file`` values inside one root folder, refusing any that leave it.

    Resolution follows symlinks, so a link inside the root that points outside is caught.
    Folders are resolved once and cached, since a full ``realpath`` per asset costs one
    ``lstat`` per path component and dominates the reading of large asset files.
    """

    _MAX_CACHED = 4096  # distinct folders remembered; bounded to keep memory flat

    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        self._inside = self.root.rstrip(os.sep) + os.sep
        self._folders: dict[str, str] = {}

    def _realpath(self, value: str) -> str:
        joined = os.path.join(self.root, value)
        parts = value.replace(os.altsep, os.sep).split(os.sep) if os.altsep else value.split(os.sep)
        if os.pardir in parts:
            # ".." after a symlink climbs from the link's target, which a lexical
            # normalisation would get wrong: only the full resolution is right here.
            return os.path.realpath(joined)
        folder, name = os.path.split(os.path.normpath(joined))
        real_folder = self._folders.get(folder)
        if real_folder is None:
            if len(self._folders) >= self._MAX_CACHED:
                self._folders.clear()
            real_folder = self._folders[folder] = os.path.realpath(folder)
        real = os.path.join(real_folder, name)
        return os.path.realpath(real) if os.path.islink(real) else real

    def resolve(self, value: str) -> Path:
        try:
            real = self._realpath(value)
        except (OSError, ValueError) as exc:
            raise FieldError(f"file path '{value}' cannot be resolved: {exc}") from None
        if real != self.root and not real.startswith(self._inside):
            raise FieldError(f"file path '{value}' escapes the media root")
        return Path(real)


def _asset(obj: Mapping[str, Any], origin: Origin, root: MediaRoot) -> AssetRecord:
    id_ = _id(obj, "id")
    file = obj.get("file")
    remote = obj.get("remotePath")
    if file is not None and remote is not None:
        raise FieldError("fields 'file' and 'remotePath' are both set; give exactly one")
    if file is None and remote is None:
        raise FieldError("missing field 'file' or 'remotePath'")
    path: Path | None = None
    if file is not None:
        if not isinstance(file, str) or not file:
            raise FieldError(f"field 'file' must be a non-empty string, got {type_name(file)}")
        path = root.resolve(file)
        if _CONTROL.search(path.name):
            # The name goes into the upload's Content-Disposition, where RFC 7578 leaves a
            # line break no faithful form: refused here, before any request.
            raise FieldError(
                f"file name {path.name!r} contains a line break or another control "
                "character; it cannot be sent as an upload's file name"
            )
    if remote is not None:
        if not isinstance(remote, str) or not remote:
            raise FieldError(
                f"field 'remotePath' must be a non-empty string, got {type_name(remote)}"
            )
        if not remote.lower().startswith(("http://", "https://")):
            raise FieldError("field 'remotePath' must start with http:// or https://")
    return AssetRecord(
        origin=origin,
        id=id_,
        file=path,
        remote_path=remote,
        classification=_optional_str(obj, "classification"),
        attributes=_attributes(obj),
    )


def _link(obj: Mapping[str, Any], origin: Origin) -> LinkRecord:
    return LinkRecord(
        origin=origin,
        from_=_endpoint(obj, "from"),
        to=_endpoint(obj, "to"),
        type=_id(obj, "type"),
        sequence=_optional_int(obj, "sequence"),
        subtype=_optional_str(obj, "subtype"),
        priority=_optional_int(obj, "priority"),
        is_default=_optional_bool(obj, "isDefault"),
        is_active=_optional_bool(obj, "isActive"),
        attributes=_attributes(obj),
    )


def record_key(kind: Kind, obj: Mapping[str, Any]) -> str | None:
    """The record's key if its identifying fields are readable, so a bad line is still named."""
    try:
        if kind == "asset":
            return _required_str(obj, "id")
        return link_key(_endpoint(obj, "from"), _endpoint(obj, "to"), _required_str(obj, "type"))
    except FieldError:
        return None


def build_record(
    kind: Kind,
    obj: Mapping[str, Any],
    origin: Origin,
    root: MediaRoot,
    *,
    error: str | None = None,
) -> Item:
    """Validate ``obj``; ``error`` is a reason already found while decoding it (CSV cells)."""
    try:
        if error is not None:
            raise FieldError(error)
        if kind == "asset":
            return _asset(obj, origin, root)
        return _link(obj, origin)
    except FieldError as exc:
        return BadRecord(origin=origin, kind=kind, reason=str(exc), key=record_key(kind, obj))
