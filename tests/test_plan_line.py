"""A run's first line: its plan, said once, before the items, without repeating the readers'
warnings; [output] plan = false leaves it out; a stopped run stops planning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest

from bulksync.app._plan_line import announce
from bulksync.app.cli import main
from bulksync.app.config import Config, InputsConfig, OutputConfig, TargetConfig
from bulksync.app.plan import STEP
from bulksync.connectors.fake import FakeConnector
from bulksync.spi import LinkRecord, Origin
from bulksync.store.verdict import Judge


def job(tmp_path: Path, lines: list[dict[str, object]], output: str = "") -> Path:
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    config = tmp_path / "job.toml"
    config.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "links.jsonl"
[output]
results = "out/results.jsonl"
progress = false
{output}
""",
        encoding="utf-8",
    )
    return config


def test_a_run_says_its_plan_first_and_its_warnings_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    links = [{"from": "a", "to": f"b{i}", "type": "t", "sequnce": i} for i in range(20)]
    config = job(tmp_path, links)
    assert main(["run", "--config", str(config)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "bulksync: plan: links 20 create; "
        "20 requests: no request rate documented or configured: as fast as the target answers"
    )
    assert sum("unknown field 'sequnce'" in line for line in err) == 1, err
    # A rerun: all unchanged.
    assert main(["run", "--config", str(config)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bulksync: plan: links 20 skip; 0 requests: nothing to send"


def test_plan_false_leaves_the_line_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = job(tmp_path, [{"from": "a", "to": "b", "type": "t"}], output="plan = false")
    assert main(["run", "--config", str(config)]) == 0
    assert "bulksync: plan:" not in capsys.readouterr().err


def test_planning_ends_as_soon_as_the_run_is_stopped(tmp_path: Path) -> None:
    stop = anyio.Event()
    read: list[int] = []

    def records() -> Iterator[LinkRecord]:
        for i in range(10 * STEP):
            read.append(i)
            if i == STEP + 1:
                stop.set()  # a Ctrl-C, seen at the next step
            yield LinkRecord(Origin("links.jsonl", i + 1), "a", f"b{i}", "t")

    config = Config(
        target=TargetConfig(kind="fake"),
        inputs=InputsConfig(links=tmp_path / "links.jsonl"),
        output=OutputConfig(results=tmp_path / "results.jsonl", progress=False),
    )

    async def plan() -> str | None:
        return await announce(
            config,
            lambda: [("link", records())],
            Judge(),
            FakeConnector(),
            prune=False,
            max_delete="5%",
            stop=stop,
        )

    assert anyio.run(plan) is None
    assert len(read) == 2 * STEP  # the step under way when it was stopped, and no more
