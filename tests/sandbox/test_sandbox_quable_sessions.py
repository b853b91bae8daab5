"""Quable sessions as documented: ``/api_1.php/sessions``, 201, the token under ``oauth``;
remember-me refresh, invalidation and expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sandbox_helpers import call, small_settings

from bulksync.sandbox import QuableSettings, SandboxSettings, running_sandbox

SESSIONS = "/api_1.php/sessions"
SIGNIN = {"signin": {"username": "sandbox", "password": "sandbox"}}
FORM = {"signin[username]": "sandbox", "signin[password]": "sandbox"}
REMEMBER = {"signin": {"username": "sandbox", "password": "sandbox", "remember": True}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def oauth(body: Any) -> dict[str, Any]:
    assert set(body) == {"oauth"}, body
    inner: dict[str, Any] = body["oauth"]
    assert set(inner) == {"access_token", "expires_in", "refresh_token"}
    return inner


async def test_login_answers_201_with_the_token_under_oauth(http):
    status, body, _ = await call(http, "POST", SESSIONS, json=SIGNIN)
    assert status == 201
    token = oauth(body)
    # The documented example: a plain login gets "refresh_token": null.
    assert token["expires_in"] == 3600 and token["refresh_token"] is None
    assert len(token["access_token"]) == 32
    assert (await call(http, "GET", "/api/assets", headers=bearer(token["access_token"])))[0] == 200
    # The reference also lists the fields as form fields signin[username], signin[password].
    status, body, _ = await call(http, "POST", SESSIONS, data=FORM)
    assert status == 201 and oauth(body)["access_token"]


async def test_login_is_only_served_below_api_1_php(http):
    # The host root is not a Quable route: a client asking there is wrong against the vendor.
    for method in ("POST", "GET"):
        status, _, _ = await call(http, method, "/sessions", json=SIGNIN)
        assert status == 404


async def test_login_errors(http):
    status, body, _ = await call(
        http, "POST", SESSIONS, json={"signin": {"username": "sandbox", "password": "x"}}
    )
    assert status == 401 and body["@type"] == "hydra:Error"
    status, body, _ = await call(http, "POST", SESSIONS, json={"signin": {"username": "sandbox"}})
    assert status == 400 and "signin[password]" in body["hydra:description"]


async def test_new_login_invalidates_the_previous_token(http):
    _, first, _ = await call(http, "POST", SESSIONS, json=SIGNIN)
    _, second, _ = await call(http, "POST", SESSIONS, json=SIGNIN)
    first_token, second_token = oauth(first)["access_token"], oauth(second)["access_token"]
    assert (await call(http, "GET", "/api/assets", headers=bearer(first_token)))[0] == 401
    assert (await call(http, "GET", "/api/assets", headers=bearer(second_token)))[0] == 200
    # static tokens are not sessions: logins never touch them
    assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 200


async def test_remember_me_cookie_refreshes(sandbox, http):
    status, body, headers = await call(http, "POST", SESSIONS, json=REMEMBER)
    assert status == 201 and "quable-remember-me" in headers.get("Set-Cookie", "")
    login = oauth(body)
    old, remember = login["access_token"], login["refresh_token"]
    assert isinstance(remember, str) and remember
    http.cookie_jar.clear()
    async with aiohttp.ClientSession(sandbox.url) as other:
        cookie = {"Cookie": f"quable-remember-me={remember}"}
        status, answer, _ = await call(other, "GET", SESSIONS, headers=cookie)
        fresh = oauth(answer)["access_token"]
        assert status == 200 and fresh != old
        assert (await call(other, "GET", "/api/assets", headers=bearer(fresh)))[0] == 200
        # the refresh replaced the user's previous access token
        assert (await call(other, "GET", "/api/assets", headers=bearer(old)))[0] == 401
        status, _, _ = await call(
            other, "GET", SESSIONS, headers={"Cookie": "quable-remember-me=bogus"}
        )
        assert status == 401
        assert (await call(other, "GET", SESSIONS))[0] == 401


async def test_session_tokens_expire_with_time_scale():
    # 3600 s of API time at time_scale 3600 lasts one real second.
    settings = small_settings(time_scale=3600.0)
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        _, body, _ = await call(http, "POST", SESSIONS, json=SIGNIN)
        assert oauth(body)["expires_in"] == 1
        token = bearer(oauth(body)["access_token"])
        assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
        await asyncio.sleep(1.2)
        status, answer, _ = await call(http, "GET", "/api/assets", headers=token)
        assert status == 401 and "Expired" in answer["hydra:description"]
        assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 200


async def test_credentials_and_status_are_knobs():
    knobs = QuableSettings(
        seed_documents=0, username="u", password="p", tokens=("t1",), session_status=200
    )
    async with (
        running_sandbox(SandboxSettings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        assert (await call(http, "POST", SESSIONS, json=SIGNIN))[0] == 401
        signin = {"signin": {"username": "u", "password": "p"}}
        assert (await call(http, "POST", SESSIONS, json=signin))[0] == 200
        assert (await call(http, "GET", "/api/assets", headers=bearer("t1")))[0] == 200
        assert (await call(http, "GET", "/api/assets", headers=bearer("sandbox-token")))[0] == 401


async def test_refresh_invalidation_is_a_knob():
    # The docs only say a login invalidates the previous token; a refresh may not.
    knobs = QuableSettings(seed_documents=0, refresh_invalidates_previous=False)
    async with (
        running_sandbox(SandboxSettings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        _, first, _ = await call(http, "POST", SESSIONS, json=REMEMBER)
        cookie = {"Cookie": f"quable-remember-me={oauth(first)['refresh_token']}"}
        _, second, _ = await call(http, "GET", SESSIONS, headers=cookie)
        for body in (first, second):
            token = bearer(oauth(body)["access_token"])
            assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
        # a login still ends every earlier session of the user
        _, third, _ = await call(http, "POST", SESSIONS, json=SIGNIN)
        for body in (first, second):
            token = bearer(oauth(body)["access_token"])
            assert (await call(http, "GET", "/api/assets", headers=token))[0] == 401
        token = bearer(oauth(third)["access_token"])
        assert (await call(http, "GET", "/api/assets", headers=token))[0] == 200
