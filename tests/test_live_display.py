"""The live display, as a user sees it: a real run in a real terminal (tmux, 120 x 40) against
the sandbox, the screen read back with capture-pane; and the stats lines a run prints when
stderr is not a terminal."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sandbox_process import start_sandbox as start_process

from bulksync.app.demo import DemoOptions, write_catalogue

TOKEN_ENV = "BULKSYNC_TEST_LIVE_TOKEN"
ENV = {**os.environ, TOKEN_ENV: "sandbox-token", "PYTHONUNBUFFERED": "1"}
CATALOGUE = DemoOptions(assets=40, remote_assets=10, links=120, documents=30)

needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CI"),
    reason="tmux is not installed (.ci/run installs it)",
)


def start_sandbox(*flags: str) -> tuple[str, subprocess.Popen[bytes]]:
    return start_process(
        *("--quable-seed-documents", str(CATALOGUE.documents)),
        *("--quable-latency-fixed-ms", "5", *flags),
        env=ENV,
    )


@pytest.fixture
def sandbox() -> Iterator[str]:
    url, process = start_sandbox("--quable-rate-limit-windows", "off")
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)


def write_job(folder: Path, base_url: str, extra: str = "") -> Path:
    write_catalogue(folder, CATALOGUE)
    config = folder / "job.toml"
    config.write_text(
        f"""
[target]
kind = "quable"
base_url = "{base_url}"
token_env = "{TOKEN_ENV}"
[inputs]
assets = "assets.jsonl"
links = "links.jsonl"
[output]
results = "out/results.jsonl"
{extra}
""",
        encoding="utf-8",
    )
    return config


class Tmux:
    """A private tmux server (its own socket), one 120 x 40 window, stopped at the end."""

    def __init__(self) -> None:
        self.socket = f"bulksync-test-{uuid.uuid4().hex[:8]}"

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, timeout=10, check=True
        )
        return done.stdout.decode()

    def run(self, command: list[str], cwd: Path, timeout_s: float = 90) -> str:
        """Run ``command`` in the window; the screen once it has exited (its code shown)."""
        # A COLUMNS inherited from the test's environment (pytest's is 80) would win over the
        # window's real size.
        line = (
            f"unset COLUMNS LINES; cd {shlex.quote(str(cwd))} && "
            f"TERM=xterm-256color {shlex.join(command)}; echo EXIT=$?; sleep 600"
        )
        self._tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "run", line)
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self._tmux("capture-pane", "-p", "-t", "run")
            if "EXIT=" in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the run did not end in {timeout_s} s:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session.close()


def bulksync(*args: str) -> list[str]:
    # The environment of the tmux server is the test's: the token variable goes through it.
    return [sys.executable, "-m", "bulksync", *args]


def status_of(screen: str) -> str:
    """The run's status line, which may wrap onto a second line at 120 columns."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("elapsed "))
    more = lines[start + 1] if start + 1 < len(lines) else ""
    return lines[start] + ("" if more.startswith("  ") or not more else " " + more)


def bar(screen: str, label: str) -> tuple[int, int, str]:
    """(done, total, the rest of the line) of a stage's bar on the screen."""
    for line in screen.splitlines():
        if line.startswith(label):
            found = re.search(r"(\d[\d,]*)/(\d[\d,]*)", line)
            assert found, line
            done, total = (int(x.replace(",", "")) for x in found.groups())
            return done, total, line
    raise AssertionError(f"no {label!r} bar on the screen:\n{screen}")


@needs_tmux
def test_a_resync_of_an_unchanged_catalogue_shows_every_bar_at_its_total(
    tmp_path: Path, sandbox: str, tmux: Tmux
) -> None:
    config = write_job(tmp_path, sandbox)
    first = subprocess.run(
        bulksync("run", "--config", str(config), "--no-progress"),
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr.decode()
    os.environ[TOKEN_ENV] = "sandbox-token"  # tmux's server takes the test's environment
    try:
        screen = tmux.run(bulksync("run", "--config", str(config)), tmp_path)
    finally:
        del os.environ[TOKEN_ENV]
    print(screen)
    assert "EXIT=0" in screen
    # Uploads count only the assets with a file; every item was skipped as unchanged.
    upload = bar(screen, "assets: upload")
    assert upload[:2] == (CATALOGUE.assets, CATALOGUE.assets)
    assert f"{CATALOGUE.assets} skipped" in upload[2]
    create = bar(screen, "assets: create")
    assert create[:2] == (CATALOGUE.assets + CATALOGUE.remote_assets,) * 2
    links = bar(screen, "links: create")
    assert links[:2] == (CATALOGUE.links, CATALOGUE.links)
    assert f"{CATALOGUE.links} skipped" in links[2]
    assert "links: link" not in screen
    status = status_of(screen)
    for figure in ("requests", "pace", "in flight", "retries", "429s", "token refreshes"):
        assert figure in status, status


@needs_tmux
def test_a_throttled_run_shows_its_429s_and_the_pace_in_force(tmp_path: Path, tmux: Tmux) -> None:
    # The server allows 60 requests a second and says nothing of it; we ask for 400/s.
    url, process = start_sandbox(
        "--quable-rate-limit-windows", "60/1", "--quable-rate-limit-retry-after", "false"
    )
    try:
        config = write_job(tmp_path, url, "[limits]\nrate = [[400, 1]]\nmax_attempts = 20")
        os.environ[TOKEN_ENV] = "sandbox-token"
        try:
            screen = tmux.run(bulksync("run", "--config", str(config)), tmp_path)
        finally:
            del os.environ[TOKEN_ENV]
    finally:
        process.kill()
        process.wait(timeout=10)
    print(screen)
    assert "EXIT=0" in screen
    status = status_of(screen)
    throttled = re.search(r"429s (\d[\d,]*)", status)
    assert throttled and int(throttled.group(1).replace(",", "")) > 0, status
    pace = re.search(r"pace ([\d.,]+)/s of 400/s", status)
    assert pace, status
    assert float(pace.group(1).replace(",", "")) < 400, status
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert f"429s {summary['throttled']:,}" in status


def test_off_a_terminal_a_run_prints_a_stats_line_every_interval(
    tmp_path: Path, sandbox: str
) -> None:
    # Paced to last about 3 s, a stats line every 0.5 s: at least 4 lines, each whole.
    config = write_job(tmp_path, sandbox, "[limits]\nrate = [[100, 1]]")
    done = subprocess.run(
        bulksync("run", "--config", str(config), "--stats-interval", "0.5"),
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = [x for x in done.stderr.decode().splitlines() if x.startswith("bulksync stats:")]
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert len(lines) >= 4, done.stderr.decode()
    # One a interval, and the last at the end, with the final figures.
    assert len(lines) <= summary["elapsed_s"] / 0.5 + 2
    last = lines[-1]
    assert f"requests {summary['requests']:,} " in last, last
    for label in ("assets: upload", "assets: create", "links: create"):
        assert label in last, last
    requests = [int(re.search(r"requests ([\d,]+)", x).group(1).replace(",", "")) for x in lines]  # type: ignore[union-attr]
    assert requests == sorted(requests) and requests[-1] <= summary["requests"]


def test_stats_json_lines_carry_the_same_figures(tmp_path: Path, sandbox: str) -> None:
    config = write_job(tmp_path, sandbox, "[limits]\nrate = [[100, 1]]")
    done = subprocess.run(
        bulksync("run", "--config", str(config), "--stats-interval", "0.5", "--stats-json"),
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    stats = [orjson.loads(x) for x in done.stderr.decode().splitlines() if x.startswith("{")]
    assert len(stats) >= 4
    assert all(s["event"] == "stats" for s in stats)
    assert stats[-1]["limit"] == 100.0
    stages = stats[-1]["stages"]
    assert set(stages) == {"assets: upload", "assets: create", "links: create"}
    # From the first line on: the remotePath assets (the file's last lines) have no upload.
    assert [s["stages"]["assets: upload"]["total"] for s in stats] == [CATALOGUE.assets] * len(
        stats
    )


def test_stats_interval_zero_prints_none(tmp_path: Path, sandbox: str) -> None:
    config = write_job(tmp_path, sandbox, "[limits]\nrate = [[100, 1]]")
    done = subprocess.run(
        bulksync("run", "--config", str(config), "--stats-interval", "0"),
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "bulksync stats:" not in done.stderr.decode()
