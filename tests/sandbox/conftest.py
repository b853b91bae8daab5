"""Fixtures of the sandbox tests: a sandbox on an ephemeral 127.0.0.1 port per test, and an
HTTP session against it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sandbox_helpers import small_settings

from bulksync.sandbox import Sandbox, running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(small_settings()) as running:
        yield running


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(sandbox.url, timeout=timeout) as session:
        yield session
