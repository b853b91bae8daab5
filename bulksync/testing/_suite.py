"""The conformance suite: the promises every connector keeps, as pytest tests for any target.

A connector author describes their target once, as a :class:`Subject` (how to start a sandbox
of the API, the job tables that point a run at it, input lines, and what the server holds),
and :func:`conformance_tests` returns a test class to bind to a name in a test module. Each
test runs ``bulksync`` the way a user does (a TOML job file, :func:`load_config`,
:func:`run_job_async`) through a :class:`~bulksync.testing.FaultProxy`, so the sandbox need
not know how to misbehave. It must accept an identical create twice (no 409): otherwise a
repeated create would be caught by the server, not by the connector, and prove nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulksync.app.config import load_config
from bulksync.app.runner import RunOptions, RunReport, run_job_async
from bulksync.spi._connector import Capabilities
from bulksync.spi._records import Kind
from bulksync.spi._spec import TargetSpec
from bulksync.testing._job import read_results, toml_document, write_jsonl
from bulksync.testing._proxy import FAULT_NAMES, FaultProxy, Faults, fault_proxy

Row = dict[str, Any]
# 404 is left out: to a write, many connectors read it as a wrong base_url (no route), and a
# run of them stops the run, which is right but another promise.
PERMANENT_STATUSES = (400, 422)
RETRYABLE_STATUSES = (429, 500, 502, 503)


@dataclass(frozen=True, slots=True)
class Subject:
    """A target under test. ``server`` starts its sandbox and yields a handle; ``url`` gives
    the handle's root URL; ``tables`` gives, for a root URL (the proxy's), the job's
    ``[target]`` table and the target's own (``base_url`` included, secrets by env name);
    ``rows(n)`` gives n distinct input lines of ``kind``; ``held`` lists the identity of every
    object of that kind the server holds (one entry per object, so a duplicate shows twice),
    and ``identity`` the identity an input line should get there."""

    name: str
    server: Callable[[], AbstractAsyncContextManager[Any]]
    url: Callable[[Any], str]
    tables: Callable[[str], Mapping[str, Mapping[str, Any]]]
    rows: Callable[[int], list[Row]]
    held: Callable[[Any], Sequence[Hashable]]
    identity: Callable[[Row], Hashable]
    spec: TargetSpec | None = None
    capabilities: Capabilities | None = None  # when there is no spec yet
    kind: Kind = "link"
    env: Mapping[str, str] = field(default_factory=dict)
    spare: tuple[str, ...] = ()  # login paths the proxy leaves alone
    # Several items per request: a refused request is split to find the bad item, so an item
    # may be sent more than once on a permanent refusal. None: the capabilities' ``batch``.
    groups: bool | None = None
    items: int = 12  # lines per run; enough to exceed a listing page the tables set small
    limit_s: float = 120.0  # per test

    def declared(self) -> Capabilities:
        if self.spec is not None:
            return self.spec.capabilities
        if self.capabilities is not None:
            return self.capabilities
        raise ValueError(f"{self.name}: give the subject its spec or its capabilities")


class Bench:
    """One test's sandbox, proxy and folder; :meth:`run` writes the job and runs it."""

    def __init__(self, subject: Subject, handle: Any, proxy: FaultProxy, folder: Path) -> None:
        self.subject, self.handle, self.proxy, self.folder = subject, handle, proxy, folder
        self.inputs = folder / ("assets.jsonl" if subject.kind == "asset" else "links.jsonl")

    @property
    def results(self) -> list[Row]:
        return read_results(self.folder / "results.jsonl")

    def held(self) -> Counter[Hashable]:
        return Counter(self.subject.held(self.handle))

    def expected(self, rows: Sequence[Row]) -> Counter[Hashable]:
        return Counter(self.subject.identity(row) for row in rows)

    async def run(
        self,
        rows: Sequence[Row],
        *,
        attempts: int = 8,
        state: bool = True,
        options: RunOptions | None = None,
    ) -> RunReport:
        write_jsonl(self.inputs, rows)
        tables: dict[str, Mapping[str, Any]] = dict(self.subject.tables(self.proxy.url))
        tables["inputs"] = {("assets" if self.subject.kind == "asset" else "links"): self.inputs}
        tables["limits"] = {
            "rate": [[100_000, 1]],
            "concurrency": 4,
            "max_attempts": attempts,
            "max_elapsed_s": 60,
        }
        tables["output"] = {"results": self.folder / "results.jsonl", "progress": False}
        tables["state"] = {"enabled": state, "path": self.folder / "state.sqlite"}
        job = self.folder / "job.toml"
        job.write_text(toml_document(tables), encoding="utf-8")
        self.proxy.reset()
        return await run_job_async(load_config(job), True, options)

    def forget_state(self) -> None:
        for path in self.folder.glob("state.sqlite*"):
            path.unlink()


def assert_one_success_per_line(
    bench: Bench, rows: Sequence[Row], allowed: tuple[str, ...] = ("succeeded",)
) -> None:
    """One result line per input line, each in ``allowed`` (a resync skips what is there)."""
    lines = bench.results
    assert sorted(r["line"] for r in lines) == list(range(1, len(rows) + 1)), lines
    failed = [r for r in lines if r["status"] not in allowed]
    assert failed == [], failed


def assert_exactly_once(bench: Bench, rows: Sequence[Row]) -> None:
    held = bench.held()
    duplicates = {key: n for key, n in held.items() if n > 1}
    assert duplicates == {}, f"held more than once: {duplicates}"
    assert held == bench.expected(rows)


def conformance_tests(subject: Subject) -> type:
    """The suite for ``subject``, as a pytest test class: ``TestMine = conformance_tests(s)``."""

    def drive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: Callable[[Bench], Any]
    ) -> None:
        for name, value in subject.env.items():
            monkeypatch.setenv(name, value)

        async def main() -> None:
            with anyio.fail_after(subject.limit_s):
                async with subject.server() as handle:
                    spare = Faults(spare=subject.spare)
                    async with fault_proxy(subject.url(handle), spare) as proxy:
                        await body(Bench(subject, handle, proxy, tmp_path))

        anyio.run(main)

    def faults(**shares: Any) -> Faults:
        return Faults(spare=subject.spare, **shares)

    class Conformance:
        __test__ = True

        def test_one_result_per_item(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                report = await bench.run(rows)
                assert report.exit_code == 0, report.summary
                assert_one_success_per_line(bench, rows)
                assert_exactly_once(bench, rows)

            drive(tmp_path, monkeypatch, body)

        def test_lost_or_ambiguous_answers_lose_and_duplicate_nothing(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items * 3)
                bench.proxy.faults = faults(
                    seed=7,
                    opening=FAULT_NAMES,
                    drop_after_write=0.1,
                    error_after_write=0.1,
                    html_after_write=0.1,
                    disconnect=0.05,
                )
                report = await bench.run(rows, attempts=12)
                met = bench.proxy.stats.faults
                assert all(met[name] > 0 for name in FAULT_NAMES), met  # the run met each
                assert report.exit_code == 0, report.summary
                assert_one_success_per_line(bench, rows)
                assert_exactly_once(bench, rows)

            drive(tmp_path, monkeypatch, body)

        @pytest.mark.parametrize("status", PERMANENT_STATUSES)
        def test_a_refused_write_fails_its_items_at_once(
            self, status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            grouped = subject.declared().batch if subject.groups is None else subject.groups

            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                bench.proxy.faults = faults(refuse_status=status)
                report = await bench.run(rows, attempts=3)
                assert report.exit_code == 1, report.summary
                lines = bench.results
                assert sorted(r["line"] for r in lines) == list(range(1, len(rows) + 1))
                for line in lines:
                    assert line["status"] == "failed", line
                    if not grouped:  # an item error is not retried
                        assert line["attempts"] == 1, line
                    assert line["error"]["http_status"] == status, line
                    assert "\n" not in line["error"]["message"]
                assert bench.held() == Counter()

            drive(tmp_path, monkeypatch, body)

        @pytest.mark.parametrize("status", RETRYABLE_STATUSES)
        def test_a_passing_failure_is_retried_then_reported(
            self, status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                bench.proxy.faults = faults(refuse_status=status)
                report = await bench.run(rows, attempts=3)
                assert report.exit_code == 1, report.summary
                lines = bench.results
                assert sorted(r["line"] for r in lines) == list(range(1, len(rows) + 1))
                for line in lines:
                    assert line["status"] == "failed", line
                    assert line["attempts"] == 3, line  # retried to the limit
                # The same job once the server recovers: nothing was lost on the way.
                bench.proxy.faults = faults()
                again = await bench.run(rows)
                assert again.exit_code == 0, again.summary
                assert_exactly_once(bench, rows)

            drive(tmp_path, monkeypatch, body)

        def test_a_gateway_page_is_never_a_success(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                bench.proxy.faults = faults(refuse_html=True)
                report = await bench.run(rows, attempts=3)
                assert report.exit_code == 1, report.summary
                lines = bench.results
                assert sorted(r["line"] for r in lines) == list(range(1, len(rows) + 1))
                for line in lines:
                    assert line["status"] == "failed", line
                    error = line["error"]
                    assert error["type"] in ("BadResponse", "BadBatchResponse"), line
                    assert "HTTP 200 with " in error["message"], line
                    assert "\n" not in error["message"]
                assert bench.held() == Counter()

            drive(tmp_path, monkeypatch, body)

        def test_a_refused_credential_stops_without_a_success(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                bench.proxy.faults = faults(refuse_status=401)
                report = await bench.run(rows, attempts=3)
                assert report.exit_code in (1, 3), report.summary
                assert all(r["status"] != "succeeded" for r in bench.results)
                assert report.summary["succeeded"] == 0
                assert bench.held() == Counter()

            drive(tmp_path, monkeypatch, body)

        def test_a_resync_makes_no_write(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                assert (await bench.run(rows)).exit_code == 0
                report = await bench.run(rows)
                assert report.exit_code == 0, report.summary
                assert bench.proxy.stats.total_writes() == 0, bench.proxy.stats
                assert_one_success_per_line(bench, rows, ("succeeded", "skipped"))
                assert_exactly_once(bench, rows)

            drive(tmp_path, monkeypatch, body)

        def test_prune_deletes_exactly_what_left(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            if subject.kind not in subject.declared().prune:
                pytest.skip(f"{subject.name} declares no prune of {subject.kind}s")

            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                assert (await bench.run(rows)).exit_code == 0
                kept = rows[: len(rows) // 2]
                options = RunOptions(prune=True, max_delete="100%")
                report = await bench.run(kept, options=options)
                assert report.exit_code == 0, report.summary
                assert report.summary["deleted"] == len(rows) - len(kept)
                assert_exactly_once(bench, kept)

            drive(tmp_path, monkeypatch, body)

        def test_a_full_run_reads_the_listing_to_its_end(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
            if subject.kind not in subject.declared().listing:
                pytest.skip(f"{subject.name} declares no listing of {subject.kind}s")

            async def body(bench: Bench) -> None:
                rows = subject.rows(subject.items)
                assert (await bench.run(rows)).exit_code == 0
                bench.forget_state()
                # No state: only the listing can tell that every item is there already. A
                # listing that stopped at a page would leave items to write again.
                report = await bench.run(rows, options=RunOptions(full=True))
                assert report.exit_code == 0, report.summary
                assert bench.proxy.stats.total_writes() == 0, bench.proxy.stats
                assert_one_success_per_line(bench, rows, ("succeeded", "skipped"))
                assert_exactly_once(bench, rows)

            drive(tmp_path, monkeypatch, body)

    Conformance.__name__ = Conformance.__qualname__ = f"Conformance_{subject.name}"
    return Conformance
