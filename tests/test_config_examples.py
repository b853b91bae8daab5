"""The example configs are runnable as shipped: their own valid input, results beside them.

Each job example is loaded as `bulksync run --config` would, its inputs read by the real
readers, and the three target examples run against the sandbox with only the base URL (and
OCAPI's token URL) pointed at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bulksync.app.config import load_config
from bulksync.app.runner import RunOptions, run_job_async
from bulksync.inputs.readers import read_records
from bulksync.sandbox import SandboxSettings, running_sandbox
from bulksync.spi._records import BadRecord

CONFIG = Path(__file__).resolve().parent.parent / "config"
# sandbox.example.toml configures `bulksync sandbox`, not a job.
JOBS = sorted(p for p in CONFIG.glob("*.toml") if p.name != "sandbox.example.toml")


def test_every_job_example_is_found() -> None:
    names = {p.name for p in JOBS}
    assert {"example.toml", "quable.example.toml", "propeller.example.toml"} <= names
    assert {"ocapi.example.toml", "demo.toml"} <= names


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_an_example_reads_valid_input_and_writes_beside_itself(path: Path) -> None:
    config = load_config(path)
    assert config.output.results.parent == CONFIG, "results must be written beside the config"
    inputs = [("asset", config.inputs.assets), ("link", config.inputs.links)]
    read = 0
    for kind, source in inputs:
        if source is None:
            continue
        assert source.is_relative_to(CONFIG)
        with read_records(
            source, kind, media_root=config.inputs.media_root, fmt=config.inputs.format
        ) as records:
            for record in records:
                assert not isinstance(record, BadRecord), f"{path.name}: {record}"
                read += 1
    assert read > 0


# Each target example, its sandbox base URL, and what else points it at the sandbox.
TARGETS: list[tuple[str, str, dict[str, Any]]] = [
    ("quable.example.toml", "", {}),
    ("demo.toml", "", {}),
    ("propeller.example.toml", "/v2", {}),
    ("ocapi.example.toml", "", {"ocapi.token_url": "/dwsso/oauth2/access_token"}),
]


@pytest.mark.parametrize(("name", "suffix", "extra"), TARGETS, ids=[t[0] for t in TARGETS])
def test_a_target_example_succeeds_against_the_sandbox(
    name: str,
    suffix: str,
    extra: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in {
        "QUABLE_TOKEN": "sandbox-token",
        "BULKSYNC_DEMO_QUABLE_USER": "sandbox",
        "BULKSYNC_DEMO_QUABLE_PASSWORD": "sandbox",
        "PROPELLER_CLIENT_ID": "sandbox",
        "PROPELLER_CLIENT_SECRET": "sandbox",
        "OCAPI_CLIENT_ID": "sandbox",
        "OCAPI_CLIENT_SECRET": "sandbox",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = SandboxSettings().with_overrides(
        {"quable.documents_file": str(CONFIG / "examples" / "documents.jsonl")}
    )

    async def scenario() -> dict[str, Any]:
        async with running_sandbox(settings) as sandbox:
            overrides = {
                "target.base_url": sandbox.url + suffix,
                "output.results": str(tmp_path / "results.jsonl"),
                "output.progress": False,
                "state.enabled": False,
                **extra,
            }
            with anyio.fail_after(60):
                config = load_config(CONFIG / name, overrides)
                report = await run_job_async(config, True, RunOptions())
            return dict(report.summary) | {"exit_code": report.exit_code}

    summary = anyio.run(scenario)
    assert summary["exit_code"] == 0, summary
    assert summary["failed"] == 0 and summary["succeeded"] == summary["total"] > 0
