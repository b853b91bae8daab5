"""OCAPI batch API: multipart/mixed in, multipart/mixed out, matched by x-dw-content-id."""

from __future__ import annotations

import json

import aiohttp
from sandbox_helpers import call, ocapi_token, small_settings

from bulksync.sandbox import OcapiSettings, Sandbox, running_sandbox

BOUNDARY = "23dh3f9f4"
DATA = "/s/-/dw/data/v23_2/"
EXT = "catalogs/catalog-1/categories/category-0001/category_links/catalog-2/category-{}/other"


def part(
    content_id: str | None,
    extension: str | None = None,
    method: str | None = None,
    body: dict | None = None,
    **headers: str,
) -> bytes:
    lines = []
    if content_id is not None:
        lines.append(f"x-dw-content-id: {content_id}")
    if method:
        lines.append(f"x-dw-http-method: {method}")
    if extension is not None:
        lines.append(f"x-dw-resource-path-extension: {extension}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text.encode() + (json.dumps(body).encode() if body is not None else b"")


def multipart(*parts: bytes, boundary: str = BOUNDARY) -> bytes:
    out = b""
    for chunk in parts:
        out += f"--{boundary}\r\n".encode() + chunk + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def batch(http, body: bytes, token: dict, **headers: str):
    all_headers = {
        **token,
        "Content-Type": f"multipart/mixed; boundary={BOUNDARY}",
        "x-dw-resource-path": DATA,
        **headers,
    }
    response = await http.post("/s/-/dw/batch", data=body, headers=all_headers)
    return response


async def read_parts(response: aiohttp.ClientResponse) -> dict[str, tuple[int, object]]:
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed")
    reader = aiohttp.MultipartReader.from_response(response)
    answers: dict[str, tuple[int, object]] = {}
    while True:
        sub = await reader.next()
        if sub is None:
            return answers
        assert isinstance(sub, aiohttp.BodyPartReader)
        raw = await sub.read()
        answers[sub.headers["x-dw-content-id"]] = (
            int(sub.headers["x-dw-status-code"]),
            json.loads(raw) if raw.strip() else None,
        )


async def test_batch_parts_are_answered_by_content_id(sandbox: Sandbox, http):
    token = await ocapi_token(http)
    body = multipart(
        part("create-2", EXT.format("0002"), "PUT", {"position": 2}),
        part("create-3", EXT.format("0003"), "PUT", {"position": 1}),
        part("again-2", EXT.format("0002"), "PUT", {"position": 4}),
        part("missing", "catalogs/nope/categories/x/category_links", "GET"),
        part("list", "catalogs/catalog-1/categories/category-0001/category_links?count=1", "GET"),
        part("drop-3", EXT.format("0003"), "DELETE"),
    )
    async with await batch(http, body, token) as response:
        answers = await read_parts(response)
    assert {k: v[0] for k, v in answers.items()} == {
        "create-2": 200,  # the spec's status for any PUT (the knob can make it 201)
        "create-3": 200,
        "again-2": 200,
        "missing": 404,
        "list": 200,
        "drop-3": 204,
    }
    assert answers["again-2"][1]["position"] == 4.0
    assert answers["missing"][1]["fault"]["type"] == "CatalogNotFoundException"
    listing = answers["list"][1]
    assert listing["total"] == 2 and listing["data"][0]["target_category_id"] == "category-0003"
    assert answers["drop-3"][1] is None
    assert sandbox.state.store.ocapi.link_count() == 1
    assert sandbox.state.stats.writes["ocapi"] == 4


async def test_main_headers_are_inherited(http):
    token = await ocapi_token(http)
    body = multipart(
        part("a", EXT.format("0002"), body={"position": 1}),
        part("b", EXT.format("0003"), body={"position": 2}),
    )
    async with await batch(http, body, token, **{"x-dw-http-method": "PUT"}) as response:
        answers = await read_parts(response)
    assert answers["a"][0] == 200 and answers["b"][0] == 200
    # a part may override the inherited path and method
    full = DATA + EXT.format("0002")
    body = multipart(part("c", None, "GET", **{"x_dw_resource_path": full}))
    async with await batch(http, body, token, **{"x-dw-resource-path": "/elsewhere/"}) as resp:
        answers = await read_parts(resp)
    assert answers["c"][0] == 200


async def test_whole_batch_errors(http):
    token = await ocapi_token(http)
    too_many = multipart(*(part(f"p{i}", EXT.format("0002"), "GET") for i in range(51)))
    async with await batch(http, too_many, token) as response:
        assert response.status == 400
        assert (await response.json())["fault"]["type"] == "QuotaExceededException"
    fifty = multipart(*(part(f"p{i}", EXT.format("0002"), "GET") for i in range(50)))
    async with await batch(http, fifty, token) as response:
        assert len(await read_parts(response)) == 50
    cases = [
        (multipart(part("x", EXT.format("0002"))), "MissingHttpMethodException"),
        (multipart(part(None, EXT.format("0002"), "GET")), "InvalidRequestBodyException"),
        (multipart(part("x", EXT.format("0002"), "FETCH")), "InvalidHttpMethodException"),
        (multipart(part("x", EXT.format("0002"), "GET"))[:-12], "InvalidRequestBodyException"),
    ]
    for body, fault in cases:
        async with await batch(http, body, token) as response:
            assert response.status == 400, fault
            assert (await response.json())["fault"]["type"] == fault
    async with http.post("/s/-/dw/batch", json={}, headers=token) as response:
        assert response.status == 400
        assert (await response.json())["fault"]["type"] == "IllegalContentTypeException"


async def test_missing_resource_path():
    async with (
        running_sandbox(small_settings()) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        body = multipart(part("x", None, "GET"))
        headers = {**token, "Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}
        status, answer, _ = await call(http, "POST", "/s/-/dw/batch", data=body, headers=headers)
        assert status == 400 and answer["fault"]["type"] == "MissingResourcePathException"


async def test_batch_needs_a_token_and_parts_may_carry_their_own(http):
    body = multipart(part("x", EXT.format("0002"), "GET"))
    async with await batch(http, body, {}) as response:
        assert response.status == 401
        assert (await response.json())["fault"]["type"] == "AuthorizationHeaderMissingException"
    # REFERENCE.md: "401 InvalidAccessTokenException on an expired token", batch included
    async with await batch(http, body, {"Authorization": "Bearer nope"}) as response:
        assert response.status == 401
        answer = await response.json()
        assert answer["_v"] == "23.2"
        assert answer["fault"]["type"] == "InvalidAccessTokenException"
    token = await ocapi_token(http)
    body = multipart(
        part("bad", EXT.format("0002"), "GET", Authorization="Bearer nope"),
        part("good", EXT.format("0002"), "GET"),
    )
    async with await batch(http, body, token) as response:
        answers = await read_parts(response)
    assert answers["bad"][0] == 401 and answers["good"][0] == 404


async def test_batch_size_and_part_limits_are_knobs():
    knobs = OcapiSettings(
        seed_catalogs=2, seed_categories=3, max_batch_parts=2, max_body_bytes=2000
    )
    async with (
        running_sandbox(small_settings(ocapi=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        token = await ocapi_token(http)
        three = multipart(*(part(f"p{i}", EXT.format("0002"), "GET") for i in range(3)))
        async with await batch(http, three, token) as response:
            assert (await response.json())["fault"]["type"] == "QuotaExceededException"
        big = multipart(part("p", EXT.format("0002"), "PUT", {"pad": "x" * 3000}))
        async with await batch(http, big, token) as response:
            assert response.status == 400
            assert (await response.json())["fault"]["type"] == "RequestEntityTooLargeException"


async def test_bare_lf_parts_and_the_documented_formatting_mistakes(http):
    token = await ocapi_token(http)
    ext = EXT.format("0002")
    good = (
        f"--{BOUNDARY}\nx-dw-content-id: lf\nx-dw-http-method: PUT\n"
        f'x-dw-resource-path-extension: {ext}\n\n{{"position": 7}}\n--{BOUNDARY}--\n'
    )
    async with await batch(http, good.encode(), token) as response:
        answers = await read_parts(response)
    assert answers["lf"][0] == 200 and answers["lf"][1]["position"] == 7.0
    # the vendor's "wrong" examples: one newline before the body, or an empty header section
    one_newline = (
        f"--{BOUNDARY}\nx-dw-content-id: a\nx-dw-http-method: GET\n"
        f'x-dw-resource-path-extension: {ext}\n{{"query": 1}}\n--{BOUNDARY}--\n'
    )
    empty_head = f"--{BOUNDARY}\n\nx-dw-content-id: a\nx-dw-http-method: GET\n--{BOUNDARY}--\n"
    for body in (one_newline, empty_head):
        async with await batch(http, body.encode(), token) as response:
            assert response.status == 400
            assert (await response.json())["fault"]["type"] == "InvalidRequestBodyException"
