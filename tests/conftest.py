from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulksync.spi import _redact as redact


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secrets registered by one test must not mask text in the next."""
    yield
    redact._secrets.clear()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
