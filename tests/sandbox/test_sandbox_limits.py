"""Server-side sliding rate windows (time-scaled) and body size limits, per API."""

from __future__ import annotations

import asyncio

import aiohttp
from sandbox_helpers import QUABLE, call, ocapi_token, propeller_token, small_settings

from bulksync.sandbox import (
    OcapiSettings,
    PropellerSettings,
    QuableSettings,
    RateLimitSettings,
    RateWindow,
    SandboxSettings,
    running_sandbox,
)


def quable_windows(*windows: RateWindow, retry_after: bool = True) -> QuableSettings:
    return QuableSettings(
        seed_documents=2, rate_limit=RateLimitSettings(windows=windows, retry_after=retry_after)
    )


def test_default_windows_are_the_documented_quable_ones():
    settings = SandboxSettings()
    assert settings.quable.rate_limit.windows == (
        RateWindow(6000, 600.0),
        RateWindow(300000, 86400.0),
    )
    assert settings.propeller.rate_limit.windows == ()
    assert settings.ocapi.rate_limit.windows == ()


async def test_both_windows_are_enforced_and_slide():
    # 5 per 10 s and 8 per 60 s of API time; at time_scale 20: 0.5 s and 3 s of real time.
    knobs = quable_windows(RateWindow(5, 10.0), RateWindow(8, 60.0))
    settings = small_settings(quable=knobs, time_scale=20.0)
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        statuses = [(await call(http, "GET", "/api/assets", headers=QUABLE))[0] for _ in range(5)]
        assert statuses == [200] * 5
        status, body, headers = await call(http, "GET", "/api/assets", headers=QUABLE)
        assert status == 429 and body["@type"] == "hydra:Error"
        assert headers["Retry-After"] == "1" and "Quable-Digest" in headers
        await asyncio.sleep(0.6)  # the short window has slid past the first burst
        statuses = [(await call(http, "GET", "/api/assets", headers=QUABLE))[0] for _ in range(4)]
        # refused requests did not count: 3 more fit under the long window's 8, then 429
        assert statuses == [200, 200, 200, 429]
        status, _, headers = await call(http, "GET", "/api/assets", headers=QUABLE)
        assert status == 429 and 2 <= int(headers["Retry-After"]) <= 3
        assert sandbox.state.stats.rate_limited["quable"] == 3
        usage = sandbox.state.limiters["quable"].usage()
        assert [u["used"] for u in usage] == [3, 8]
        assert [u["seconds"] for u in usage] == [0.5, 3.0]


async def test_429_without_retry_after():
    knobs = quable_windows(RateWindow(1, 60.0), retry_after=False)
    async with (
        running_sandbox(small_settings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        assert (await call(http, "GET", "/api/assets", headers=QUABLE))[0] == 200
        status, _, headers = await call(http, "GET", "/api/assets", headers=QUABLE)
        assert status == 429 and "Retry-After" not in headers


async def test_propeller_and_ocapi_windows_answer_in_their_own_shape():
    window = RateLimitSettings(windows=(RateWindow(2, 60.0),))
    settings = small_settings(
        propeller=PropellerSettings(seed_products=2, rate_limit=window),
        ocapi=OcapiSettings(seed_catalogs=1, seed_categories=1, rate_limit=window),
    )
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        token = await propeller_token(http)  # the token call counts in the window too
        assert (await call(http, "GET", "/v2/links/1", headers=token))[0] == 404
        status, body, headers = await call(http, "GET", "/v2/links/1", headers=token)
        assert status == 429 and "faultstring" in body["fault"] and "Retry-After" in headers
        token = await ocapi_token(http)
        path = "/s/-/dw/data/v23_2/catalogs/catalog-1/categories/root/category_links"
        assert (await call(http, "GET", path, headers=token))[0] == 200
        status, body, _ = await call(http, "GET", path, headers=token)
        assert status == 429 and body["_v"] == "23.2" and "type" in body["fault"]
        # Quable has its own, independent windows
        assert (await call(http, "GET", "/api/assets", headers=QUABLE))[0] == 200


async def test_max_body_size_per_api():
    settings = small_settings(
        quable=QuableSettings(seed_documents=1, max_body_bytes=1000),
        propeller=PropellerSettings(seed_products=1, max_body_bytes=1000),
        ocapi=OcapiSettings(seed_catalogs=1, seed_categories=1, max_body_bytes=1000),
    )
    big = {"id": "a", "remotePath": "https://x/" + "y" * 2000}
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        status, body, _ = await call(http, "POST", "/api/assets", json=big, headers=QUABLE)
        assert status == 413 and body["@type"] == "hydra:Error"
        token = await propeller_token(http)
        status, body, _ = await call(http, "POST", "/v2/links/bulk/id", json=big, headers=token)
        assert status == 413 and "fault" in body
        token = await ocapi_token(http)
        path = (
            "/s/-/dw/data/v23_2/catalogs/catalog-1/categories/root/category_links/"
            "catalog-1/root/other"
        )
        status, body, _ = await call(http, "PUT", path, json=big, headers=token)
        assert status == 413 and body["fault"]["type"] == "RequestEntityTooLargeException"
        assert sandbox.state.store.quable.assets == {}
