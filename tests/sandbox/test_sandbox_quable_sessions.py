"""Quable sessions: login (form or JSON), remember-me refresh, invalidation and expiry."""

from __future__ import annotations

import asyncio

import aiohttp
from sandbox_helpers import call, small_settings

from bulksync.sandbox import QuableSettings, SandboxSettings, running_sandbox

FORM = {"signin[username]": "sandbox", "signin[password]": "sandbox"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_with_form_or_json(http):
    status, body, _ = await call(http, "POST", "/sessions", data=FORM)
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "refresh_token"}
    assert body["expires_in"] == 3600 and len(body["access_token"]) == 32
    assert (await call(http, "GET", "/api/assets", headers=bearer(body["access_token"])))[0] == 200
    status, body, _ = await call(
        http, "POST", "/sessions", json={"signin": {"username": "sandbox", "password": "sandbox"}}
    )
    assert status == 200
    status, _, _ = await call(http, "POST", "/sessions", json=FORM)
    assert status == 200


async def test_login_errors(http):
    status, body, _ = await call(
        http, "POST", "/sessions", data={"signin[username]": "sandbox", "signin[password]": "x"}
    )
    assert status == 401 and body["@type"] == "hydra:Error"
    status, body, _ = await call(http, "POST", "/sessions", data={"signin[username]": "sandbox"})
    assert status == 400 and "signin[password]" in body["hydra:description"]


async def test_new_login_invalidates_the_previous_token(http):
    _, first, _ = await call(http, "POST", "/sessions", data=FORM)
    _, second, _ = await call(http, "POST", "/sessions", data=FORM)
    assert (await call(http, "GET", "/api/assets", headers=bearer(first["access_token"])))[0] == 401
    assert (await call(http, "GET", "/api/assets", headers=bearer(second["access_token"])))[
        0
    ] == 200
    # static tokens are not sessions: logins never touch them
    assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 200


async def test_remember_me_cookie_refreshes(sandbox, http):
    status, body, headers = await call(
        http, "POST", "/sessions", data={**FORM, "signin[remember]": "1"}
    )
    assert "quable-remember-me" in headers.get("Set-Cookie", "")
    old = body["access_token"]
    http.cookie_jar.clear()
    async with aiohttp.ClientSession(sandbox.url) as other:
        cookie = {"Cookie": f"quable-remember-me={body['refresh_token']}"}
        status, fresh, _ = await call(other, "GET", "/sessions", headers=cookie)
        assert status == 200 and fresh["access_token"] != old
        assert (await call(other, "GET", "/api/assets", headers=bearer(fresh["access_token"])))[
            0
        ] == 200
        # the refresh replaced the user's previous access token
        assert (await call(other, "GET", "/api/assets", headers=bearer(old)))[0] == 401
        status, _, _ = await call(
            other, "GET", "/sessions", headers={"Cookie": "quable-remember-me=bogus"}
        )
        assert status == 401
        assert (await call(other, "GET", "/sessions"))[0] == 401


async def test_session_tokens_expire_with_time_scale():
    # 3600 s of API time at time_scale 3600 lasts one real second.
    settings = small_settings(time_scale=3600.0)
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        _, body, _ = await call(http, "POST", "/sessions", data=FORM)
        assert body["expires_in"] == 1
        token = bearer(body["access_token"])
        assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
        await asyncio.sleep(1.2)
        status, answer, _ = await call(http, "GET", "/api/assets", headers=token)
        assert status == 401 and "Expired" in answer["hydra:description"]
        assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 200


async def test_credentials_are_knobs():
    knobs = QuableSettings(seed_documents=0, username="u", password="p", tokens=("t1",))
    async with (
        running_sandbox(SandboxSettings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        assert (await call(http, "POST", "/sessions", data=FORM))[0] == 401
        form = {"signin[username]": "u", "signin[password]": "p"}
        assert (await call(http, "POST", "/sessions", data=form))[0] == 200
        assert (await call(http, "GET", "/api/assets", headers=bearer("t1")))[0] == 200
        assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 401


async def test_refresh_invalidation_is_a_knob():
    # The docs only say a login invalidates the previous token; a refresh may not.
    knobs = QuableSettings(seed_documents=0, refresh_invalidates_previous=False)
    async with (
        running_sandbox(SandboxSettings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        _, first, _ = await call(http, "POST", "/sessions", data=FORM)
        cookie = {"Cookie": f"quable-remember-me={first['refresh_token']}"}
        _, second, _ = await call(http, "GET", "/sessions", headers=cookie)
        for body in (first, second):
            token = bearer(body["access_token"])
            assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
        # a login still ends every earlier session of the user
        _, third, _ = await call(http, "POST", "/sessions", data=FORM)
        for body in (first, second):
            token = bearer(body["access_token"])
            assert (await call(http, "GET", "/api/assets", headers=token))[0] == 401
        token = bearer(third["access_token"])
        assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
