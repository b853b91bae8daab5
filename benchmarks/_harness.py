"""Plumbing shared by the scenarios: CPU pinning, the sandbox process, client processes, figures.

Every measured client runs in a fresh Python process of its own (``benchmarks._clients``), so
its peak RSS and CPU time are its own and nothing warms up across runs. The sandbox runs in
another process. On a machine with ``taskset`` and at least two CPUs the sandbox is pinned to
CPU 1 and every client to CPU 0, so client and server never compete for one core.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sandbox-token"
SANDBOX_START_S = 20.0


def pinning() -> tuple[list[str], list[str]]:
    """Command prefixes that pin (server, client) to their own CPU, or nothing where we cannot."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", "1"], ["taskset", "-c", "0"]
    return [], []


def child_env() -> dict[str, str]:
    path = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "0"}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sandbox:
    """``python -m bulksync.sandbox`` (or a module with the same interface) in its own process.

    Stopped by its PID only: SIGTERM, then SIGKILL if it has not left within 5 s.
    """

    def __init__(self, args: Sequence[str], log: Path, module: str = "bulksync.sandbox") -> None:
        server_prefix, _ = pinning()
        command = [
            *server_prefix, sys.executable, "-m", module,
            "--host", "127.0.0.1", "--port", "0", *args,
        ]  # fmt: skip
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, env=child_env(), cwd=ROOT
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + SANDBOX_START_S
        prefix = "sandbox listening on "
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = self.process.stdout.readline().decode().strip()
                    if line.startswith(prefix):
                        return line[len(prefix) :]
                    self.stop()
                    raise RuntimeError(f"unexpected first line from the sandbox: {line!r}")
        self.stop()
        raise RuntimeError(f"the sandbox did not start within {SANDBOX_START_S:g} s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_sandbox/stats")
        return result

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_client(name: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one client program of ``benchmarks._clients`` in a fresh, pinned process.

    Its last line of output is its JSON report; anything it printed before is ignored.
    """
    _, client_prefix = pinning()
    command = [*client_prefix, sys.executable, "-m", "benchmarks._clients", name, json.dumps(args)]
    completed = subprocess.run(
        command,
        capture_output=True,
        env=child_env(),
        cwd=ROOT,
        timeout=timeout_s,
        check=False,
    )
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"client {name} failed ({completed.returncode}): {tail}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def route_counts(before: dict[str, Any], after: dict[str, Any], route: str) -> dict[str, int]:
    """Answers per status on one route between two ``/_sandbox/stats`` snapshots."""
    old = before["requests"].get(route, {})
    new = after["requests"].get(route, {})
    return {
        status: new[status] - old.get(status, 0)
        for status in new
        if new[status] - old.get(status, 0)
    }


def total_requests(before: dict[str, Any], after: dict[str, Any]) -> int:
    """API requests between two snapshots; the inspection routes (``/_sandbox/...``) aside."""

    def api(snapshot: dict[str, Any]) -> int:
        return sum(
            sum(outcomes.values())
            for route, outcomes in snapshot["requests"].items()
            if " /_sandbox/" not in route
        )

    return api(after) - api(before)


@dataclass(slots=True)
class Figure:
    """One measured figure: a row of the results table and of latest.json."""

    scenario: str
    metric: str
    value: float | int | None
    unit: str
    target: str | None = None  # ">= 0.8", "<= 150", "== 0"
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # printed, not written to latest.json

    def __post_init__(self) -> None:
        if self.target is not None and self.value is not None:
            self.met = meets(self.value, self.target)

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("detail")
        return {k: data[k] for k in ("scenario", "metric", "value", "target", "met", "unit")}


def meets(value: float, target: str) -> bool:
    op, bound = target.split()
    limit = float(bound.rstrip("%")) / (100 if bound.endswith("%") else 1)
    if op == ">=":
        return value >= limit
    if op == "<=":
        return value <= limit
    if op == "==":
        return value == limit
    raise ValueError(f"unknown target {target!r}")


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
