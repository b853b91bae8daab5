"""The example target (examples/bulksync-notes) is installed like a third party's package.

A fresh checkout runs the README's test command (`pytest`) without a step of its own for it:
when no ``notes`` entry point is installed, this installs the example, editable and without
dependencies (bulksync itself is the one under test), into the interpreter running the tests.
"""

from __future__ import annotations

import importlib
import site
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bulksync-notes"


def _installed() -> bool:
    return bool(entry_points(group="bulksync.targets", name="notes"))


def ensure_example_installed() -> None:
    if _installed():
        return
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(EXAMPLE)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cannot install {EXAMPLE.name}: {done.stderr.strip()[-2000:]}")
    # The editable install's .pth file is read at start-up only: read it now.
    site.addsitedir(sysconfig.get_paths()["purelib"])
    importlib.invalidate_caches()
    if not _installed():
        raise RuntimeError(f"{EXAMPLE.name} installed, but no 'notes' entry point is found")


ensure_example_installed()
