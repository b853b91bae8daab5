"""A real PostgreSQL server for the state tests (a plain module: test files import it by
name); skipped where PostgreSQL is not installed, except in CI, where that fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bulksync.testing.postgres import binaries, new_database
from bulksync.testing.postgres import running_postgres as _running

__all__ = ["new_database", "running_postgres"]


@contextmanager
def running_postgres() -> Iterator[str]:
    if binaries() is None:
        if os.environ.get("CI"):
            raise AssertionError("PostgreSQL is not installed: .ci/run installs postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI fails instead")
    with _running() as dsn:
        yield dsn
