"""The fault proxy itself: it forwards, and misbehaves only as told, on writes only."""

from __future__ import annotations

import aiohttp
import anyio
import pytest
from bulksync_notes.sandbox import running_notes

from bulksync.testing import Faults, fault_proxy

AUTH = {"Authorization": "Bearer notes-token"}
PIN = {"board": "b", "note": "n", "label": "l", "position": 1}


async def test_a_write_is_forwarded_and_its_answer_dropped_or_replaced() -> None:
    opening = ("drop_after_write", "error_after_write", "html_after_write")
    with anyio.fail_after(30):
        async with (
            running_notes() as notes,
            fault_proxy(notes.url, Faults(opening=opening)) as proxy,
            aiohttp.ClientSession(proxy.url, headers=AUTH) as http,
        ):
            with pytest.raises(aiohttp.ClientError):
                async with http.post("/v1/pins", json=PIN) as response:
                    await response.read()
            async with http.post("/v1/pins", json=PIN) as response:
                assert response.status == 500
            async with http.post("/v1/pins", json=PIN) as response:
                assert response.status == 200 and response.content_type == "text/html"
            async with http.post("/v1/pins", json=PIN) as response:
                assert response.status == 201  # the opening is spent; no rates set
            async with http.get("/v1/pins", params={"limit": "10"}) as response:
                assert response.status == 200
                assert len((await response.json())["items"]) == 4  # each write landed
    assert proxy.stats.total_writes() == 4 and proxy.stats.total_forwarded() == 4
    assert dict(proxy.stats.faults) == {name: 1 for name in opening}


async def test_a_refusal_is_never_forwarded_and_spared_paths_pass() -> None:
    faults = Faults(refuse_status=429, retry_after="3", spare=("/v1/spared",))
    with anyio.fail_after(30):
        async with (
            running_notes() as notes,
            fault_proxy(notes.url, faults) as proxy,
            aiohttp.ClientSession(proxy.url, headers=AUTH) as http,
        ):
            async with http.post("/v1/pins", json=PIN) as response:
                assert response.status == 429 and response.headers["Retry-After"] == "3"
            async with http.post("/v1/spared") as response:
                assert response.status == 404  # forwarded: the sandbox has no such route
        assert notes.state.pins == {}
    assert proxy.stats.total_writes() == 1 and proxy.stats.total_forwarded() == 0
