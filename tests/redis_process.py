"""A real redis-server for the shared budget's tests and benchmarks: a unix socket (or a free
loopback port) in a temp dir, nothing saved to disk, stopped by its PID (a plain module: test
files import it by name)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_S = 10.0


def need_redis_server() -> None:
    """Skip when redis-server is not installed; in CI (which installs it) fail instead."""
    if os.path.exists(REDIS_SERVER):
        return
    if os.environ.get("CI"):
        pytest.fail(f"redis-server is missing ({REDIS_SERVER}); .ci/run installs it")
    pytest.skip("redis-server is not installed (apt-get install redis-server); CI fails instead")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again on the same address."""

    def __init__(self, folder: Path, *, tcp: bool = False, password: str = "") -> None:
        self.folder = folder
        self.password = password
        self.port = free_port() if tcp else 0
        self.socket = folder / "redis.sock"
        self.url = f"redis://127.0.0.1:{self.port}/0" if tcp else f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
        )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"redis-server did not answer within {START_S} s")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(1.0)
                conn.connect(str(self.socket))
                auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
                conn.sendall(auth + b"PING\r\n")
                reply = b""
                while b"\r\n" not in reply or (auth and reply.count(b"\r\n") < 2):
                    chunk = conn.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def running_redis(folder: Path, *, tcp: bool = False, password: str = "") -> Iterator[RedisServer]:
    folder.mkdir(parents=True, exist_ok=True)
    server = RedisServer(folder, tcp=tcp, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
