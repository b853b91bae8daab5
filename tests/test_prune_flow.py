"""Prune as a flow of removals through the connector's delete stages: what it forgets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from bulksync.app import runner as runner_mod
from bulksync.app.cli import main
from bulksync.app.config import Config
from bulksync.app.wiring import BuiltTarget, build_target
from bulksync.connectors.fake._fake import FakeConnector
from bulksync.spi._connector import BaseStage, Client, Done, Failed, Job, Outcome, Stage
from bulksync.spi._errors import ErrorInfo

REFUSED = "d3->t10:x"  # the one removal the target refuses in the second run


def write_links(path: Path, count: int, skip: set[int] | None = None) -> None:
    rows = [
        {"from": f"d{i % 7}", "to": f"t{i}", "type": "x", "sequence": i}
        for i in range(count)
        if i not in (skip or set())
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def job_config(tmp_path: Path) -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        "[limits]\nconcurrency = 4\nmax_elapsed_s = 30\n"
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


class RefusingOneDelete(BaseStage):
    name = "delete"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        return [
            Failed(ErrorInfo("HTTP403", "delete refused"))
            if job.record.key == REFUSED
            else Done(extra={"action": "deleted"})
            for job in jobs
        ]


class FakeRefusingOneDelete(FakeConnector):
    def delete_stages(self, kind: str) -> Sequence[Stage]:  # type: ignore[override]
        return [RefusingOneDelete()]


def results(tmp_path: Path) -> list[dict[str, object]]:
    raw = (tmp_path / "results.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in raw]


def deleted_of(tmp_path: Path) -> object:
    return orjson.loads((tmp_path / "results.summary.json").read_bytes())["deleted"]


def test_only_deleted_items_are_forgotten_a_refused_one_is_deleted_by_the_next_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = job_config(tmp_path)
    write_links(tmp_path / "links.jsonl", 100)
    assert main(["run", "--config", str(config)]) == 0
    write_links(tmp_path / "links.jsonl", 100, skip={10, 20, 30})

    def refusing(cfg: Config) -> BuiltTarget:
        return BuiltTarget(FakeRefusingOneDelete(), build_target(cfg).target)

    with monkeypatch.context() as patch:
        patch.setattr(runner_mod, "build_target", refusing)
        assert main(["run", "--config", str(config), "--prune"]) == 1
    removals = [r for r in results(tmp_path) if r["source"] == "state"]
    assert sorted((r["key"], r["status"]) for r in removals) == [
        ("d2->t30:x", "succeeded"),
        (REFUSED, "failed"),
        ("d6->t20:x", "succeeded"),
    ]
    assert deleted_of(tmp_path) == 2
    # The refused one stayed in the state: the next prune tries it again, and only it.
    assert main(["run", "--config", str(config), "--prune"]) == 0
    removals = [r for r in results(tmp_path) if r["source"] == "state"]
    assert [(r["key"], r["status"]) for r in removals] == [(REFUSED, "succeeded")]
    assert deleted_of(tmp_path) == 1
