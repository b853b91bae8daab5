"""Seeding from JSONL files and the image header parser behind asset metadata."""

from __future__ import annotations

import struct
from pathlib import Path

import aiohttp
import pytest
from sandbox_helpers import QUABLE, call, jpeg, ocapi_token, png, propeller_token

from bulksync.sandbox import (
    OcapiSettings,
    PropellerSettings,
    QuableSettings,
    SandboxSettings,
    SettingsError,
    running_sandbox,
)
from bulksync.sandbox.quable._imagemeta import exif_size, human_size, inspect


async def test_seed_files_for_all_three_apis(tmp_path: Path):
    (tmp_path / "docs.jsonl").write_text(
        '{"id": "shoe", "documentType": {"id": "reference"}, "attributes": {"a": 1}}\n'
        "# comments and blank lines are skipped\n\n"
        '{"id": "sock", "documentType": "product"}\n',
        encoding="utf-8",
    )
    (tmp_path / "res.jsonl").write_text(
        '{"class": "product", "id": 227293, "sourceId": "NCABD7000411", "source": "TECHDATA"}\n'
        '{"class": "category", "id": 5}\n',
        encoding="utf-8",
    )
    (tmp_path / "cat.jsonl").write_text(
        '{"catalog_id": "storefront", "name": "Store"}\n'
        '{"catalog_id": "storefront", "category_id": "shoes", "name": "Shoes"}\n',
        encoding="utf-8",
    )
    settings = SandboxSettings(
        quable=QuableSettings(seed_documents=0, documents_file=str(tmp_path / "docs.jsonl")),
        propeller=PropellerSettings(
            seed_products=0, seed_categories=0, resources_file=str(tmp_path / "res.jsonl")
        ),
        ocapi=OcapiSettings(seed_catalogs=0, catalogs_file=str(tmp_path / "cat.jsonl")),
    )
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        status, doc, _ = await call(http, "GET", "/api/documents/shoe", headers=QUABLE)
        assert status == 200 and doc["documentType"]["id"] == "reference"
        assert doc["attributes"] == {"a": 1}
        token = await propeller_token(http)
        end = {"class": "product", "source": "TECHDATA", "sourceId": "NCABD7000411"}
        _, body, _ = await call(
            http,
            "POST",
            "/v2/links/bulk/sourceId",
            headers=token,
            json={"links": [{"type": "related", "subtype": "x", "from": end, "to": end}]},
        )
        assert body["data"][0]["success"] is True
        token = await ocapi_token(http)
        _, body, _ = await call(
            http,
            "GET",
            "/s/-/dw/data/v23_2/catalogs/storefront/categories/shoes/category_links",
            headers=token,
        )
        assert body["total"] == 0
        assert sandbox.state.store.ocapi.catalogs["storefront"]["name"] == {"default": "Store"}


@pytest.mark.parametrize("line", ['{"documentType": "p"}', "[1]", "{not json"])
async def test_bad_seed_lines_name_file_and_line(tmp_path: Path, line: str):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "ok"}\n' + line + "\n", encoding="utf-8")
    settings = SandboxSettings(quable=QuableSettings(documents_file=str(path)))
    with pytest.raises(SettingsError, match=r"docs.jsonl:2"):
        async with running_sandbox(settings):
            pass


def test_png_jpeg_gif_headers():
    assert inspect(png(640, 480)).width == 640
    info = inspect(jpeg(3064, 4592))
    assert (info.mime_type, info.width, info.height) == ("image/jpeg", 3064, 4592)
    gif = b"GIF89a" + struct.pack("<HH", 12, 34) + b"\x00" * 8
    assert (inspect(gif).width, inspect(gif).height) == (12, 34)
    assert inspect(b"%PDF-1.7 ...").mime_type == "application/pdf"


def test_unknown_and_truncated_files_fall_back_to_the_name():
    assert inspect(b"hello", "notes.txt").mime_type == "text/plain"
    assert inspect(b"hello", "blob", "application/x-thing").mime_type == "application/x-thing"
    truncated = inspect(b"\xff\xd8\xff\xe0\x00\x10JF", "x.jpg")
    assert truncated.mime_type == "image/jpeg" and truncated.width is None
    assert inspect(b"\x89PNG\r\n\x1a\n").width is None


def test_size_formats():
    assert human_size(512) == "512 B"
    assert human_size(1373 * 1000) == "1.31 MB"
    assert exif_size(1373 * 1000) == "1373 kB"
