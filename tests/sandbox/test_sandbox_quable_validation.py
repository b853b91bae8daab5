"""Quable v5 validation, held to the vendor's words: missing required parameters are a 400
('400 "Bad Request" - the request could not be understood or was missing required
parameters', seed 004), and an asset must name its binary (seed 001)."""

from __future__ import annotations

import aiohttp
from sandbox_helpers import QUABLE, call, small_settings

from bulksync.sandbox import QuableSettings, Sandbox, running_sandbox

INCOMPLETE = [
    ("/api/assets", {"remotePath": "https://x/y.png"}, "id"),
    ("/api/documents", {"id": "d"}, "documentType"),
    ("/api/links", {"origin": {"id": "doc-00001"}, "target": {"id": "doc-00002"}}, "linkType"),
]


async def test_missing_required_parameters_are_a_400_by_default(sandbox: Sandbox, http):
    for path, body, missing in INCOMPLETE:
        status, answer, _ = await call(http, "POST", path, json=body, headers=QUABLE)
        assert status == 400, path
        assert answer["@type"] == "ConstraintViolationList"
        assert missing in {v["propertyPath"] for v in answer["violations"]}
    assert sandbox.state.stats.writes["quable"] == 0


async def test_validation_status_is_a_knob():
    knobs = QuableSettings(seed_documents=2, validation_status=422)
    async with (
        running_sandbox(small_settings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        for path, body, _ in INCOMPLETE:
            assert (await call(http, "POST", path, json=body, headers=QUABLE))[0] == 422


async def test_a_null_file_or_remote_path_names_no_binary(sandbox: Sandbox, http):
    for empty in ({"file": None}, {"remotePath": None}, {"file": None, "remotePath": None}):
        status, body, _ = await call(
            http, "POST", "/api/assets", headers=QUABLE, json={"id": "a", **empty}
        )
        assert status == 400, empty
        assert body["violations"][0]["propertyPath"] == "file"
    assert sandbox.state.store.quable.assets == {}
