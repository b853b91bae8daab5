"""The example target (examples/bulksync-notes) is installed like a third party's package.

The README's test command installs it (``pip install -e examples/bulksync-notes``). Without it
the tests here cannot show that an installed package adds a target kind: they stop at once
with the command to run, rather than skip and pass.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest


def pytest_collectstart(collector: pytest.Collector) -> None:
    if "conformance" in str(collector.path) and not entry_points(
        group="bulksync.targets", name="notes"
    ):
        raise pytest.UsageError(
            "the example target is not installed: pip install -e examples/bulksync-notes "
            "(the README's test command does it)"
        )
