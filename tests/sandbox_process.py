"""The sandbox as a separate process on a free loopback port, for tests that run the CLI as
a user would (a plain module: test files import it by name)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def start_sandbox(*flags: str, env: Mapping[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `bulksync sandbox` with ``flags``; its URL once it listens, and the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(env),
    )
    assert process.stdout is not None
    first = process.stdout.readline().decode().strip()  # the sandbox's first line, or EOF
    if not first.startswith("sandbox listening on "):
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"the sandbox did not start: {first!r}")
    return first.rsplit(" ", 1)[1], process


@contextmanager
def running_sandbox_process(*flags: str, env: Mapping[str, str]) -> Iterator[str]:
    """The sandbox's URL while it runs; killed by its PID at the end."""
    url, process = start_sandbox(*flags, env=env)
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
