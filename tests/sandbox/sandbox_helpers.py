"""Helpers shared by the sandbox tests (a plain module: test files import it by name)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import aiohttp

from bulksync.sandbox import OcapiSettings, PropellerSettings, QuableSettings, SandboxSettings

QUABLE = {"Authorization": "Bearer sandbox-token"}


def small_settings(**overrides: Any) -> SandboxSettings:
    """Default knobs with small seeds, so each test starts in milliseconds."""
    fields: dict[str, Any] = {
        "quable": QuableSettings(seed_documents=5),
        "propeller": PropellerSettings(seed_products=5, seed_categories=3, seed_accounts=2),
        "ocapi": OcapiSettings(seed_catalogs=2, seed_categories=3),
    }
    fields.update(overrides)
    return SandboxSettings(**fields)


async def propeller_token(http: aiohttp.ClientSession) -> dict[str, str]:
    form = {"client_id": "sandbox", "client_secret": "sandbox", "grant_type": "client_credentials"}
    async with http.post("/oauth2/token", data=form) as response:  # at the root, outside /v2
        assert response.status == 200
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def ocapi_token(http: aiohttp.ClientSession) -> dict[str, str]:
    basic = base64.b64encode(b"sandbox:sandbox").decode()
    async with http.post(
        "/dwsso/oauth2/access_token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ) as response:
        assert response.status == 200
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, Any]:
    """One request; returns (status, decoded JSON body or None, headers)."""
    async with http.request(method, path, headers=headers, **kwargs) as response:
        raw = await response.read()
        body = None
        if raw and "json" in response.headers.get("Content-Type", ""):
            body = await response.json(content_type=None)
        return response.status, body, response.headers


def png(width: int, height: int) -> bytes:
    """The signature and IHDR chunk of a PNG: all the sandbox reads."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 32
    )


def jpeg(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, a progressive SOF2 frame header, SOS and EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00" * 3
    return b"\xff\xd8" + app0 + sof + b"\xff\xda" + b"\x00" * 16 + b"\xff\xd9"


CHECKOUT = Path(__file__).resolve().parents[2]


async def start_bulksync(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m bulksync ARGS` in a child process (of this checkout), ``env`` added."""
    child_env = {
        **os.environ,
        **env,
        "PYTHONPATH": str(CHECKOUT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulksync",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env,
    )


async def finish_bulksync(process: asyncio.subprocess.Process, limit_s: float) -> tuple[int, str]:
    """Its exit code and stderr; killed (and reaped) when it outlives ``limit_s``."""
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=limit_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()
