"""Quable v5 files and assets: ``POST /api/files`` and ``/api/assets[/{id}]``.

Shapes follow the vendor's asset cookbook (seed 001): the file object of ``POST /api/files``,
the JSON-LD asset with its inline ``@context``, ``metadata`` read from the uploaded bytes.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from aiohttp import hdrs, web
from aiohttp.multipart import BodyPartReader

from bulksync.sandbox._errors import Reply, json_response
from bulksync.sandbox._state import STATE
from bulksync.sandbox._store import now_iso
from bulksync.sandbox.quable._errors import ERRORS, quable_error
from bulksync.sandbox.quable._hydra import Violations, json_object, knobs, ld, page
from bulksync.sandbox.quable._imagemeta import exif_size, human_size, inspect
from bulksync.sandbox.quable._store import QuableStore

FILE_TYPES = ("asset", "import")
_ASSET_FIELDS = (
    "name",
    "isActive",
    "attributes",
    "metadata",
    "url",
    "originalFilename",
    "thumbnailUrl",
    "previewUrl",
    "classifications",
    "documentLinks",
    "variantLinks",
    "dateCreated",
    "dateModified",
    "thumbnails",
    "legacyId",
    "active",
)
_CLASSIFICATION_FIELDS = (
    "parentCode",
    "catalogId",
    "isActive",
    "attributes",
    "assetLinks",
    "mainAssetUrl",
    "mainAssetThumbnailUrl",
    "dateCreated",
    "dateModified",
    "createdBy",
    "updatedBy",
    "legacyId",
    "active",
)


@lru_cache(maxsize=8)
def _context(instance: str, output: str, fields: tuple[str, ...]) -> dict[str, str]:
    return {
        "@vocab": f"https://{instance}.quable.com/api/docs.jsonld#",
        "hydra": "http://www.w3.org/ns/hydra/core#",
        **{name: f"{output}/{name}" for name in fields},
    }


def classification_ref(instance: str, code: str) -> dict[str, Any]:
    return {
        "@context": _context(instance, "ClassificationOutput", _CLASSIFICATION_FIELDS),
        "@type": "Classification",
        "@id": f"/api/classifications/{code}",
        "catalogId": None,
        "id": code,
        "legacyId": zlib.crc32(code.encode()) % 100000,
    }


def render_asset(instance: str, asset: dict[str, Any]) -> dict[str, Any]:
    classification = asset["classification"]
    return {
        "@context": _context(instance, "AssetOutput", _ASSET_FIELDS),
        "@type": "Asset",
        "@id": f"/api/assets/{asset['id']}",
        "name": asset["name"],
        "active": asset["active"],
        "attributes": asset["attributes"] or [],
        "metadata": asset["metadata"],
        "url": asset["url"],
        "originalFilename": asset["originalFilename"],
        "thumbnailUrl": asset["thumbnailUrl"],
        "previewUrl": asset["previewUrl"],
        "classifications": [classification_ref(instance, classification)] if classification else [],
        "documentLinks": [],
        "variantLinks": [],
        "dateCreated": asset["dateCreated"],
        "dateModified": asset["dateModified"],
        "thumbnails": asset["thumbnails"],
        "id": asset["id"],
        "legacyId": asset["legacyId"],
    }


def render_file(instance: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": record["name"],
        "location": {"container": f"{instance}-dam", "filename": record["id"]},
        "metadatas": {"mime_type": record["mimeType"]},
        "id": record["id"],
        "type": record["type"],
        "status": record["status"],
        "dateModified": record["dateModified"],
        "dateCreated": record["dateCreated"],
    }


async def upload_file(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    mime = request.content_type.lower()
    if mime != "multipart/form-data":
        return quable_error(
            415,
            f'The content-type "{mime}" is not supported; send '
            "multipart/form-data with fileType and file.",
            "Unsupported Media Type",
        )
    file_type, upload = await _read_upload(request, settings.max_body_bytes)
    violations = Violations()
    if not isinstance(file_type, str) or not file_type:
        violations.add("fileType", "This value should not be blank.")
    elif file_type not in FILE_TYPES:
        violations.add("fileType", "The value you selected is not a valid choice.")
    if upload is None:
        violations.add("file", "This value should not be blank.")
    violations.check(request)
    assert upload is not None and isinstance(file_type, str)
    info = inspect(upload.head, upload.filename, upload.content_type)
    stamp = now_iso()
    file_id = str(uuid.uuid4())
    record: dict[str, Any] = {
        "id": file_id,
        "name": upload.filename,
        "type": file_type,
        "status": "available",
        "size": upload.size,
        "sha256": upload.sha256,
        "mimeType": info.mime_type,
        "fileType": info.file_type,
        "width": info.width,
        "height": info.height,
        "dateCreated": stamp,
        "dateModified": stamp,
    }
    state.store.of(QuableStore).files[file_id] = record
    state.stats.write("quable")
    return json_response(201, render_file(settings.instance, record))


# The file's first bytes are all the metadata needs (image headers); the rest is only hashed.
_HEAD_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class _Upload:
    filename: str
    content_type: str
    size: int
    sha256: str
    head: bytes


async def _read_upload(
    request: web.Request, limit: int
) -> tuple[str | bytes | None, _Upload | None]:
    """The form's ``fileType`` and ``file``, the file streamed through a hash, never held or
    spooled whole: a benchmark's multi-gigabyte upload measures the client, not this server.
    As ``request.post()`` reads them: the first part of each name; a part with a file name is a
    file, a text part a string, any other part bytes."""
    reader = await request.multipart()
    file_type: str | bytes | None = None
    upload: _Upload | None = None
    seen: set[str] = set()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("To decode nested multipart you need to use custom reader")
        if part.name is None:
            raise ValueError("Multipart field missing name.")
        first = part.name not in seen
        seen.add(part.name)
        if part.filename:
            if first and part.name == "file":
                upload = await _stream_file(part, part.filename, limit)
            else:
                await part.release()
            continue
        value = bytearray()
        while chunk := await part.read_chunk():
            value.extend(part.decode(chunk))
            if len(value) > limit:
                raise Reply(ERRORS.too_large(limit))
        content_type = part.headers.get(hdrs.CONTENT_TYPE)
        if first and part.name == "fileType":
            text = content_type is None or content_type.startswith("text/")
            file_type = value.decode(part.get_charset(default="utf-8")) if text else bytes(value)
    return file_type, upload


async def _stream_file(part: BodyPartReader, filename: str, limit: int) -> _Upload:
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    while chunk := await part.read_chunk(_CHUNK_BYTES):
        data = part.decode(chunk)
        size += len(data)
        if size > limit:
            raise Reply(ERRORS.too_large(limit))
        if len(head) < _HEAD_BYTES:
            head.extend(data[: _HEAD_BYTES - len(head)])
        digest.update(data)
    content_type = part.headers.get(hdrs.CONTENT_TYPE) or "application/octet-stream"
    return _Upload(filename, content_type, size, digest.hexdigest(), bytes(head))


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    size, name, mime = record["size"], record["name"], record["mimeType"]
    width, height = record["width"], record["height"]
    meta: dict[str, Any] = {"file_size": human_size(size)}
    extension = PurePosixPath(name).suffix.lstrip(".").lower()
    detail: dict[str, Any] = {
        "FileSize": exif_size(size),
        "FileType": record["fileType"] or extension.upper(),
        "FileTypeExtension": extension,
        "MIMEType": mime,
    }
    if width and height:
        meta["width"], meta["height"] = str(width), str(height)
        meta["orientation"] = (
            "portrait" if height > width else "landscape" if width > height else "square"
        )
        detail.update(
            {
                "ImageWidth": width,
                "ImageHeight": height,
                "ImageSize": f"{width}x{height}",
                "Megapixels": round(width * height / 1_000_000, 1),
            }
        )
    meta["file_name"] = name
    meta["mime_type"] = mime
    meta["detail"] = detail
    return meta


def _binary_fields(instance: str, asset_id: str, record: dict[str, Any]) -> dict[str, Any]:
    name = record["name"]
    base = f"https://cdn.quable.com/{instance}/{asset_id}"
    rendition = name.replace(".", "-") + ".jpg"
    preview, thumbnail = (
        f"{base}/system-preview/{rendition}",
        f"{base}/system-thumbnail/{rendition}",
    )
    return {
        "name": name,
        "originalFilename": name,
        "url": f"{base}/original/{name}",
        "thumbnailUrl": thumbnail,
        "previewUrl": preview,
        "metadata": _metadata(record),
        "thumbnails": {"preview": preview, "thumbnail": thumbnail},
        "file": record["id"],
        "remotePath": None,
    }


def _remote_fields(remote: str) -> dict[str, Any]:
    # A remote binary is not fetched: no metadata, as in the vendor's remotePath example.
    return {
        "name": "",
        "originalFilename": PurePosixPath(urlparse(remote).path).name,
        "url": remote,
        "thumbnailUrl": "",
        "previewUrl": "",
        "metadata": [],
        "thumbnails": {"preview": None},
        "file": None,
        "remotePath": remote,
    }


def _validate(
    request: web.Request, data: dict[str, Any], *, creating: bool
) -> tuple[dict[str, str] | None, str | None, dict[str, Any] | None]:
    """Check an asset body; returns (binary source, classification, attributes)."""
    settings = knobs(request)
    store = request.app[STATE].store.of(QuableStore)
    v = Violations()
    file_id = v.ref(data, "file", required=False)
    remote = v.string(data, "remotePath", required=False)
    # An asset is "a binary file" plus attribute values (seed 001): a create must name its
    # binary, and a null file or remotePath names none.
    if creating and data.get("file") is None and data.get("remotePath") is None:
        v.add("file", "Either file or remotePath must be provided.")
    if file_id is not None and remote is not None:
        v.add("remotePath", "Provide either file or remotePath, not both.")
    classification = v.ref(
        data, "classification", required=creating and settings.require_classification
    )
    attributes = v.attributes(data)
    v.string(data, "name", required=False)
    v.boolean(data, "active")
    v.check(request)
    status = settings.unknown_reference_status
    if file_id is not None and file_id not in store.files:
        raise Reply(quable_error(status, f'Item not found for "/api/files/{file_id}".'))
    if (
        classification
        and settings.classifications
        and classification not in settings.classifications
    ):
        raise Reply(
            quable_error(status, f'Item not found for "/api/classifications/{classification}".')
        )
    if file_id is not None:
        return {"file_id": file_id}, classification, attributes
    if remote is not None:
        return {"remote": remote}, classification, attributes
    return None, classification, attributes


def _apply_binary(
    instance: str,
    asset: dict[str, Any],
    binary: dict[str, str] | None,
    files: dict[str, dict[str, Any]],
) -> None:
    if binary is None:
        return
    if "file_id" in binary:
        asset.update(_binary_fields(instance, asset["id"], files[binary["file_id"]]))
    else:
        asset.update(_remote_fields(binary["remote"]))


async def create_asset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    data = await json_object(request)
    v = Violations()
    asset_id = v.string(data, "id", required=settings.require_asset_id)
    v.check(request)
    binary, classification, attributes = _validate(request, data, creating=True)
    store = state.store.of(QuableStore)
    asset_id = asset_id or str(uuid.uuid4())
    if asset_id in store.assets:
        state.stats.duplicate("asset")
        return quable_error(
            settings.duplicate_status,
            f'id: An asset with the identifier "{asset_id}" already exists.',
            "Conflict",
        )
    stamp = now_iso()
    asset: dict[str, Any] = {
        "id": asset_id,
        "active": data["active"] if isinstance(data.get("active"), bool) else True,
        "attributes": attributes or {},
        "classification": classification,
        "dateCreated": stamp,
        "dateModified": stamp,
        "legacyId": store.next_legacy_id(),
    }
    _apply_binary(settings.instance, asset, binary, store.files)
    if isinstance(data.get("name"), str):
        asset["name"] = data["name"]
    store.assets[asset_id] = asset
    state.stats.write("quable")
    return ld(201, render_asset(settings.instance, asset))


def _asset_or_404(request: web.Request) -> dict[str, Any]:
    asset_id = request.match_info["id"]
    asset = request.app[STATE].store.of(QuableStore).assets.get(asset_id)
    if asset is None:
        raise Reply(quable_error(404, f'Asset "{asset_id}" not found.', "Not Found"))
    return asset


async def get_asset(request: web.Request) -> web.Response:
    return ld(200, render_asset(knobs(request).instance, _asset_or_404(request)))


async def update_asset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = knobs(request)
    asset = _asset_or_404(request)
    data = await json_object(request)
    if "id" in data and data["id"] != asset["id"]:
        v = Violations()
        v.add("id", "The identifier cannot be changed.")
        v.check(request)
    binary, classification, attributes = _validate(request, data, creating=False)
    _apply_binary(settings.instance, asset, binary, state.store.of(QuableStore).files)
    if attributes:
        asset["attributes"] = {**asset["attributes"], **attributes}
    if classification is not None:
        asset["classification"] = classification
    if isinstance(data.get("name"), str):
        asset["name"] = data["name"]
    if isinstance(data.get("active"), bool):
        asset["active"] = data["active"]
    asset["dateModified"] = now_iso()
    state.stats.write("quable")
    return ld(200, render_asset(settings.instance, asset))


async def delete_asset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    asset = _asset_or_404(request)
    store = state.store.of(QuableStore)
    del store.assets[asset["id"]]
    store.remove_links_touching(asset["id"])
    state.stats.write("quable")
    return web.Response(status=204)


async def list_assets(request: web.Request) -> web.Response:
    instance = knobs(request).instance
    assets = list(request.app[STATE].store.of(QuableStore).assets.values())
    return page(
        request,
        assets,
        lambda a: render_asset(instance, a),
        context="Asset",
        orderable=("id", "dateCreated", "dateModified"),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/files", upload_file)
    app.router.add_post("/api/assets", create_asset)
    app.router.add_get("/api/assets", list_assets)
    app.router.add_get("/api/assets/{id}", get_asset)
    app.router.add_put("/api/assets/{id}", update_asset)
    app.router.add_delete("/api/assets/{id}", delete_asset)
