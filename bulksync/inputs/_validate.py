"""Turn one decoded input object (a JSONL line or a CSV row) into a typed record.

Both readers funnel into ``build_record`` so that a field means the same thing, and fails with
the same words, whichever file format it came from.
What a link line may hold beyond the generic fields comes from the target's InputShape
(:mod:`._shape_rules`); nothing here knows a vendor.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bulksync.inputs._fields import (
    FieldError,
    attributes,
    optional_int,
    optional_str,
    required_id,
    required_str,
)
from bulksync.inputs._shape_rules import ShapeRules
from bulksync.spi._answers import type_name
from bulksync.spi._notes import note as _note
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Origin, link_key
from bulksync.spi._redact import redacted_excerpt

Item = AssetRecord | LinkRecord | BadRecord

# What a header field value cannot hold (RFC 9110 section 5.5): the controls but tab.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
    id_ = required_id(obj, "id")
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
        classification=optional_str(obj, "classification"),
        attributes=attributes(obj),
    )


def _link(obj: Mapping[str, Any], origin: Origin, rules: ShapeRules) -> LinkRecord:
    return LinkRecord(
        origin=origin,
        from_=rules.endpoint(obj, "from"),
        to=rules.endpoint(obj, "to"),
        type=required_id(obj, "type"),
        sequence=optional_int(obj, "sequence"),
        extra=rules.extra(obj),
        attributes=attributes(obj),
    )


MAX_WARNED_FIELDS = 20


class UnknownFields:
    """Fields no record has (a typo such as ``sequnce``): warned once per name, or with
    ``strict`` the line's failure reason."""

    def __init__(self, kind: Kind, strict: bool, rules: ShapeRules) -> None:
        self.known = rules.known[kind]
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


# Set by a second pass over an input (the displays' stage totals): its warnings were said once.
_quiet: ContextVar[bool] = ContextVar("bulksync_reader_quiet", default=False)


@contextmanager
def warnings_off() -> Iterator[None]:
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def note(message: str) -> None:
    """A one-line warning on stderr (bulksync.app.progress.note, without importing the engine)."""
    if not _quiet.get():
        _note(message)


def record_key(kind: Kind, obj: Mapping[str, Any], rules: ShapeRules) -> str | None:
    """The record's key if its identifying fields are readable, so a bad line is still named."""
    try:
        if kind == "asset":
            return required_str(obj, "id")
        from_, to = rules.endpoint(obj, "from"), rules.endpoint(obj, "to")
        return link_key(from_, to, required_str(obj, "type"))
    except FieldError:
        return None


def build_record(
    kind: Kind,
    obj: Mapping[str, Any],
    origin: Origin,
    root: MediaRoot,
    rules: ShapeRules,
    *,
    error: str | None = None,
) -> Item:
    """Validate ``obj``; ``error`` is a reason already found while decoding it (CSV cells)."""
    try:
        if error is not None:
            raise FieldError(error)
        if kind == "asset":
            return _asset(obj, origin, root)
        return _link(obj, origin, rules)
    except FieldError as exc:
        key = record_key(kind, obj, rules)
        return BadRecord(origin=origin, kind=kind, reason=str(exc), key=key)
