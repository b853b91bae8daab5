"""The hostile behaviours the docs do not rule out: a write applied then answered 5xx, and a
200 whose body is not the API's. All are off by default."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from sandbox_helpers import QUABLE, small_settings

from bulksync.sandbox import FaultSettings, SettingsError, running_sandbox
from bulksync.sandbox._faults import FaultInjector

ASSET = {"id": "a", "remotePath": "https://img.example.com/a.jpg"}


async def raw(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: object
) -> tuple[int, str, bytes]:
    async with http.request(method, path, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, response.headers.get("Content-Type", ""), await response.read()


def test_the_hostile_behaviours_are_off_by_default():
    faults = FaultSettings()
    assert faults.applied_error_rate == 0 and faults.garbage_rate == 0
    assert not FaultInjector(faults).active


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_applied_error_writes_then_answers_a_server_error(status: int):
    faults = FaultSettings(applied_error_rate=1.0, applied_error_statuses=(status,))
    async with (
        running_sandbox(small_settings(faults=faults)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        answer = await raw(http, "POST", "/api/assets", json=ASSET, headers=QUABLE)
        assert answer[0] == status and orjson.loads(answer[2])["@type"] == "hydra:Error"
        assert "a" in sandbox.state.store.quable.assets  # applied all the same
        # Reads have nothing to apply: they are answered as usual.
        assert (await raw(http, "GET", "/api/assets/a", headers=QUABLE))[0] == 200
        stats = sandbox.state.stats
        assert stats.faults["applied_error"] == 1
        assert stats.requests["POST /api/assets"] == {str(status): 1}


@pytest.mark.parametrize(
    ("kind", "media"),
    [("html", "text/html"), ("invalid_json", "application/json"), ("empty", "application/json")],
)
@pytest.mark.parametrize("applied", [True, False])
async def test_garbage_answers_200_with_a_body_that_is_not_the_apis(
    kind: str, media: str, applied: bool
):
    faults = FaultSettings(garbage_rate=1.0, garbage_kinds=(kind,), garbage_applies_writes=applied)
    async with (
        running_sandbox(small_settings(faults=faults)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        status, content_type, body = await raw(
            http, "POST", "/api/assets", json=ASSET, headers=QUABLE
        )
        assert status == 200 and content_type.startswith(media)
        if kind == "empty":
            assert body == b""
        else:
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(body)
        assert ("a" in sandbox.state.store.quable.assets) is applied
        # Reads get garbage too; the login routes never do (a run would end before any item).
        read = await raw(http, "GET", "/api/assets/a", headers=QUABLE)
        assert read[0] == 200 and read[1].startswith(media) and b'"id"' not in read[2][-4:]
        signin = {"signin": {"username": "sandbox", "password": "sandbox"}}
        login = await raw(http, "POST", "/api_1.php/sessions", json=signin)
        assert login[0] == 201 and "access_token" in orjson.loads(login[2])["oauth"]
        assert sandbox.state.stats.faults["garbage"] == 2


def test_new_kinds_shift_no_earlier_decision():
    old = FaultSettings(seed=5, error_rate=0.2, drop_after_write_rate=0.2)
    new = FaultSettings(
        seed=5, error_rate=0.2, drop_after_write_rate=0.2, applied_error_rate=0.2, garbage_rate=0.2
    )
    one, two = FaultInjector(old), FaultInjector(new)
    a = [one.decide(is_write=True) for _ in range(300)]
    b = [two.decide(is_write=True) for _ in range(300)]
    for first, second in zip(a, b, strict=True):
        if first.fault is not None:
            assert (first.fault, first.status) == (second.fault, second.status)
    kinds = {d.fault for d in b}
    assert {"applied_error", "garbage"} <= kinds
    assert {d.garbage for d in b if d.fault == "garbage"} == {"html", "invalid_json", "empty"}
    assert {d.status for d in b if d.fault == "applied_error"} == {500, 502, 504}


@pytest.mark.parametrize(
    "bad",
    [
        {"garbage_kinds": ("xml",)},
        {"garbage_kinds": ()},
        {"applied_error_statuses": (200,)},
        {"applied_error_rate": 0.6, "garbage_rate": 0.6},
    ],
)
def test_bad_hostile_knobs_are_refused(bad: dict[str, object]):
    with pytest.raises(SettingsError):
        FaultSettings(**bad)  # type: ignore[arg-type]
