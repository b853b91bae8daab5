"""Quable v5 assets in two pipelined stages: upload the file, then create the asset.

Creating costs one call for a new asset; an asset that exists already answers 409 and is
updated with a PUT (two calls), cheaper over a migration than a GET before every create.
A create whose answer was lost is looked up with a GET before anything else, so a retry never
creates twice; a file uploaded once is reused by every retry of its create.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bulksync.spi import (
    AssetRecord,
    BaseStage,
    Client,
    Done,
    ErrorInfo,
    Failed,
    FilePart,
    HttpRequest,
    Job,
    Outcome,
    Removal,
    bad_response,
    json_object,
    json_or_empty,
    path_segment,
)

from ._errors import quable_error


class UploadStage(BaseStage):
    """`POST /api/files` (multipart `fileType`, `file`), the file streamed from disk."""

    name = "upload"

    def __init__(self, file_type: str = "asset") -> None:
        self._file_type = file_type

    def applies(self, job: Job) -> bool:
        record = job.record
        # A resumed item whose upload was kept with its intent reuses it: no orphan file.
        return isinstance(record, AssetRecord) and record.file is not None and job.file_id is None

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        record = job.record
        assert isinstance(record, AssetRecord) and record.file is not None
        path = record.file
        if not path.is_file():
            return [Failed(ErrorInfo("MissingFile", f"media file not found: {path}"))]
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        request = HttpRequest(
            "POST",
            "api/files",
            fields={"fileType": self._file_type},
            files=[FilePart("file", path, path.name, content_type)],
        )
        response = await client.send(request)
        what = f"upload of {path.name}"
        if not response.ok:
            raise quable_error(response, what, write=True)
        # Without the file's id the create cannot refer to it: upload again (a file uploaded
        # but never referred to is an orphan, not a duplicate asset).
        file_id = _field(json_object(response, what, write=True), "id")
        if file_id is None:
            raise bad_response(what, "no file id in its body", response.status, write=True)
        job.file_id = file_id
        return [Done()]


class CreateStage(BaseStage):
    """`POST /api/assets` with `file.id` or `remotePath`; `PUT` when the asset exists."""

    name = "create"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        record = job.record
        assert isinstance(record, AssetRecord)
        path = f"api/assets/{path_segment(record.id)}"
        body = asset_body(record, job.file_id)
        if job.exists:
            return [await self._update(client, path, body, record.id)]
        if job.maybe_applied:
            # The last create may have happened with its answer lost: look before creating.
            what = f"lookup of asset {record.id}"
            found = await client.send(HttpRequest("GET", path))
            if found.ok:
                # Only the asset itself is evidence it exists; a page that is not (a proxy's)
                # would send a PUT to an asset that may not be there.
                json_object(found, what, write=False)
                job.exists = True
                return [await self._update(client, path, body, record.id)]
            if found.status != 404:
                raise quable_error(found, what)
        what = f"create of asset {record.id}"
        response = await client.send(HttpRequest("POST", "api/assets", json=body))
        if response.status == 409:
            job.exists = True
            return [await self._update(client, path, body, record.id)]
        if not response.ok:
            raise quable_error(response, what, write=True)
        created = _field(json_object(response, what, write=True), "id") or record.id
        return [Done(remote_id=created, action="created")]

    async def _update(
        self, client: Client, path: str, body: dict[str, Any], asset_id: str
    ) -> Outcome:
        response = await client.send(HttpRequest("PUT", path, json=body))
        if response.status == 404:
            # Deleted behind our back: the state's "it exists" is stale, so create it again.
            response = await client.send(HttpRequest("POST", "api/assets", json=body))
            if not response.ok:
                raise quable_error(
                    response, f"create of asset {asset_id} (gone from the target)", write=True
                )
            json_object(response, f"create of asset {asset_id}", write=True)
            return Done(remote_id=asset_id, action="created")
        if not response.ok:
            raise quable_error(response, f"update of asset {asset_id}")
        # An upsert: repeating it is safe, and the stage needs nothing from its body.
        json_or_empty(response, f"update of asset {asset_id}", write=True)
        return Done(remote_id=asset_id, action="updated")


def asset_body(record: AssetRecord, file_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": record.id}
    if record.classification:
        body["classification"] = {"id": record.classification}
    if record.attributes:
        body["attributes"] = dict(record.attributes)
    if file_id is not None:
        body["file"] = {"id": file_id}
    elif record.remote_path:
        body["remotePath"] = record.remote_path
    return body


def _field(body: Any, name: str) -> str | None:
    value = body.get(name) if isinstance(body, dict) else None
    return None if value is None else str(value)


class DeleteStage(BaseStage):
    """`DELETE /api/assets/{id}` or `DELETE /api/links/{id}` (204); gone already is done."""

    name = "delete"

    def __init__(
        self,
        path: str,
        find: Callable[[Client, Removal], Awaitable[str | None]] | None = None,
    ) -> None:
        self._path = path
        self._find = find

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        record = jobs[0].record
        assert isinstance(record, Removal)
        ident = record.remote_id if "{remote_id}" in self._path else record.key
        if not ident and self._find is not None:
            # A create that answered no id: the item is found by what identifies it instead.
            ident = await self._find(client, record)
            if ident is None:
                return [Done(action="gone")]  # looked up: the target has none
        if not ident:
            return [Failed(ErrorInfo("NoRemoteId", "no remote id was recorded for this item"))]
        path = self._path.format(key=path_segment(record.key), remote_id=path_segment(ident))
        response = await client.send(HttpRequest("DELETE", path))
        if response.status == 404:
            return [Done(remote_id=ident, action="gone")]
        if not response.ok:
            raise quable_error(response, f"delete of {record.kind} {record.key}", write=True)
        return [Done(remote_id=ident, action="deleted")]
