from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulksync.spi import _redact as redact

# Before any test module is imported: some build a subprocess environment from os.environ at
# import time, and their runs must not write the quota ledger into the home folder either.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="bulksync-test-state-")


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secrets registered by one test must not mask text in the next."""
    yield
    redact._secrets.clear()


@pytest.fixture(autouse=True)
def _own_quota_ledger(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test its own per-user quota ledger (bulksync.store._quota_ledger): none in the home
    folder, and no test's requests count against another's quota (sandbox ports repeat)."""
    home = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
