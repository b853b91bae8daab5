"""Uploads send the file that was checked, whole and unchanged, or nothing: a file swapped for
a symbolic link after the media-root check is not opened, and one rewritten while it streams
is never taken as uploaded. Against a tiny aiohttp server on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest
from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer

from bulksync.connectors.quable._assets import UploadStage
from bulksync.engine._media import open_media
from bulksync.engine._stages import StageCounters, StagePool
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy
from bulksync.engine.transport import AiohttpTransport
from bulksync.spi._connector import Failed, Job, Skipped
from bulksync.spi._errors import LocalFileError
from bulksync.spi._http import FilePart, HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, Origin
from bulksync.store.results import RunStats


class Uploads:
    def __init__(self) -> None:
        self.received: list[int] = []  # bytes of each upload the server got whole
        self.halfway = anyio.Event()
        self.resume = anyio.Event()
        self.pause_after = 0  # bytes after which the server waits for `resume`; 0: never


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Uploads]]:
    uploads = Uploads()

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        size = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                pause = uploads.pause_after and size >= uploads.pause_after
                if pause and not uploads.halfway.is_set():
                    uploads.halfway.set()
                    await uploads.resume.wait()
        uploads.received.append(size)
        return web.json_response({"id": f"file-{len(uploads.received)}"}, status=201)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/files", upload)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("")), uploads
    finally:
        await test_server.close()


def rewrite_in_place(path: Path) -> None:
    """The same file, same size, new bytes: what an export job writing over it does."""
    with open(path, "r+b") as rewrite:
        rewrite.write(b"Y" * 4096)
        rewrite.seek(-4096, os.SEEK_END)
        rewrite.write(b"Z" * 4096)


def upload_request(url: str, path: Path) -> HttpRequest:
    return HttpRequest("POST", f"{url}/api/files", files=[FilePart("file", path, path.name)])


def media(tmp_path: Path, size: int = 1000) -> Path:
    (tmp_path / "media").mkdir(exist_ok=True)
    path = (tmp_path / "media" / "a.png").resolve()
    path.write_bytes(b"\x89PNG" + b"x" * (size - 4))
    return path


async def test_an_unchanged_file_is_sent_whole(tmp_path: Path, server: tuple[str, Uploads]) -> None:
    url, uploads = server
    path = media(tmp_path)
    transport = AiohttpTransport()
    try:
        response = await transport.send(upload_request(url, path))
    finally:
        await transport.aclose()
    assert response.status == 201 and uploads.received == [1000]


async def test_a_file_swapped_for_a_symlink_after_its_check_is_not_sent(
    tmp_path: Path, server: tuple[str, Uploads]
) -> None:
    url, uploads = server
    path = media(tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the PIM")
    path.unlink()
    path.symlink_to(outside)  # between the read-time check and the upload
    transport = AiohttpTransport()
    try:
        with pytest.raises(LocalFileError, match="symbolic link") as refused:
            await transport.send(upload_request(url, path))
    finally:
        await transport.aclose()
    assert not refused.value.retryable
    assert uploads.received == []


async def test_a_folder_swapped_for_a_symlink_is_caught_by_the_opened_descriptor(
    tmp_path: Path, server: tuple[str, Uploads]
) -> None:
    _, uploads = server
    (tmp_path / "media" / "sub").mkdir(parents=True)
    checked = (tmp_path / "media" / "sub" / "a.png").resolve()
    checked.write_bytes(b"checked")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.png").write_bytes(b"other bytes")
    os.rename(tmp_path / "media" / "sub", tmp_path / "old-sub")
    (tmp_path / "media" / "sub").symlink_to(elsewhere)
    with pytest.raises(LocalFileError, match="not the file that was checked"):
        open_media(checked)
    assert uploads.received == []


async def test_a_file_rewritten_while_it_streams_is_not_taken_as_uploaded(
    tmp_path: Path, server: tuple[str, Uploads]
) -> None:
    url, uploads = server
    path = media(tmp_path, size=8 * 1024 * 1024)
    uploads.pause_after = 1024 * 1024
    transport = AiohttpTransport(timeout_s=30)
    failure: list[BaseException] = []

    async def send() -> None:
        try:
            await transport.send(upload_request(url, path))
        except LocalFileError as exc:
            failure.append(exc)

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(send)
                await uploads.halfway.wait()
                rewrite_in_place(path)
                uploads.resume.set()
    finally:
        await transport.aclose()
    assert len(failure) == 1 and isinstance(failure[0], LocalFileError)
    assert failure[0].retryable and "changed while it was uploaded" in str(failure[0])


class RefusingTransport:
    """Every send fails as a file problem would, before anything reaches a server."""

    def __init__(self, retryable: bool) -> None:
        self.retryable = retryable
        self.calls = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        raise LocalFileError(
            "media/a.png changed while it was uploaded",
            retryable=self.retryable,
            sent=self.retryable,  # a change is found after the upload, a swap before it
        )

    async def aclose(self) -> None:
        return None


class EndedJobs:
    """The engine's side of a stage pool, keeping how each job ended."""

    def __init__(self) -> None:
        self.ended: list[Failed | Skipped] = []

    def succeed(self, job: Job) -> None:
        raise AssertionError("a refused upload must never succeed")

    def end(self, job: Job, outcome: Failed | Skipped, step: str) -> None:
        self.ended.append(outcome)

    async def intend(self, jobs: Sequence[Job]) -> None:
        return None


@pytest.mark.parametrize(("retryable", "sends"), [(True, 3), (False, 1)])
async def test_the_stage_pool_retries_a_changed_file_and_fails_an_unsafe_one(
    tmp_path: Path, retryable: bool, sends: int
) -> None:
    transport = RefusingTransport(retryable)
    retry = RetryPolicy(max_attempts=3, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)
    stats = RunStats()
    target = Target("http://127.0.0.1:9", transport, RateBudget([]), NoAuth())
    sink = EndedJobs()
    counters = StageCounters("asset", "upload")
    pool = StagePool(
        UploadStage(), counters, EngineClient(target, stats, retry), retry, stats, sink, 0.0
    )
    await pool.process(
        [Job(AssetRecord(Origin("assets.jsonl", 1), "a", file=media(tmp_path)))], None
    )
    assert transport.calls == sends
    # A file refused before the request went out is no request; one that changed under it is.
    assert stats.requests == (sends if retryable else 0)
    [outcome] = sink.ended
    assert isinstance(outcome, Failed) and outcome.error.type == "LocalFile"
    assert "changed while it was uploaded" in outcome.error.message
