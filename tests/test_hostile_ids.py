"""Ids from the input (or from a server) can never change the path they are put in: each is
one percent-encoded segment, and "", "." and ".." are refused before any request. The exact
paths are checked on a tiny aiohttp server on 127.0.0.1 that records the raw request path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulksync.connectors.ocapi._delete import DeleteLinkStage
from bulksync.connectors.ocapi._links import CategoryLinkStage
from bulksync.connectors.quable._assets import CreateStage, DeleteStage
from bulksync.connectors.quable._v4links import group_path
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy
from bulksync.engine.transport import AiohttpTransport
from bulksync.inputs.readers import read_records
from bulksync.spi._connector import Done, Failed, Job, RequestFailed
from bulksync.spi._records import AssetRecord, BadRecord, LinkRecord, Origin, Removal
from bulksync.store.results import RunStats

HOSTILE = {
    "a/../b": "a%2F..%2Fb",
    "%2F": "%252F",
    "x?y=1": "x%3Fy=1",  # "=" may stand unencoded in a path segment (RFC 3986 sub-delims)
    "x#frag": "x%23frag",
    "été ünï": "%C3%A9t%C3%A9%20%C3%BCn%C3%AF",
    "../../admin": "..%2F..%2Fadmin",
}
DATA = "s/-/dw/data/v23_2"


@pytest.fixture
async def client() -> AsyncIterator[tuple[EngineClient, list[str]]]:
    paths: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        paths.append(f"{request.method} {request.raw_path}")
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"id": "x"}, status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    transport = AiohttpTransport()
    target = Target(str(server.make_url("")), transport, RateBudget([]), NoAuth())
    retry = RetryPolicy(max_attempts=1)
    try:
        yield EngineClient(target, RunStats(), retry), paths
    finally:
        await transport.aclose()
        await server.close()


@pytest.mark.parametrize(("raw", "encoded"), HOSTILE.items())
async def test_a_quable_asset_id_is_one_segment(
    client: tuple[EngineClient, list[str]], raw: str, encoded: str
) -> None:
    engine_client, paths = client
    job = Job(AssetRecord(Origin("assets.jsonl", 1), raw, remote_path="https://i.example.com/a"))
    job.exists = True
    await CreateStage().run([job], engine_client)
    removal = Removal(Origin("state", 0), "asset", raw)
    await DeleteStage("api/assets/{key}").run([Job(removal)], engine_client)
    assert paths == [f"PUT /api/assets/{encoded}", f"DELETE /api/assets/{encoded}"]


@pytest.mark.parametrize(("raw", "encoded"), HOSTILE.items())
async def test_ocapi_ids_and_v4_codes_are_one_segment_each(
    client: tuple[EngineClient, list[str]], raw: str, encoded: str
) -> None:
    engine_client, paths = client
    record = LinkRecord(
        Origin("links.jsonl", 1),
        {"catalog": raw, "category": raw},
        {"catalog": "c2", "category": raw},
        "other",
        1,
    )
    await CategoryLinkStage(DATA).run([Job(record)], engine_client)
    assert paths == [
        f"PUT /{DATA}/catalogs/{encoded}/categories/{encoded}/category_links/c2/{encoded}/other"
    ]
    # The v4 path before the wire: each code one fully encoded segment.
    one = quote(raw, safe="")
    assert group_path(raw, raw) == f"api_1.php/documents/{one}/links/{one}"


@pytest.mark.parametrize("unsafe", [".", ".."])
async def test_dot_ids_are_refused_with_no_request_and_never_reported_gone(
    client: tuple[EngineClient, list[str]], unsafe: str
) -> None:
    engine_client, paths = client
    removal = Removal(Origin("state", 0), "asset", unsafe)
    with pytest.raises(RequestFailed) as refused:
        await DeleteStage("api/assets/{key}").run([Job(removal)], engine_client)
    assert refused.value.error.type == "UnsafeId"
    job = Job(AssetRecord(Origin("assets.jsonl", 1), unsafe, remote_path="https://i.example.com/a"))
    with pytest.raises(RequestFailed):
        await CreateStage().run([job], engine_client)
    assert paths == []


async def test_an_ocapi_link_url_that_climbs_is_not_used_to_delete(
    client: tuple[EngineClient, list[str]],
) -> None:
    engine_client, paths = client
    key_ids = LinkRecord(
        Origin("x", 1),
        {"catalog": "c", "category": "k"},
        {"catalog": "t", "category": "u"},
        "other",
    ).key
    climbing = f"https://evil.example/{DATA}/../../../admin/category_links/x"
    removal = Removal(Origin("state", 0), "link", key_ids, climbing)
    outcomes = await DeleteLinkStage(DATA).run([Job(removal)], engine_client)
    # The server's URL is not followed: the path is built from the ids in the key instead.
    assert paths == [f"DELETE /{DATA}/catalogs/c/categories/k/category_links/t/u/other"]
    assert isinstance(outcomes[0], Done | Failed)


@pytest.mark.parametrize(
    ("kind", "row", "field"),
    [
        ("asset", {"id": "..", "remotePath": "https://i.example.com/a"}, "id"),
        ("asset", {"id": ".", "remotePath": "https://i.example.com/a"}, "id"),
        ("link", {"from": "..", "to": "b", "type": "ref"}, "from"),
        ("link", {"from": "a", "to": ".", "type": "ref"}, "to"),
        ("link", {"from": "a", "to": "b", "type": ".."}, "type"),
        (
            "link",
            {"from": {"catalog": "..", "category": "k"}, "to": "b", "type": "other"},
            "from.catalog",
        ),
    ],
)
def test_dot_ids_fail_their_line_at_read_time(
    tmp_path: Path, kind: Any, row: dict[str, Any], field: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps(row) + b"\n" + orjson.dumps({**row, "x": 1}) + b"\n")
    items = list(read_records(path, kind))
    assert len(items) == 2 and all(isinstance(item, BadRecord) for item in items)
    first = items[0]
    assert isinstance(first, BadRecord) and f"field '{field}'" in first.reason
    assert "change the request's path" in first.reason and first.origin.line == 1
