"""Seeded fault injection and latency: same seed and requests, same faults."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sandbox_helpers import QUABLE, call, small_settings

from bulksync.sandbox import FaultSettings, LatencySettings, QuableSettings, running_sandbox
from bulksync.sandbox._faults import FaultInjector


async def outcomes(faults: FaultSettings, count: int = 40) -> tuple[list[str], list[tuple]]:
    settings = small_settings(faults=faults)
    async with running_sandbox(settings) as sandbox:
        seen: list[str] = []
        timeout = aiohttp.ClientTimeout(total=5)
        for i in range(count):
            # a fresh session per request: a closed connection must not shift the next one
            async with aiohttp.ClientSession(sandbox.url, timeout=timeout) as http:
                try:
                    if i % 3:
                        status = (
                            await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE)
                        )[0]
                    else:
                        status = (
                            await call(
                                http,
                                "POST",
                                "/api/assets",
                                headers=QUABLE,
                                json={"id": f"a{i}", "remotePath": "https://x/y"},
                            )
                        )[0]
                    seen.append(str(status))
                except aiohttp.ClientError as exc:
                    seen.append(type(exc).__name__)
        return seen, list(sandbox.state.stats.fault_log)


MIXED = FaultSettings(seed=7, error_rate=0.2, disconnect_rate=0.1, drop_after_write_rate=0.2)


async def test_same_seed_same_faults():
    first, log_one = await outcomes(MIXED)
    second, log_two = await outcomes(MIXED)
    assert first == second and log_one == log_two
    kinds = {entry[2] for entry in log_one}
    assert {"error", "disconnect"} <= kinds
    assert {s for s in first if s.isdigit()} - {"200", "201"} <= {"500", "502", "503"}
    other, _ = await outcomes(
        FaultSettings(seed=8, error_rate=0.2, disconnect_rate=0.1, drop_after_write_rate=0.2)
    )
    assert other != first


def test_injector_decisions_depend_only_on_seed_and_rank():
    settings = FaultSettings(seed=3, error_rate=0.3, slow_rate=0.3)
    one, two = FaultInjector(settings), FaultInjector(settings)
    a = [one.decide(is_write=bool(i % 2)) for i in range(200)]
    b = [two.decide(is_write=bool(i % 2)) for i in range(200)]
    assert a == b
    assert 30 < sum(d.fault == "error" for d in a) < 90
    assert all(0.0 <= d.jitter < 1.0 for d in a)
    two.reset()
    assert two.decide(is_write=False) == a[0]


async def test_error_faults_use_each_apis_shape_and_write_nothing():
    settings = small_settings(faults=FaultSettings(error_rate=1.0, error_statuses=(503,)))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        status, body, headers = await call(
            http,
            "POST",
            "/api/assets",
            headers=QUABLE,
            json={"id": "a", "remotePath": "https://x/y"},
        )
        assert status == 503 and body["@type"] == "hydra:Error" and "Quable-Digest" in headers
        status, body, _ = await call(http, "POST", "/oauth2/token", data={})
        assert status == 503 and "fault" in body
        status, body, _ = await call(http, "GET", "/s/-/dw/data/v23_2/catalogs/x")
        assert status == 503 and body["_v"] == "23.2"
        assert sandbox.state.store.quable.assets == {}
        assert sandbox.state.stats.faults["error"] == 3


async def test_faults_can_target_one_api():
    faults = FaultSettings(error_rate=1.0, apis=("propeller",))
    async with (
        running_sandbox(small_settings(faults=faults)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 200
        assert (await call(http, "GET", "/v2/links/1"))[0] in (500, 502, 503)


async def test_disconnect_closes_without_an_answer_and_writes_nothing():
    settings = small_settings(faults=FaultSettings(disconnect_rate=1.0))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        with pytest.raises(aiohttp.ClientError):
            await call(
                http,
                "POST",
                "/api/assets",
                headers=QUABLE,
                json={"id": "a", "remotePath": "https://x/y"},
            )
        assert sandbox.state.store.quable.assets == {}
        assert sandbox.state.stats.requests["POST /api/assets"]["disconnect"] == 1


async def test_drop_after_write_is_the_duplicate_trap():
    settings = small_settings(faults=FaultSettings(drop_after_write_rate=1.0))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        payload = {"id": "trap", "remotePath": "https://x/y"}
        with pytest.raises(aiohttp.ClientError):
            await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
        # the write happened although no answer came back; reads are never dropped
        assert (await call(http, "GET", "/api/assets/trap", headers=QUABLE))[0] == 200
        with pytest.raises(aiohttp.ClientError):  # a blind retry hits the existing asset
            await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
        stats = sandbox.state.stats
        assert stats.duplicates["asset"] == 1
        assert stats.requests["POST /api/assets"] == {"dropped:201": 1, "dropped:409": 1}


async def test_slow_response_still_applies_the_write():
    # Wide margins: on a loaded machine the request itself may take a while to arrive.
    faults = FaultSettings(slow_rate=1.0, slow_seconds=3.0, apis=("quable",))
    async with (
        running_sandbox(small_settings(faults=faults)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        with pytest.raises(asyncio.TimeoutError):
            await call(
                http,
                "POST",
                "/api/assets",
                headers=QUABLE,
                json={"id": "slow", "remotePath": "https://x/y"},
                timeout=aiohttp.ClientTimeout(total=1.0),
            )
        for _ in range(100):
            if "slow" in sandbox.state.store.quable.assets:
                break
            await asyncio.sleep(0.05)
        assert "slow" in sandbox.state.store.quable.assets
        assert sandbox.state.stats.faults["slow"] == 1


async def test_fixed_latency_delays_every_answer(monkeypatch: pytest.MonkeyPatch):
    # The delay the sandbox asks for is recorded rather than timed: no wall-clock assertion.
    from bulksync.sandbox import _middleware

    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(_middleware.asyncio, "sleep", recording_sleep)
    knobs = QuableSettings(seed_documents=1, latency=LatencySettings(fixed_ms=200.0))
    async with (
        running_sandbox(small_settings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 200
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 200
    assert [delay for delay in asked if delay > 0] == [0.2, 0.2]


def one_connection(url: str) -> aiohttp.ClientSession:
    """A client that reuses its one connection and, unlike aiohttp's default, does not
    silently send a request again when that connection turns out dropped."""
    session = aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=5)
    )
    session._retry_connection = False
    return session


async def test_close_after_response_drops_the_next_request_on_that_connection():
    settings = small_settings(faults=FaultSettings(close_after_response_rate=1.0))
    async with running_sandbox(settings) as sandbox, one_connection(sandbox.url) as http:
        payload = {"id": "after-close", "remotePath": "https://x/y"}
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 200
        with pytest.raises(aiohttp.ClientError):  # the answer came whole; its connection not
            await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
        assert sandbox.state.store.quable.assets == {}  # dropped before any work
        assert (await call(http, "POST", "/api/assets", json=payload, headers=QUABLE))[0] == 201
        stats = sandbox.state.stats
        assert stats.requests["GET /api/documents/{id}"] == {"200": 1}
        assert stats.requests["POST /api/assets"] == {"closed": 1, "201": 1}
        assert stats.faults["close_after_response"] == 2
        assert [entry[2:] for entry in stats.fault_log] == [
            ("close_after_response", 200),
            ("close_after_response", 201),
        ]


async def test_close_after_response_is_off_by_default():
    async with (
        running_sandbox(small_settings()) as sandbox,
        one_connection(sandbox.url) as http,
    ):
        for _ in range(5):
            assert (await call(http, "GET", "/api/documents/doc-00001", headers=QUABLE))[0] == 200
        assert sandbox.state.stats.faults == {}


async def test_redirect_points_to_another_origin_and_writes_nothing():
    faults = FaultSettings(redirect_rate=1.0, redirect_location="http://elsewhere.invalid/")
    async with running_sandbox(small_settings(faults=faults)) as sandbox:
        async with aiohttp.ClientSession(sandbox.url) as http:
            status, _, headers = await call(
                http,
                "POST",
                "/api/assets?x=1",
                headers=QUABLE,
                json={"id": "moved", "remotePath": "https://x/y"},
                allow_redirects=False,
            )
        assert status == 307
        assert headers["Location"] == "http://elsewhere.invalid/api/assets?x=1"
        assert sandbox.state.store.quable.assets == {}
        assert sandbox.state.stats.faults["redirect"] == 1


def test_redirect_location_must_be_a_url():
    with pytest.raises(ValueError, match="redirect_location"):
        FaultSettings(redirect_location="elsewhere")
