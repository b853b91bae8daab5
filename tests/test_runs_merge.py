"""`bulksync runs merge`: real run records, written by runs of the CLI against the sandbox,
merged into one summary whose totals are the runs' sums, one timeline and one report.html.

Until `bulksync run --shard I/N` exists on this branch, a shard's run is emulated as it will
be: the same job file run once per part of the input (its links file rewritten in between, so
the config and its hash stay the job's), its record then given the `"shard": "I/N"` field the
sharded run writes. `test_real_shards_merge_with_no_option` runs the real option once it is
there.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_job import ENV, bulksync, write_job
from sandbox_process import running_sandbox_process

from bulksync.app._merge_summary import COUNTERS, parse_time
from bulksync.app.cli import main

DOCUMENTS = 20
ROWS = 120
SHARDS = 4


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox_process(
        *("--quable-seed-documents", str(DOCUMENTS), "--quable-rate-limit-windows", "off"),
        *("--faults-seed", "9", "--faults-error-rate", "0.05", "--faults-error-statuses", "503"),
        env=ENV,
    ) as url:
        yield url


def link_rows(rows: int) -> list[dict[str, Any]]:
    """Links between seeded documents, every eleventh to a document the target lacks (a 4xx
    failure), each of its own type so that no two are the same link."""
    out = []
    for i in range(rows):
        to = f"doc-{1 + (i + 1) % DOCUMENTS:05d}" if i % 11 != 5 else f"doc-{900 + i:05d}"
        out.append({"from": f"doc-{1 + i % DOCUMENTS:05d}", "to": to, "type": f"t{i}"})
    return out


def write_links(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def newest_run(runs_dir: Path, before: set[Path]) -> Path:
    (made,) = set(runs_dir.iterdir()) - before
    return made


def run_shard(config: Path, rows: list[dict[str, Any]], index: int, count: int) -> Path:
    """One shard's run, as `--shard index/count` will make it: the job over its part."""
    write_links(config.parent / "links.jsonl", rows[index::count])
    runs_dir = config.parent / "runs"
    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    # `--shard` gives each shard its own results file: its config hash differs, its job's not.
    results = config.parent / "out" / f"results.shard-{index}-of-{count}.jsonl"
    done = bulksync("run", "--config", str(config), "--results", str(results))
    assert done.returncode in (0, 1), done.stderr
    folder = newest_run(runs_dir, before)
    summary_file = folder / "summary.json"
    summary = orjson.loads(summary_file.read_bytes())
    summary.setdefault("shard", {"index": index, "count": count})  # as `--shard` writes it
    summary_file.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return folder


@dataclass
class Job:
    folder: Path
    config: Path
    rows: list[dict[str, Any]]
    shards: list[Path]  # shard i's run folder at index i


@pytest.fixture(scope="module")
def job(sandbox: str, tmp_path_factory: pytest.TempPathFactory) -> Job:
    folder = tmp_path_factory.mktemp("merge-job")
    config = write_job(folder, sandbox)
    rows = link_rows(ROWS)
    shards = [run_shard(config, rows, i, SHARDS) for i in range(SHARDS)]
    return Job(folder, config, rows, shards)


def summary_of(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((folder / "summary.json").read_bytes())
    return doc


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["runs", "merge", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shards_of_a_job_merge_into_their_sums_over_the_wall_span(
    job: Job, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged"
    ids = [p.name for p in job.shards]
    code, stdout, stderr = merge(
        capsys, "--config", str(job.config), *reversed(ids), "--out", str(out), "--json"
    )
    assert code == 0, stderr
    assert stderr == ""
    merged = orjson.loads(stdout)
    assert merged == summary_of(out)
    shards = [summary_of(p) for p in job.shards]

    assert merged["total"] == ROWS  # every input line once, from exactly one shard
    for name in COUNTERS:
        assert merged[name] == sum(s[name] for s in shards), name
    assert merged["failed"] > 0 and merged["retries"] > 0  # the 4xx links and the 503s
    kinds = {kind for s in shards for kind in s["counts"]}
    for kind in kinds:
        actions = {a for s in shards for a in s["counts"].get(kind, {})}
        for action in actions:
            want = sum(s["counts"].get(kind, {}).get(action, 0) for s in shards)
            assert merged["counts"][kind][action] == want, (kind, action)
    assert merged["pauses"]["count"] == sum(s["pauses"]["count"] for s in shards)
    answered = sum(n for s in shards for _, n in s["latency_histogram"])
    assert sum(n for _, n in merged["latency_histogram"]) == answered

    # Time is the wall span, earliest start to latest end; the rate is over that span.
    starts = [parse_time(s["started_at"]) for s in shards]
    ends = [parse_time(s["ended_at"]) for s in shards]
    assert merged["started_at"] == min(s["started_at"] for s in shards)
    assert merged["ended_at"] == max(s["ended_at"] for s in shards)
    span = (max(e for e in ends if e) - min(s for s in starts if s)).total_seconds()
    assert merged["elapsed_s"] == pytest.approx(span, abs=0.002)
    assert merged["elapsed_s"] >= max(s["elapsed_s"] for s in shards)
    assert merged["items_per_s"] == pytest.approx(ROWS / span, abs=0.1)
    assert merged["requests_per_s"] == pytest.approx(merged["requests"] / span, abs=0.1)
    assert merged["exit_code"] == (1 if merged["failed"] else 0)
    # The budget used: requests/s over the span against the limit the runs ran under (400/s).
    assert merged["budget"]["limit_per_s"] == 400.0
    assert merged["budget"]["share"] == pytest.approx(merged["requests_per_s"] / 400.0, abs=1e-3)
    assert len({s["config_hash"] for s in shards}) == SHARDS  # each its own results path
    assert merged["job_hash"] == shards[0]["job_hash"] == shards[-1]["job_hash"]
    assert merged["target"] == shards[0]["target"]

    # One row per shard, in shard order whatever the order named.
    assert [row["shard"] for row in merged["shards"]] == [f"{i}/{SHARDS}" for i in range(SHARDS)]
    assert [row["run_id"] for row in merged["shards"]] == ids == merged["merged_from"]
    assert [row["total"] for row in merged["shards"]] == [s["total"] for s in shards]
    assert merged["shard_count"] == SHARDS and merged["shards_missing"] == []

    # The timeline's seconds add up to the shards' seconds.
    timeline = lines_of(out / "timeline.jsonl")
    ts = [line["t"] for line in timeline]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    for name in ("requests", "retries", "throttled"):
        want = sum(line[name] for p in job.shards for line in lines_of(p / "timeline.jsonl"))
        assert sum(line[name] for line in timeline) == want == merged[name], name
    done = sum(line["stages"]["links: create"]["done"] for line in timeline)
    assert done == merged["succeeded"]

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "bulksync merge" in page and "Merged runs" in page
    assert page.count("class='shard-row'") == SHARDS
    for run_id in ids:
        assert run_id in page
    assert "no document or asset with the identifier" in page  # the shards' errors, grouped
    assert len(page.encode()) < 1_500_000


def test_the_text_view_and_the_default_folder(job: Job, capsys: pytest.CaptureFixture[str]) -> None:
    runs_dir = job.folder / "runs"
    code, stdout, stderr = merge(capsys, "--runs-dir", str(runs_dir), *(p.name for p in job.shards))
    assert code == 0, stderr
    lines = stdout.splitlines()
    made = Path(lines[-2].removeprefix("merged: "))
    try:
        assert made.parent == runs_dir and made.name.startswith("merge-")
        assert lines[-1] == f"report: {made / 'report.html'}"
        assert (made / "report.html").is_file()
        assert any(line.split()[:1] == [f"{SHARDS - 1}/{SHARDS}"] for line in lines)
        assert f"total                {ROWS:,}" in stdout
        # A merge is no run: `bulksync runs` does not list it, and cannot be merged again.
        code = main(["runs", "--runs-dir", str(runs_dir)])
        listed = capsys.readouterr().out
        assert code == 0 and made.name not in listed
        assert listed.splitlines()[0].split()[-1] == "shard"  # the runs list says which is which
        for folder in job.shards:
            (row,) = [line for line in listed.splitlines() if line.startswith(folder.name)]
            shard = summary_of(folder)["shard"]
            assert row.split()[-1] == f"{shard['index']}/{shard['count']}"
        code, _, stderr = merge(capsys, str(made))
        assert code == 2 and "is a merge, not a run" in stderr
    finally:
        shutil.rmtree(made)


def copy_run(source: Path, name: str) -> Path:
    copy = source.parent / name
    shutil.copytree(source, copy)
    return copy


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown", "no run '20991231T000000Z-0000' in"),
        ("twice", "shard 1/4 twice"),
        ("missing", "shard(s) 3/4 missing"),
        ("killed", "did not finish (no summary.json"),
        ("nothing", "runs merge needs runs to merge"),
        ("since", "--since expects a UTC time"),
        ("mixed", "split the job in different ways"),
    ],
)
def test_what_would_mislead_is_refused_in_one_line_exit_2(
    job: Job, case: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_dir = job.folder / "runs"
    ids = [p.name for p in job.shards]
    made: list[Path] = []
    args: list[str] = ["--runs-dir", str(runs_dir)]
    if case == "unknown":
        args += [*ids, "20991231T000000Z-0000"]
    elif case == "twice":
        made.append(copy_run(job.shards[1], "20991231T000000Z-0001"))
        args += [*ids, made[0].name]
    elif case == "missing":
        args += ids[:3]
    elif case == "killed":
        made.append(copy_run(job.shards[0], "20991231T000000Z-0002"))
        (made[0] / "summary.json").unlink()  # what a SIGKILL leaves: results, no summary
        args += [*ids[1:], made[0].name]
    elif case == "since":
        args += ["--since", "yesterday"]
    elif case == "mixed":
        made.append(copy_run(job.shards[0], "20991231T000000Z-0003"))
        summary = summary_of(made[0])
        summary["shard"] = "1/2"  # the text form is read too
        (made[0] / "summary.json").write_bytes(orjson.dumps(summary))
        args += [*ids, made[0].name]
    try:
        code, stdout, stderr = merge(capsys, *args)
    finally:
        for folder in made:
            shutil.rmtree(folder)
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert "Traceback" not in stderr


def test_force_merges_what_is_there_and_says_what_is_wrong(
    job: Job, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "partial"
    names = [str(p) for p in job.shards[:3]]  # run folders named by path
    code, stdout, stderr = merge(capsys, *names, "--force", "--out", str(out), "--json")
    assert code == 0, stderr
    assert "warning: shard(s) 3/4 missing" in stderr and "--force" in stderr
    merged = orjson.loads(stdout)
    assert merged["total"] == sum(summary_of(p)["total"] for p in job.shards[:3])
    assert merged["shards_missing"] == [f"{SHARDS - 1}/{SHARDS}"]
    assert "missing: 3/4" in (out / "report.html").read_text(encoding="utf-8")


def test_runs_of_another_job_are_refused_unless_forced(
    job: Job, sandbox: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_job(tmp_path, sandbox, rate=300)  # another rate: another job's settings
    write_links(tmp_path / "links.jsonl", job.rows[:10])
    assert bulksync("run", "--config", str(other)).returncode in (0, 1)
    (run,) = (tmp_path / "runs").iterdir()
    summary = summary_of(run)
    summary["shard"] = {"index": 0, "count": SHARDS}
    (run / "summary.json").write_bytes(orjson.dumps(summary))
    named = [str(p) for p in job.shards[1:]] + [str(run)]
    code, _, stderr = merge(capsys, *named, "--out", str(tmp_path / "m1"))
    assert code == 2 and "are of different jobs" in stderr, stderr
    assert stderr.count("\n") == 1
    assert f"job hash {summary['job_hash']}" in stderr
    code, _, stderr = merge(capsys, *named, "--out", str(tmp_path / "m2"), "--force")
    assert code == 0 and "different jobs" in stderr
    assert summary_of(tmp_path / "m2")["job_hash"].count(",") == 1  # both jobs named


def test_runs_without_a_shard_field_merge_as_runs_of_one_job(
    sandbox: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records from before shards (or of an unsharded job run twice) merge with no option."""
    config = write_job(tmp_path, sandbox)
    write_links(tmp_path / "links.jsonl", link_rows(30))
    for _ in range(2):
        assert bulksync("run", "--config", str(config)).returncode in (0, 1)
    runs = sorted((tmp_path / "runs").iterdir())
    assert all("shard" not in summary_of(r) for r in runs)
    code, stdout, stderr = merge(
        capsys,
        "--config",
        str(config),
        *(r.name for r in runs),
        "--json",
        "--out",
        str(tmp_path / "m"),
    )
    assert code == 0, stderr
    merged = orjson.loads(stdout)
    assert merged["total"] == 60
    assert merged["requests"] == sum(summary_of(r)["requests"] for r in runs)
    assert [row["shard"] for row in merged["shards"]] == [None, None]
    assert "shard_count" not in merged


def test_since_takes_each_shards_latest_finished_run(
    sandbox: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shard killed and run again: its killed run is left out, its rerun counted once."""
    config = write_job(tmp_path, sandbox)
    rows = link_rows(40)
    first = [run_shard(config, rows, i, 2) for i in range(2)]
    since = summary_of(first[0])["started_at"]
    # Shard 1 again, killed part-way (a slow rate keeps it running), then run to its end.
    slow = write_job(tmp_path, sandbox, rate=5)
    write_links(tmp_path / "links.jsonl", rows[1::2])
    before = set((tmp_path / "runs").iterdir())
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "run", "--config", str(slow)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            made = set((tmp_path / "runs").iterdir()) - before
            results = next(iter(made)) / "results.jsonl" if made else None
            if results is not None and results.exists() and results.read_bytes().count(b"\n") > 1:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    killed = newest_run(tmp_path / "runs", before)
    assert not (killed / "summary.json").exists()
    write_job(tmp_path, sandbox)  # the job's own settings again
    rerun = run_shard(config, rows, 1, 2)

    code, stdout, stderr = merge(
        capsys, "--config", str(config), "--since", since, "--json", "--out", str(tmp_path / "m")
    )
    assert code == 0, stderr
    merged = orjson.loads(stdout)
    assert merged["merged_from"] == [first[0].name, rerun.name]
    assert merged["total"] == len(rows)
    assert f"run {killed.name} did not finish" in stderr
    assert f"shard 1/2: run {first[1].name} left out, {rerun.name} is newer" in stderr


async def test_the_merged_report_draws_every_chart_in_chromium(job: Job, tmp_path: Path) -> None:
    from test_html_report_browser import _need_chromium, _problems, open_report

    from bulksync.app._html_report import CHARTS

    _need_chromium()
    out = tmp_path / "merged"
    assert main(["runs", "merge", *(str(p) for p in job.shards), "--out", str(out)]) == 0
    page = out / "report.html"
    with tempfile.TemporaryDirectory(prefix="bulksync-chromium-") as profile:
        checked, events = await open_report(page, Path(profile))
    problems = _problems(events, page)
    assert problems["own_request"]
    assert problems["requests"] == problems["exceptions"] == problems["console"] == []
    assert problems["log"] == []
    assert [c["name"] for c in checked["charts"]] == list(CHARTS)
    for chart in checked["charts"]:
        assert chart["drawn"] == "1", chart
        assert chart["colored"] > 200, chart
    assert "no document or asset with the identifier" in checked["errorsText"]


def test_real_shards_merge_with_no_option(
    sandbox: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once `bulksync run --shard I/N` exists: N real shards of one job file, sharing a real
    PostgreSQL state, merge with no option; their totals are the whole input."""
    if "--shard" not in bulksync("run", "--help").stdout:
        pytest.skip("`bulksync run --shard` is not on this branch yet (issue 19, the pg part)")
    from pg_server import new_database, running_postgres

    config = write_job(tmp_path, sandbox)
    dsn_env = "BULKSYNC_TEST_MERGE_PG_DSN"
    text = config.read_text().replace(
        "[state]\nenabled = false", f'[state]\nbackend = "postgres"\ndsn_env = "{dsn_env}"'
    )
    config.write_text(text, encoding="utf-8")
    write_links(tmp_path / "links.jsonl", link_rows(ROWS))
    with running_postgres() as server:
        env = {**ENV, dsn_env: new_database(server, "merge")}
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(config)]
        # All at once, as N machines would: their timelines overlap on the wall clock.
        shards = [
            subprocess.Popen(
                [*command, "--shard", f"{i}/{SHARDS}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            for i in range(SHARDS)
        ]
        try:
            for shard in shards:
                _, stderr = shard.communicate(timeout=120)
                assert shard.returncode in (0, 1), stderr.decode()
        finally:
            for shard in shards:
                shard.kill()
                shard.wait(timeout=10)
    runs = sorted((tmp_path / "runs").iterdir())
    assert sorted(str(summary_of(r).get("shard")) for r in runs) == sorted(
        str({"index": i, "count": SHARDS}) for i in range(SHARDS)
    )
    code, stdout, stderr = merge(
        capsys,
        "--config",
        str(config),
        "--since",
        "2000-01-01",
        "--json",
        "--out",
        str(tmp_path / "m"),
    )
    assert code == 0, stderr
    merged = orjson.loads(stdout)
    assert merged["total"] == ROWS and merged["shards_missing"] == []
    assert [row["shard"] for row in merged["shards"]] == [f"{i}/{SHARDS}" for i in range(SHARDS)]
    for name in ("requests", "retries", "throttled"):
        want = sum(line[name] for r in runs for line in lines_of(r / "timeline.jsonl"))
        got = sum(line[name] for line in lines_of(tmp_path / "m" / "timeline.jsonl"))
        assert got == want == merged[name], name


def write_timeline(folder: Path, started: str, lines: list[dict[str, Any]]) -> Path:
    """A run folder with only what the timeline merge reads: its start and its seconds."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_bytes(orjson.dumps({"started_at": started}))
    (folder / "timeline.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return folder


def test_overlapping_runs_add_up_second_by_second_on_the_wall_clock(tmp_path: Path) -> None:
    """Shards run at once: each merged second sums what every run did in it, placed by each
    run's own start (here 1.5 s apart), not by its seconds since its start."""
    from bulksync.app._merge_summary import RunRecord, merged_timeline

    def second(t: float, requests: int, p95: float, in_flight: int) -> dict[str, Any]:
        return {
            "t": t,
            "requests": requests,
            "retries": 1,
            "throttled": 0,
            "pace": 10.0,
            "limit": 10.0,
            "in_flight": in_flight,
            "paused_s": 0.0,
            "latency_ms": {"p50": 10.0, "p95": p95, "p99": p95},
            "stages": {"links: create": {"done": requests, "failed": 0, "skipped": 0}},
        }

    a = write_timeline(
        tmp_path / "a", "2026-12-04T01:00:00.000Z", [second(t, 4, 50.0, 2) for t in (1, 2, 3)]
    )
    b = write_timeline(
        tmp_path / "b",
        "2026-12-04T01:00:01.500Z",
        [second(1.0, 6, 90.0, 3), second(2.0, 6, 20.0, 3), {"t": "cut"}],
    )
    records = [RunRecord(p, orjson.loads((p / "summary.json").read_bytes())) for p in (a, b)]
    merged = list(merged_timeline(records))
    # a's seconds end 1, 2 and 3 s after 01:00:00, b's 2.5 and 3.5 s: in the seconds ending
    # at 1, 2, 3, 3 and 4.
    assert [line["t"] for line in merged] == [1.0, 2.0, 3.0, 4.0]
    assert [line["runs"] for line in merged] == [1, 1, 2, 1]
    assert [line["requests"] for line in merged] == [4, 4, 10, 6]
    assert sum(line["retries"] for line in merged) == 5
    assert [line["in_flight"] for line in merged] == [2, 2, 5, 3]
    assert [line["limit"] for line in merged] == [10.0] * 4  # one shared budget: not summed
    assert [line["latency_ms"]["p95"] for line in merged] == [50.0, 50.0, 90.0, 20.0]
    assert merged[2]["latency_ms"]["p50"] == pytest.approx(10.0)
    assert [line["stages"]["links: create"]["done"] for line in merged] == [4, 4, 10, 6]
    assert [line["ts"] for line in merged] == [f"2026-12-04T01:00:0{i}Z" for i in (1, 2, 3, 4)]
