"""Turn one decoded input object (a JSONL line or a CSV row) into a typed record.

Both readers funnel into ``build_record`` so that a field means the same thing, and fails with
the same words, whichever file format it came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bulksync.spi._answers import type_name
from bulksync.spi._records import (
    AssetRecord,
    BadRecord,
    Endpoint,
    Kind,
    LinkRecord,
    Origin,
    link_key,
)
from bulksync.spi._redact import redact, redacted_excerpt

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
# `sequence` and `priority` go to targets as a GraphQL Int (Propeller) or a database integer
# column (Quable): signed 32 bits is what all of them take. Numeric endpoint ids are identities
# only, so they get the 64 bits every JSON library and the state's hash can carry.
INT32 = (-(2**31), 2**31 - 1)
# Ids go into URL paths and the state: no target takes an id of thousands of characters.
MAX_ID_CHARS = 1000
INT64 = (-(2**63), 2**63 - 1)
KNOWN_FIELDS: dict[Kind, frozenset[str]] = {
    "asset": frozenset({"id", "file", "remotePath", "classification", "attributes"}),
    "link": frozenset(
        {"from", "to", "type", "sequence", "subtype", "priority", "isDefault", "isActive"}
        | {"attributes"}
    ),
}
# What a header field value cannot hold (RFC 9110 section 5.5): the controls but tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class FieldError(Exception):
    """One field of a record is missing or wrong; the message is the record's reason."""


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
    if len(value) > MAX_ID_CHARS:
        raise FieldError(f"field '{name}' is {len(value)} characters, over {MAX_ID_CHARS}")
    if "\x00" in value:
        # Servers written in C, and most databases, cut a text at a NUL: the target would
        # store another id than the one sent, or refuse it only after the request.
        raise FieldError(f"field '{name}' contains a NUL byte")
    return value


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FieldError(f"field '{name}' must be a string, got {type_name(value)}")


def _optional_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT32[0] <= value <= INT32[1]:
            check_int_range(name, value, INT32)
        return value
    if isinstance(value, float) and abs(value) > INT64[1]:
        # The JSON parser turns an integer too big for 64 bits into a float.
        raise FieldError(f"field '{name}' is out of range: {INT32[0]} to {INT32[1]}")
    raise FieldError(f"field '{name}' must be an integer, got {type_name(value)}")


def check_int_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    """Integers must fit what every target stores (a GraphQL Int is signed 32-bit)."""
    low, high = bounds
    if not low <= value <= high:
        raise FieldError(f"field '{name}' is out of range: {low} to {high}, got {value}")


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
            if isinstance(item, int) and not isinstance(item, bool):
                check_int_range(f"{name}.id", item, INT64)
                continue
            if isinstance(item, str) and item:
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
        if "\x00" in item:
            raise FieldError(f"field '{name}.{key}' contains a NUL byte")
        if len(item) > MAX_ID_CHARS:
            raise FieldError(f"field '{name}.{key}' is {len(item)} characters, over {MAX_ID_CHARS}")
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


def _check_remote_host(url: str) -> None:
    """The target fetches a remotePath itself: a URL to its own loopback, to a link-local
    address (cloud metadata at 169.254.169.254) or with credentials in it is refused."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise FieldError(f"field 'remotePath' is not a valid URL: {exc}") from None
    if not host:
        raise FieldError("field 'remotePath' has no host")
    if parts.username is not None or parts.password is not None:
        raise FieldError("field 'remotePath' must not carry a user name or password")
    if _CONTROL.search(url):
        raise FieldError("field 'remotePath' contains a line break or a control character")
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        raise FieldError(f"field 'remotePath' points at the target's own host ({host})")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return  # a host name: what it resolves to is the target's business
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        raise FieldError(
            f"field 'remotePath' points at a loopback, link-local or unspecified address "
            f"({host}): the target would fetch from itself"
        )
    if address.is_multicast or address.is_reserved:
        raise FieldError(f"field 'remotePath' points at a reserved address ({host})")


def _check_media_file(value: str, path: Path) -> None:
    """What can be told from one stat: a folder, a link loop or an empty file is never media.

    A missing file is left to the upload, which says so for the one item (it may be copied in
    by the time the run reaches it).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FieldError(f"file path '{value}' cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise FieldError(f"file path '{value}' is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise FieldError(f"file path '{value}' is not a regular file")
    if info.st_size == 0:
        raise FieldError(f"file '{value}' is empty (0 bytes): there is nothing to upload")


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
        if "\x00" in file:
            # No file system takes it, and os.stat raises ValueError (not OSError) on it.
            raise FieldError(f"file path {file!r} contains a NUL byte")
        path = root.resolve(file)
        _check_media_file(file, path)
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
        _check_remote_host(remote)
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


MAX_WARNED_FIELDS = 20


class UnknownFields:
    """Fields no record has (a typo such as ``sequnce``): warned once per name, or with
    ``strict`` the line's failure reason."""

    def __init__(self, kind: Kind, strict: bool) -> None:
        self.known = KNOWN_FIELDS[kind]
        self.strict = strict
        self._warned: set[str] = set()

    def check(self, names: Iterable[str], origin: Origin) -> str | None:
        unknown = [name for name in names if name not in self.known]
        if not unknown:
            return None
        if self.strict:
            return "; ".join(f"unknown field {describe_unknown(n, self.known)}" for n in unknown)
        for name in unknown:
            if name in self._warned or len(self._warned) > MAX_WARNED_FIELDS:
                continue
            self._warned.add(name)
            if len(self._warned) > MAX_WARNED_FIELDS:
                # A file with a new key on every line would print one warning per line and
                # hold every name in memory.
                note(
                    f"bulksync: warning: {origin}: more than {MAX_WARNED_FIELDS} unknown field "
                    "names; no more are reported (--strict-fields fails such lines)"
                )
                continue
            what = describe_unknown(name, self.known)
            note(
                f"bulksync: warning: {origin}: unknown field {what}"
                " is ignored (reported once per name; --strict-fields fails such lines)"
            )
        return None


def describe_unknown(name: str, known: Iterable[str]) -> str:
    """``'sequnce' (did you mean 'sequence'?)``, for a field or a CSV column."""
    text = repr(name) if len(name) <= 80 else repr(name[:80] + "...")
    close = difflib.get_close_matches(name, list(known), n=1) or difflib.get_close_matches(
        name.lower(), [k.lower() for k in known], n=1
    )
    if close:
        match = next((k for k in known if k.lower() == close[0].lower()), close[0])
        return f"{text} (did you mean '{match}'?)"
    return text


def internal_error(origin: Origin, kind: Kind, exc: Exception) -> BadRecord:
    """A bug met while reading one line (not a mistake in it): that line's failure."""
    what = redacted_excerpt(f"{type(exc).__name__}: {exc}", 500)
    return BadRecord(origin, kind, what, error_type="InternalError")


def note(message: str) -> None:
    """A one-line warning on stderr (bulksync.app.progress.note, without importing the engine)."""
    print(redact(message), file=sys.stderr, flush=True)


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
