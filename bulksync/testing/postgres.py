"""A real PostgreSQL server in a temporary folder, for the PostgreSQL state's tests and
benchmarks (``tests/pg_server.py``, ``benchmarks/state_backends.py``).

``initdb`` and ``postgres`` come from the PATH or Debian's /usr/lib/postgresql/<version>/bin.
PostgreSQL refuses to run as root, so as root both run as the ``postgres`` system user (made
when missing); the data folder and the unix socket live in one temporary folder that user
owns, with no TCP listener at all. The server is stopped by its PID at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The folder holding initdb and postgres, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found is not None:
        folder = Path(os.path.realpath(found)).parent
        if (folder / "postgres").exists():
            return folder
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    return None


def _server_user() -> str | None:
    """The user to run as: none (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            timeout=30,
        )
    return SERVER_USER


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A DSN (a libpq conninfo string) for a fresh server, stopped by its PID afterwards."""
    folder = binaries()
    if folder is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    user = _server_user()
    # Short: a unix socket path has a limit of about 100 bytes.
    base = Path(tempfile.mkdtemp(prefix="bspg-"))
    data, socket_dir = base / "data", base / "s"
    socket_dir.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(folder / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=user,
            timeout=120,
        )
        log = (base / "server.log").open("wb")
        process = subprocess.Popen(
            [
                str(folder / "postgres"),
                "-D",
                str(data),
                "-k",
                str(socket_dir),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",  # a throwaway server: durability is the tests' subject, not disks'
                "-c",
                "max_connections=100",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
        )
        log.close()
        _wait_ready(socket_dir, process, base / "server.log")
        yield f"host={socket_dir} port=5432 user=postgres dbname=postgres"
    finally:
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(socket_dir: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("postgres exited: " + log.read_text(errors="replace")[-2000:])
        if (socket_dir / ".s.PGSQL.5432").exists():
            # The socket appears before the server accepts; one query proves it does.
            try:
                with psycopg.connect(
                    host=str(socket_dir), user="postgres", dbname="postgres", connect_timeout=5
                ) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                pass
        time.sleep(0.1)
    raise AssertionError("postgres did not start within 60 s")


def new_database(dsn: str, name: str) -> str:
    """A fresh database on that server: each test its own, one server for the module."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn.replace("dbname=postgres", f"dbname={name}")
