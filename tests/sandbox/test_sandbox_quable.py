"""Quable v5 over real HTTP: auth, digest, files, assets, documents, links and paging."""

from __future__ import annotations

import hashlib

import aiohttp
from sandbox_helpers import QUABLE, call, jpeg, png, small_settings

from bulksync.sandbox import QuableSettings, Sandbox, running_sandbox


async def upload(http: aiohttp.ClientSession, name: str, data: bytes, file_type: str = "asset"):
    form = aiohttp.FormData()
    form.add_field("fileType", file_type)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return await call(http, "POST", "/api/files", data=form, headers=QUABLE)


# -- auth and the digest header ---------------------------------------------------------------


async def test_every_route_needs_a_bearer_token_and_answers_in_hydra(http):
    for method, path in [
        ("GET", "/api/assets"),
        ("POST", "/api/assets"),
        ("GET", "/api/documents/doc-00001"),
        ("POST", "/api/links"),
        ("DELETE", "/api/links/x"),
        ("POST", "/api/files"),
        ("POST", "/api_1.php/documents/doc-00001/links/rel"),
    ]:
        status, body, headers = await call(http, method, path)
        assert status == 401, (method, path)
        assert body["@type"] == "hydra:Error"
        assert headers["WWW-Authenticate"] == "Bearer"
    status, body, _ = await call(http, "GET", "/api/assets", headers={"Authorization": "Bearer no"})
    assert status == 401 and body["hydra:description"] == "Invalid access token."
    status, _, _ = await call(
        http, "GET", "/api/assets", headers={"Authorization": "sandbox-token"}
    )
    assert status == 401


async def test_quable_digest_is_the_sha256_of_every_body(http):
    for headers, path in [
        (QUABLE, "/api/documents/doc-00001"),
        ({}, "/api/assets"),
        (QUABLE, "/api/nothing-here"),
    ]:
        async with http.get(path, headers=headers) as response:
            raw = await response.read()
            assert response.headers["Quable-Digest"] == hashlib.sha256(raw).hexdigest()
    async with http.delete("/api/documents/doc-00005", headers=QUABLE) as response:
        assert response.status == 204
        assert response.headers["Quable-Digest"] == hashlib.sha256(b"").hexdigest()


async def test_read_only_tokens_may_read_but_not_write():
    settings = small_settings(quable=QuableSettings(seed_documents=2, read_only_tokens=("ro",)))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        ro = {"Authorization": "Bearer ro"}
        assert (await call(http, "GET", "/api/documents/doc-00001", headers=ro))[0] == 200
        status, body, _ = await call(http, "DELETE", "/api/documents/doc-00001", headers=ro)
        assert status == 403 and body["@type"] == "hydra:Error"


async def test_unknown_route_is_a_hydra_404(http):
    status, body, _ = await call(http, "GET", "/api/unknown", headers=QUABLE)
    assert status == 404 and body["@type"] == "hydra:Error"
    status, body, _ = await call(http, "PATCH", "/api/assets/x", headers=QUABLE)
    assert status == 405


# -- files and assets -------------------------------------------------------------------------


async def test_upload_file_returns_the_seed_file_object(http):
    status, body, _ = await upload(http, "shirt.jpg", jpeg(3064, 4592))
    assert status == 201
    assert set(body) == {
        "name",
        "location",
        "metadatas",
        "id",
        "type",
        "status",
        "dateModified",
        "dateCreated",
    }
    assert body["name"] == "shirt.jpg" and body["type"] == "asset"
    assert body["status"] == "available"
    assert body["metadatas"] == {"mime_type": "image/jpeg"}
    assert body["location"] == {"container": "sandbox-dam", "filename": body["id"]}


async def test_upload_file_validation(http):
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("fileType", "bogus")
    status, body, _ = await call(http, "POST", "/api/files", data=form, headers=QUABLE)
    assert status == 400
    paths = {v["propertyPath"] for v in body["violations"]}
    assert paths == {"fileType", "file"}
    status, _, _ = await call(
        http, "POST", "/api/files", json={"fileType": "asset"}, headers=QUABLE
    )
    assert status == 415


async def test_asset_from_uploaded_png_carries_metadata(http):
    _, file_body, _ = await upload(http, "logo.png", png(640, 480))
    payload = {"id": "logo", "file": {"id": file_body["id"]}, "classification": {"id": "dam"}}
    status, asset, headers = await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
    assert status == 201
    assert headers["Content-Type"].startswith("application/ld+json")
    assert asset["@type"] == "Asset" and asset["@id"] == "/api/assets/logo"
    assert asset["@context"]["@vocab"] == "https://sandbox.quable.com/api/docs.jsonld#"
    meta = asset["metadata"]
    assert (meta["width"], meta["height"], meta["orientation"]) == ("640", "480", "landscape")
    assert meta["mime_type"] == "image/png" and meta["file_name"] == "logo.png"
    assert meta["detail"]["ImageWidth"] == 640 and meta["detail"]["MIMEType"] == "image/png"
    assert meta["file_size"].endswith(" B") or meta["file_size"].endswith("KB")
    assert asset["classifications"][0]["id"] == "dam"
    assert asset["name"] == "logo.png" and asset["originalFilename"] == "logo.png"
    assert asset["attributes"] == [] and asset["documentLinks"] == []
    assert isinstance(asset["legacyId"], int)


async def test_asset_from_jpeg_reads_sof_dimensions(http):
    _, file_body, _ = await upload(http, "shirt.jpg", jpeg(3064, 4592))
    status, asset, _ = await call(
        http,
        "POST",
        "/api/assets",
        headers=QUABLE,
        json={"id": "blueshirt", "file": {"id": file_body["id"]}},
    )
    assert status == 201
    assert asset["metadata"]["width"] == "3064" and asset["metadata"]["height"] == "4592"
    assert asset["metadata"]["orientation"] == "portrait"


async def test_asset_from_remote_path(http):
    payload = {
        "id": "remote",
        "classification": {"id": "dam_sort"},
        "attributes": {"mannequin": "Jane Doe"},
        "remotePath": "https://example.com/images/633_black_face.png",
    }
    status, asset, _ = await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
    assert status == 201
    assert asset["metadata"] == [] and asset["name"] == ""
    assert asset["originalFilename"] == "633_black_face.png"
    assert asset["attributes"] == {"mannequin": "Jane Doe"}


async def test_asset_errors(http):
    status, body, _ = await call(
        http,
        "POST",
        "/api/assets",
        headers=QUABLE,
        json={"id": "a", "file": {"id": "no-such-file"}},
    )
    assert status == 400 and "/api/files/no-such-file" in body["hydra:description"]
    status, body, _ = await call(http, "POST", "/api/assets", headers=QUABLE, json={"id": "a"})
    assert status == 400 and body["@type"] == "ConstraintViolationList"
    assert body["violations"][0]["propertyPath"] == "file"
    status, body, _ = await call(
        http, "POST", "/api/assets", headers=QUABLE, json={"remotePath": "https://x/y.png"}
    )
    assert status == 400 and body["violations"][0]["propertyPath"] == "id"
    status, _, _ = await call(http, "POST", "/api/assets", headers=QUABLE, data=b"{nope")
    assert status == 415  # no JSON content type
    status, body, _ = await call(
        http,
        "POST",
        "/api/assets",
        data=b"{nope",
        headers={**QUABLE, "Content-Type": "application/json"},
    )
    assert status == 400


async def test_existing_asset_id_is_a_conflict_and_counted(sandbox: Sandbox, http):
    payload = {"id": "dup", "remotePath": "https://x/dup.png"}
    assert (await call(http, "POST", "/api/assets", json=payload, headers=QUABLE))[0] == 201
    status, body, _ = await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
    assert status == 409 and body["@type"] == "hydra:Error"
    assert sandbox.state.stats.duplicates["asset"] == 1
    assert len(sandbox.state.store.quable.assets) == 1


async def test_duplicate_status_is_configurable():
    settings = small_settings(quable=QuableSettings(seed_documents=1, duplicate_status=422))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        payload = {"id": "dup", "remotePath": "https://x/dup.png"}
        await call(http, "POST", "/api/assets", json=payload, headers=QUABLE)
        assert (await call(http, "POST", "/api/assets", json=payload, headers=QUABLE))[0] == 422


async def test_get_put_delete_asset(http):
    await call(
        http,
        "POST",
        "/api/assets",
        headers=QUABLE,
        json={"id": "a1", "remotePath": "https://x/a1.png", "attributes": {"k": "v"}},
    )
    status, asset, _ = await call(http, "GET", "/api/assets/a1", headers=QUABLE)
    assert status == 200 and asset["id"] == "a1"
    status, asset, _ = await call(
        http,
        "PUT",
        "/api/assets/a1",
        headers=QUABLE,
        json={"id": "a1", "attributes": {"other": {"fr_FR": "x"}}},
    )
    assert status == 200
    assert asset["attributes"] == {"k": "v", "other": {"fr_FR": "x"}}
    status, body, _ = await call(http, "PUT", "/api/assets/a1", headers=QUABLE, json={"id": "b"})
    assert status == 400
    assert (await call(http, "PUT", "/api/assets/zz", headers=QUABLE, json={}))[0] == 404
    status, body, _ = await call(http, "DELETE", "/api/assets/a1", headers=QUABLE)
    assert status == 204 and body is None
    assert (await call(http, "GET", "/api/assets/a1", headers=QUABLE))[0] == 404
    assert (await call(http, "DELETE", "/api/assets/a1", headers=QUABLE))[0] == 404


# -- paging -----------------------------------------------------------------------------------


async def test_paging_follows_relative_hydra_next_to_the_end(http):
    for i in range(7):
        await call(
            http,
            "POST",
            "/api/assets",
            headers=QUABLE,
            json={"id": f"p{i}", "remotePath": f"https://x/{i}.png"},
        )
    path = "/api/assets?limit=3"
    seen: list[str] = []
    pages = 0
    while path:
        status, body, _ = await call(http, "GET", path, headers=QUABLE)
        assert status == 200 and body["@type"] == "hydra:Collection"
        assert body["hydra:totalItems"] == 7
        seen += [m["id"] for m in body["hydra:member"]]
        path = body["hydra:view"].get("hydra:next")
        assert path is None or path.startswith("/api/assets?limit=3&page=")
        pages += 1
    assert pages == 3 and seen == [f"p{i}" for i in range(7)]
    status, body, _ = await call(http, "GET", "/api/assets?limit=3&page=2", headers=QUABLE)
    assert body["hydra:view"]["hydra:next"] == "/api/assets?limit=3&page=3"
    assert body["hydra:view"]["hydra:previous"] == "/api/assets?limit=3&page=1"


async def test_paging_limits_and_errors(http):
    status, body, _ = await call(http, "GET", "/api/documents", headers=QUABLE)
    assert len(body["hydra:member"]) == 5 and "hydra:next" not in body["hydra:view"]
    _, body, _ = await call(http, "GET", "/api/documents?limit=2&page=3", headers=QUABLE)
    assert [d["id"] for d in body["hydra:member"]] == ["doc-00005"]
    _, body, _ = await call(http, "GET", "/api/documents?limit=1000", headers=QUABLE)
    assert len(body["hydra:member"]) == 5  # clamped to max_page_size, not refused
    for query in ("page=0", "limit=-1", "limit=abc"):
        status, body, _ = await call(http, "GET", f"/api/documents?{query}", headers=QUABLE)
        assert status == 400 and body["@type"] == "hydra:Error", query
    _, body, _ = await call(http, "GET", "/api/documents?order[id]=desc&limit=1", headers=QUABLE)
    assert body["hydra:member"][0]["id"] == "doc-00005"


async def test_default_page_size_is_a_knob():
    settings = small_settings(quable=QuableSettings(seed_documents=4, default_page_size=2))
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        _, body, _ = await call(http, "GET", "/api/documents", headers=QUABLE)
        assert len(body["hydra:member"]) == 2
        assert body["hydra:view"]["hydra:next"] == "/api/documents?page=2"


# -- documents --------------------------------------------------------------------------------


async def test_document_crud_and_duplicates(sandbox: Sandbox, http):
    payload = {"id": "shoe", "documentType": {"id": "product"}, "attributes": {"name": "Shoe"}}
    status, doc, _ = await call(http, "POST", "/api/documents", json=payload, headers=QUABLE)
    assert status == 201 and doc["@id"] == "/api/documents/shoe"
    assert doc["documentType"]["id"] == "product"
    assert (await call(http, "POST", "/api/documents", json=payload, headers=QUABLE))[0] == 409
    assert sandbox.state.stats.duplicates["document"] == 1
    status, body, _ = await call(http, "POST", "/api/documents", json={"id": "x"}, headers=QUABLE)
    assert status == 400 and body["violations"][0]["propertyPath"] == "documentType"
    status, doc, _ = await call(
        http, "PUT", "/api/documents/shoe", headers=QUABLE, json={"attributes": {"color": "blue"}}
    )
    assert doc["attributes"] == {"name": "Shoe", "color": "blue"}
    assert (await call(http, "GET", "/api/documents/shoe", headers=QUABLE))[0] == 200
    assert (await call(http, "DELETE", "/api/documents/shoe", headers=QUABLE))[0] == 204
    assert (await call(http, "GET", "/api/documents/shoe", headers=QUABLE))[0] == 404


# -- v5 links ---------------------------------------------------------------------------------


def link(origin: str, target: str, link_type: str = "document_asset", seq: int = 1) -> dict:
    return {
        "origin": {"id": origin},
        "target": {"id": target},
        "linkType": {"id": link_type},
        "attributes": [],
        "sequence": seq,
    }


async def test_links_create_filter_get_delete(sandbox: Sandbox, http):
    await call(
        http,
        "POST",
        "/api/assets",
        headers=QUABLE,
        json={"id": "img", "remotePath": "https://x/img.png"},
    )
    status, created, _ = await call(
        http, "POST", "/api/links", json=link("doc-00001", "img"), headers=QUABLE
    )
    assert status == 201 and created["id"] and created["target"]["@id"] == "/api/assets/img"
    await call(
        http, "POST", "/api/links", json=link("doc-00001", "doc-00002", "ref"), headers=QUABLE
    )
    await call(http, "POST", "/api/links", json=link("doc-00003", "img"), headers=QUABLE)
    _, body, _ = await call(http, "GET", "/api/links?origin.id=doc-00001", headers=QUABLE)
    assert body["hydra:totalItems"] == 2
    _, body, _ = await call(
        http, "GET", "/api/links?linkType.id=document_asset&target.id=img", headers=QUABLE
    )
    assert {m["origin"]["id"] for m in body["hydra:member"]} == {"doc-00001", "doc-00003"}
    _, body, _ = await call(
        http,
        "GET",
        "/api/links?origin.id=doc-00001&linkType.id=ref&target.id=doc-00002",
        headers=QUABLE,
    )
    assert body["hydra:totalItems"] == 1
    assert (await call(http, "GET", f"/api/links/{created['id']}", headers=QUABLE))[0] == 200
    status, body, _ = await call(http, "DELETE", f"/api/links/{created['id']}", headers=QUABLE)
    assert status == 204 and body is None
    assert (await call(http, "DELETE", f"/api/links/{created['id']}", headers=QUABLE))[0] == 404
    assert len(sandbox.state.store.quable.links) == 2


async def test_link_errors_and_second_identical_link(sandbox: Sandbox, http):
    status, body, _ = await call(
        http, "POST", "/api/links", json=link("nope", "doc-00001"), headers=QUABLE
    )
    assert status == 400 and "origin" in body["hydra:description"]
    status, body, _ = await call(
        http, "POST", "/api/links", json=link("doc-00001", "nope"), headers=QUABLE
    )
    assert (
        status == 400
        and "target" in body["hydra:description"]
        and "nope" in body["hydra:description"]
    )
    status, body, _ = await call(
        http, "POST", "/api/links", json={"origin": {"id": "doc-00001"}}, headers=QUABLE
    )
    assert status == 400
    assert {v["propertyPath"] for v in body["violations"]} == {"target", "linkType"}
    status, body, _ = await call(
        http,
        "POST",
        "/api/links",
        headers=QUABLE,
        json={**link("doc-00001", "doc-00002"), "sequence": "1"},
    )
    assert status == 400 and body["violations"][0]["propertyPath"] == "sequence"
    assert (
        await call(http, "POST", "/api/links", json=link("doc-00001", "doc-00002"), headers=QUABLE)
    )[0] == 201
    status, body, _ = await call(
        http, "POST", "/api/links", json=link("doc-00001", "doc-00002"), headers=QUABLE
    )
    assert status == 409 and body["@type"] == "hydra:Error"
    assert sandbox.state.stats.duplicates["link"] == 1
    assert len(sandbox.state.store.quable.links) == 1


async def test_duplicate_links_may_be_allowed_and_link_types_restricted():
    knobs = QuableSettings(seed_documents=2, duplicate_links="allow", link_types=("ref",))
    async with (
        running_sandbox(small_settings(quable=knobs)) as sandbox,
        aiohttp.ClientSession(sandbox.url) as http,
    ):
        body = link("doc-00001", "doc-00002", "ref")
        assert (await call(http, "POST", "/api/links", json=body, headers=QUABLE))[0] == 201
        assert (await call(http, "POST", "/api/links", json=body, headers=QUABLE))[0] == 201
        assert len(sandbox.state.store.quable.links) == 2
        status, payload, _ = await call(
            http, "POST", "/api/links", headers=QUABLE, json=link("doc-00001", "doc-00002", "other")
        )
        assert status == 400 and "/api/link_types/other" in payload["hydra:description"]


async def test_deleting_a_document_removes_its_links(sandbox: Sandbox, http):
    await call(http, "POST", "/api/links", json=link("doc-00001", "doc-00002"), headers=QUABLE)
    await call(http, "POST", "/api/links", json=link("doc-00003", "doc-00001"), headers=QUABLE)
    await call(http, "DELETE", "/api/documents/doc-00001", headers=QUABLE)
    assert sandbox.state.store.quable.links == {}
