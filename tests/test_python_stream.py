"""``Job.stream()`` (issue 17): each row's result as it is written, rows pulled no faster than
results are taken, and a consumer leaving early stops the run with nothing lost or twice."""

from __future__ import annotations

import asyncio
import logging
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import pydantic
import pytest

import bulksync
from bulksync.sandbox import SandboxSettings, running_sandbox

TOKEN = "BULKSYNC_TEST_STREAM_TOKEN"


@dataclass
class LinkRow:
    from_: str  # `from` is a keyword: the input's "from"
    to: str
    type: str = "t"


LinkTuple = namedtuple("LinkTuple", ["from_", "to", "type"])


class LinkModel(pydantic.BaseModel):
    source: str = pydantic.Field(alias="from")
    to: str
    type: str


def fake_job(folder: Path, concurrency: int = 4) -> bulksync.Job:
    return bulksync.Job(
        target={"kind": "fake"},
        limits={"concurrency": concurrency},
        output={"results": str(folder / "results.jsonl"), "progress": False},
        state={"path": str(folder / "state.sqlite")},
    )


def mixed_rows() -> list[object]:
    return [
        {"from": "doc", "to": "d0", "type": "t"},
        LinkRow("doc", "d1"),
        LinkTuple("doc", "d2", "t"),
        LinkModel.model_validate({"from": "doc", "to": "d3", "type": "t"}),
        {"from": "doc", "type": "t"},  # no `to`: fails its own line, 5
        ["not", "an", "object"],  # fails line 6
        {"from": "doc", "to": "d6", "type": "t"},
    ]


def seen(results: list[bulksync.ItemResult]) -> list[tuple[str, int, str | None, str]]:
    return sorted((r.origin.path, r.origin.line, r.key, r.status) for r in results)


async def test_a_stream_yields_one_result_per_row_and_the_same_as_run(tmp_path: Path) -> None:
    taken: list[bulksync.ItemResult] = []
    async with fake_job(tmp_path / "stream").stream(links=mixed_rows()) as results:
        async for result in results:
            taken.append(result)
    assert seen(taken) == [
        ("<links>", line, None if line == 6 else key, status)
        for line, key, status in [
            (1, "doc->d0:t", "succeeded"),
            (2, "doc->d1:t", "succeeded"),
            (3, "doc->d2:t", "succeeded"),
            (4, "doc->d3:t", "succeeded"),
            (5, None, "failed"),
            (6, None, "failed"),
            (7, "doc->d6:t", "succeeded"),
        ]
    ]
    failed = {r.origin.line: r.error.message for r in taken if r.error is not None}
    assert failed[5].startswith("<links> row 4: ") and "'to'" in failed[5]  # row index 4
    assert failed[6] == "<links> row 5: expected an object (a dict or a record object), got list"
    report = results.report
    assert report is not None and (report.total, report.failed, report.exit_code) == (7, 2, 1)
    assert sum(1 for _ in report.items()) == 7  # the results file has them too

    # run() with the same rows (spilled to a file): the same lines, keys and statuses.
    ran = await fake_job(tmp_path / "run").arun(links=mixed_rows())
    assert sorted((i["line"], i["key"], i["status"]) for i in ran.items()) == [
        (line, key, status) for _, line, key, status in seen(taken)
    ]


async def test_a_slow_consumer_slows_the_producer(tmp_path: Path) -> None:
    count, pulled, ahead = 3000, 0, []

    async def rows() -> Any:
        nonlocal pulled
        for i in range(count):
            pulled += 1
            yield {"from": "doc", "to": f"d{i}", "type": "t"}

    taken = 0
    with anyio.fail_after(120):
        async with fake_job(tmp_path, concurrency=2).stream(links=rows()) as results:
            async for _ in results:
                taken += 1
                ahead.append(pulled - taken)
                if taken % 10 == 0:
                    await asyncio.sleep(0.01)  # a consumer far slower than the fake target
    window = results.window
    assert taken == count
    assert 0 < window < count // 4  # small enough that buffering everything would show
    assert max(ahead) <= window, (max(ahead), window)
    assert ahead[0] <= window  # the first result came with at most a window pulled


async def test_the_window_is_never_below_what_the_engine_holds(tmp_path: Path) -> None:
    stream = fake_job(tmp_path, concurrency=8).stream(links=mixed_rows(), window=1)
    async with stream as results:
        lines = [r.origin.line async for r in results]
    assert sorted(lines) == list(range(1, 8))
    assert stream.window > 8 * 3  # the workers and queues of its one stage, at least
    with pytest.raises(ValueError, match="window must be at least 1"):
        fake_job(tmp_path).stream(links=[], window=0)


def quable_job(folder: Path, url: str) -> bulksync.Job:
    return bulksync.Job(
        target={"kind": "quable", "base_url": url, "token_env": TOKEN},
        # Faster than Quable's documented 10 per second (6,000 per 10 minutes): the sandbox
        # stays under its own windows at a few hundred requests per test.
        limits={"concurrency": 4, "grace_s": 5.0, "rate": [[200, 1]]},
        output={"results": str(folder / "results.jsonl"), "progress": False},
        state={"path": str(folder / "state.sqlite")},
    )


def quable_links(count: int) -> list[dict[str, Any]]:
    ends = [(f"doc-{i // 20 + 1:05d}", f"doc-{i % 20 + 1:05d}") for i in range(count)]
    return [{"from": a, "to": b, "type": "s", "sequence": i} for i, (a, b) in enumerate(ends)]


async def test_breaking_out_stops_the_run_and_a_rerun_finishes_with_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN, "sandbox-token")
    settings = SandboxSettings().with_overrides(
        {
            "quable.seed_documents": "30",
            # The worst the docs allow: a repeat create accepted, writes applied and then
            # answered 5xx, dropped or with garbage.
            "quable.duplicate_links": "allow",
            "faults.seed": "11",
            "faults.drop_after_write_rate": "0.03",
            "faults.applied_error_rate": "0.03",
            "faults.garbage_rate": "0.03",
        }
    )
    count, pulled = 400, 0
    links = quable_links(count)

    def rows() -> Any:
        nonlocal pulled
        for link in links:
            pulled += 1
            yield link

    async with running_sandbox(settings) as sandbox:
        job = quable_job(tmp_path, sandbox.url)
        with anyio.fail_after(120):
            taken = 0
            async for _ in job.stream(links=rows()):  # no `async with`: `break` must do
                taken += 1
                if taken == 60:
                    break
            while len(asyncio.all_tasks()) > 1:  # the run's task ends once it stopped
                await asyncio.sleep(0.05)
            assert pulled < count  # the producer was not drained past the window
            # Every row taken from the producer has its one result line, sent or not.
            stopped = [orjson.loads(line) for line in (tmp_path / "results.jsonl").open("rb")]
            assert sorted(r["line"] for r in stopped) == list(range(1, pulled + 1))
            first = [r async for r in quable_job(tmp_path, sandbox.url).stream(links=links)]
        assert sorted(r.origin.line for r in first) == list(range(1, count + 1))
        statuses = {r.status for r in first}
        assert statuses <= {"succeeded", "skipped"}, [r.error for r in first if r.error][:3]
        assert any(r.status == "skipped" for r in first)  # what the first run pushed
        store = sandbox.state.store.quable
        assert len(store.links) == count
        snapshot = sandbox.state.stats.snapshot()
        assert snapshot["faults_injected"]["total"] >= 3, snapshot["faults_injected"]
        assert snapshot["duplicate_create_attempts"]["total"] == 0


async def test_a_refused_token_raises_auth_error_from_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN, "not-the-token")
    async with running_sandbox(SandboxSettings()) as sandbox:
        with anyio.fail_after(60), pytest.raises(bulksync.AuthError):
            async with quable_job(tmp_path, sandbox.url).stream(links=quable_links(5)) as res:
                async for _ in res:
                    pass
    assert res.report is not None and res.report.exit_code == 3


async def test_a_streamed_result_has_its_secrets_masked_as_its_line_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN, "sandbox-token")
    echoing = {"from": "doc-00001", "to": "sandbox-token", "type": "s"}  # the key holds it
    async with running_sandbox(SandboxSettings()) as sandbox:
        with anyio.fail_after(60):
            stream = quable_job(tmp_path, sandbox.url).stream(links=[*quable_links(2), echoing])
            async with stream as results:
                taken = [r async for r in results]
    assert len(taken) == 3
    assert all("sandbox-token" not in repr(r) for r in taken), taken
    assert "sandbox-token" not in (tmp_path / "results.jsonl").read_text()
    (echoed,) = [r for r in taken if r.origin.line == 3]
    assert echoed.key is not None and "***" in echoed.key


async def test_a_stream_reads_the_configs_file_through_the_window_too(tmp_path: Path) -> None:
    from test_python_api import BAD_LINE, EXPECTED, LINKS, write_job

    job = bulksync.Job.from_toml(write_job(tmp_path))
    async with job.stream() as results:
        taken = [r async for r in results]
    links = str(tmp_path / "links.jsonl")
    assert {r.origin.path for r in taken} == {links}
    assert sorted((r.origin.line, r.key, r.status) for r in taken) == EXPECTED
    (bad,) = [r for r in taken if r.status == "failed"]
    assert bad.error is not None and bad.error.message.startswith(f"{links}:{BAD_LINE}: ")
    assert results.report is not None and results.report.total == LINKS


async def test_assets_and_links_streamed_together_go_assets_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulksync.app.demo import tiny_png

    monkeypatch.setenv(TOKEN, "sandbox-token")
    (tmp_path / "media").mkdir()
    for i in range(6):
        (tmp_path / "media" / f"a{i}.png").write_bytes(tiny_png(8 + i, 8, i))
    assets = ({"id": f"asset-{i}", "file": f"media/a{i}.png", "classification": "dam_sort"}
              for i in range(6))  # fmt: skip
    links = [{"from": "doc-00001", "to": f"asset-{i}", "type": "t"} for i in range(6)]
    settings = SandboxSettings().with_overrides({"quable.classifications": "dam_sort"})
    async with running_sandbox(settings) as sandbox:
        job = bulksync.Job(
            target={"kind": "quable", "base_url": sandbox.url, "token_env": TOKEN},
            inputs={"media_root": str(tmp_path)},
            output={"results": str(tmp_path / "results.jsonl"), "progress": False},
            state={"path": str(tmp_path / "state.sqlite")},
        )
        with anyio.fail_after(60):
            async with job.stream(assets=assets, links=links) as results:
                taken = [(r.kind, r.status) async for r in results]
        assert sorted(sandbox.state.store.quable.assets) == [f"asset-{i}" for i in range(6)]
    assert taken[:6] == [("asset", "succeeded")] * 6  # every asset's result before any link's
    assert taken[6:] == [("link", "succeeded")] * 6


class Unwritable:
    """A record object whose own code fails when read: its row fails, the others go."""

    def model_dump(self, **_: object) -> dict[str, object]:
        raise RuntimeError("lazy field could not load")


async def test_rows_that_cannot_be_written_fail_alone_and_a_raising_iterator_stops(
    tmp_path: Path,
) -> None:
    def rows() -> Any:
        yield {"from": "doc", "to": "d0", "type": "t"}
        yield Unwritable()  # row 1
        yield {1: "doc", "to": "d2", "type": "t"}  # row 2: a key that is not a string
        yield {"from": "doc", "to": "d3", "type": "t"}
        raise ConnectionError("the database went away")

    taken: list[bulksync.ItemResult] = []
    with pytest.raises(bulksync.InputFileError, match="after 4 row") as raised:
        async with fake_job(tmp_path).stream(links=rows()) as results:
            async for result in results:
                taken.append(result)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert "the database went away" in str(raised.value)
    by_line = {r.origin.line: r for r in taken}
    assert sorted(by_line) == [1, 2, 3, 4]  # every row pulled has its result
    assert [by_line[n].status for n in (1, 2, 3, 4)] == [
        "succeeded",
        "failed",
        "failed",
        "succeeded",
    ]
    unwritable = by_line[2].error
    assert (
        unwritable is not None
        and "row cannot be read as an object: RuntimeError" in unwritable.message
    )
    assert unwritable.message.startswith("<links> row 1: ")
    report = results.report
    assert report is not None and report.exit_code == 2 and report.stopped is raised.value


async def test_a_row_json_cannot_hold_fails_alone_in_a_stream_and_in_run(tmp_path: Path) -> None:
    rows = [
        {"from": "doc", "to": "d0", "type": "t"},
        {"from": "doc\ud800", "to": "d1", "type": "t"},  # a lone surrogate: not UTF-8
        42,
    ]
    async with fake_job(tmp_path / "stream").stream(links=rows) as results:
        taken = {r.origin.line: r async for r in results}
    assert [taken[n].status for n in (1, 2, 3)] == ["succeeded", "failed", "failed"]
    surrogate, number = taken[2].error, taken[3].error
    assert surrogate is not None and "row cannot be written as JSON" in surrogate.message
    assert number is not None and number.message.endswith("got int")
    ran = await fake_job(tmp_path / "run").arun(links=rows)
    assert [i["status"] for i in sorted(ran.items(), key=lambda i: i["line"])] == [
        "succeeded",
        "failed",
        "failed",
    ]


async def test_a_source_that_is_no_rows_is_a_type_error_at_the_call(tmp_path: Path) -> None:
    job = fake_job(tmp_path)
    with pytest.raises(TypeError, match="links= takes a path or an iterable of rows"):
        job.stream(links=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not dict"):
        await job.arun(links={"from": "doc", "to": "d0", "type": "t"})
    with pytest.raises(TypeError, match="window= takes a number"):
        job.stream(links=[], window="10")  # type: ignore[arg-type]
    stream = job.stream(links=[{"from": "doc", "to": "d0", "type": "t"}])
    async with stream as results:
        assert [r.status async for r in results] == ["succeeded"]
        with pytest.raises(RuntimeError, match="iterated once"):
            [r async for r in results]


async def test_the_api_prints_nothing_its_notes_go_to_the_bulksync_logger(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rows = [{"from": "doc", "to": "d0", "type": "t", "colour": "red"}, {"from": "doc"}]
    with caplog.at_level(logging.WARNING, logger="bulksync"):
        async with fake_job(tmp_path / "stream").stream(links=rows) as results:
            assert sorted([r.status async for r in results]) == ["failed", "succeeded"]
        ran = await fake_job(tmp_path / "run").arun(links=[*rows, '{"not": "a dict"}'])
    assert ran.failed == 2
    assert capfd.readouterr().err == ""
    logged = [r.getMessage() for r in caplog.records if r.name == "bulksync"]
    assert any("unknown field 'colour'" in message for message in logged), logged
    assert any("not in the failures file" in message for message in logged), logged
