"""What the run-folder and runs-merge tests share: a Quable job file against the sandbox (no
state, so every run pushes again), and `bulksync` run in its own process as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOKEN_ENV = "BULKSYNC_TEST_CLI_JOB_TOKEN"
ENV = {**os.environ, TOKEN_ENV: "sandbox-token", "PYTHONUNBUFFERED": "1"}


def write_job(folder: Path, base_url: str, links: str = "links.jsonl", rate: int = 400) -> Path:
    config = folder / "job.toml"
    config.write_text(
        f"""
[target]
kind = "quable"
base_url = "{base_url}"
token_env = "{TOKEN_ENV}"
[inputs]
links = "{links}"
[limits]
rate = [[{rate}, 1]]
[output]
results = "out/results.jsonl"
progress = false
[state]
enabled = false
""",
        encoding="utf-8",
    )
    return config


def bulksync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulksync", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
