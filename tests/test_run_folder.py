"""A record of every run: real runs of the CLI against the sandbox leave one folder each, with
results stamped in time, a summary that says who, what and how it ended, a timeline whose
seconds add up to the summary, and a failures file that feeds back as the next input."""

from __future__ import annotations

import csv
import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_job import ENV, bulksync, write_job
from sandbox_process import running_sandbox_process

DOCUMENTS = 20


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox_process(
        *("--quable-seed-documents", str(DOCUMENTS), "--quable-rate-limit-windows", "off"),
        *("--faults-seed", "3", "--faults-error-rate", "0.05"),
        *("--faults-error-statuses", "503"),
        env=ENV,
    ) as url:
        yield url


def write_links_csv(path: Path, rows: int) -> list[dict[str, str]]:
    """Links between seeded documents, every seventh to a document the target lacks (a 4xx),
    and one row with no `to` (a bad line): their failures are known in advance."""
    written = []
    for i in range(rows):
        origin = f"doc-{1 + i % DOCUMENTS:05d}"
        to = f"doc-{1 + (i // DOCUMENTS + 1 + i) % DOCUMENTS:05d}"
        if i % 7 == 3:
            to = f"doc-{900 + i:05d}"
        written.append({"from": origin, "to": "" if i == 10 else to, "type": "ref_refCol"})
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, ["from", "to", "type"], delimiter=";")
        writer.writeheader()
        writer.writerows(written)
    return written


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def stamp(text: str) -> dt.datetime:
    assert text.endswith("Z") and len(text) == len("2026-12-03T12:00:00.123Z"), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def started_at_of(run: Path) -> str:
    return str(orjson.loads((run / "summary.json").read_bytes())["started_at"])


def test_two_runs_leave_two_whole_run_folders(tmp_path: Path, sandbox: str) -> None:
    rows = write_links_csv(tmp_path / "links.csv", 120)
    config = write_job(tmp_path, sandbox, "links.csv")
    first = bulksync("run", "--config", str(config))
    second = bulksync("run", "--config", str(config))
    assert first.returncode == second.returncode == 1, first.stderr + second.stderr
    # In start order: two runs in one second have ids in random order.
    runs = sorted((tmp_path / "runs").iterdir(), key=started_at_of)
    assert len(runs) == 2
    for run in runs:
        for name in ("results.jsonl", "summary.json", "timeline.jsonl", "report.html"):
            assert (run / name).is_file(), (run, name)
    latest = runs[-1]
    # The configured path reads as the latest run's results, so nothing reading it breaks.
    configured = tmp_path / "out" / "results.jsonl"
    assert configured.read_bytes() == (latest / "results.jsonl").read_bytes()
    assert orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())["run_id"] == (
        latest.name
    )

    results = lines_of(latest / "results.jsonl")
    assert len(results) == len(rows)
    for item in results:
        started, ended = stamp(item["started_at"]), stamp(item["ended_at"])
        assert started <= ended
        assert item["ms"] >= 0
        assert abs((ended - started).total_seconds() * 1000 - item["ms"]) < 2
    reached = [r for r in results if r["attempts"]]
    assert reached and all(r["ms"] > 0 for r in reached)  # each waited at least for its answer

    summary = orjson.loads((latest / "summary.json").read_bytes())
    assert summary["run_id"] == latest.name
    assert summary["exit_code"] == second.returncode
    assert summary["target"] == {"kind": "quable", "base_url": sandbox}
    first_summary = orjson.loads((runs[0] / "summary.json").read_bytes())
    assert summary["config_hash"] == first_summary["config_hash"]  # same job, same hash
    assert len(summary["config_hash"]) == 12 and summary["version"]
    assert stamp(summary["started_at"]) <= stamp(summary["ended_at"])
    failed = sum(1 for r in results if r["status"] == "failed")
    created = sum(1 for r in results if r.get("action") == "created")
    assert summary["counts"]["link"]["failed"] == failed
    assert summary["counts"]["link"].get("created", 0) == created
    assert sum(summary["counts"]["link"].values()) == len(rows)
    assert set(summary["pauses"]) == {"count", "total_s"}
    assert summary["token_refreshes"] == 0  # a static token
    answered = sum(count for _, count in summary["latency_histogram"])
    assert 0 < answered <= summary["requests"]
    assert summary["retries"] > 0  # the sandbox's 503s

    # Its seconds add up to the summary: the same counters, taken a second at a time.
    timeline = lines_of(latest / "timeline.jsonl")
    assert [line["t"] for line in timeline] == sorted(line["t"] for line in timeline)
    assert sum(line["requests"] for line in timeline) == summary["requests"]
    assert sum(line["retries"] for line in timeline) == summary["retries"]
    assert sum(line["throttled"] for line in timeline) == summary["throttled"]
    stage = [line["stages"]["links: create"] for line in timeline]
    assert sum(s["done"] for s in stage) == summary["succeeded"]
    assert sum(s["failed"] for s in stage) == failed
    assert all(line["limit"] == 400.0 for line in timeline)


def test_bulksync_runs_lists_the_runs_newest_first(tmp_path: Path, sandbox: str) -> None:
    write_links_csv(tmp_path / "links.csv", 30)
    config = write_job(tmp_path, sandbox, "links.csv")
    for _ in range(2):
        assert bulksync("run", "--config", str(config)).returncode == 1
    (tmp_path / "runs" / "20200101T000000Z-dead").mkdir()
    (tmp_path / "runs" / "20200101T000000Z-dead" / "results.jsonl").write_text("")
    listed = bulksync("runs", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    runs = [orjson.loads(x) for x in listed.stdout.splitlines()]
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert [r["run_id"] for r in runs] == names[::-1]
    assert [r["exit_code"] for r in runs] == [1, 1, None]
    assert runs[-1]["status"] == "incomplete"  # a crashed run: no summary, still listed
    text = bulksync("runs", "--runs-dir", str(tmp_path / "runs"))
    assert text.returncode == 0 and text.stderr == ""
    assert names[-1] in text.stdout.splitlines()[1]
    assert "incomplete" in text.stdout


def test_the_failures_file_fed_back_retries_exactly_the_failed_items(
    tmp_path: Path, sandbox: str
) -> None:
    rows = write_links_csv(tmp_path / "links.csv", 90)
    config = write_job(tmp_path, sandbox, "links.csv")
    run = bulksync("run", "--config", str(config))
    assert run.returncode == 1, run.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    results = lines_of(folder / "results.jsonl")
    failed_lines = sorted(r["line"] for r in results if r["status"] == "failed")
    assert failed_lines, "the input fails some lines by design"
    failures = folder / "failures.csv"
    with open(failures, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        header, *body = list(reader)
    assert header == ["from", "to", "type", "error"]
    # Line n of the input is row n - 2 (the header is line 1): the same cells, and why.
    expected = [rows[n - 2] for n in failed_lines]
    assert [dict(zip(header[:3], row[:3], strict=True)) for row in body] == expected
    assert all(row[3] for row in body)
    assert any("doc-0" in row[3] or "to" in row[3] for row in body)

    again = bulksync("run", "--config", str(config), "--links", str(failures))
    assert again.returncode == 1, again.stderr
    assert "unknown" not in again.stderr  # the error column is ours: no warning for it
    retried = lines_of(tmp_path / "out" / "results.jsonl")
    assert sorted((r["source"], r["line"]) for r in retried) == [
        (str(failures), n) for n in range(2, 2 + len(body))
    ]
    first_keys = sorted(str(r["key"]) for r in results if r["status"] == "failed")
    assert sorted(str(r["key"]) for r in retried) == first_keys
    # Fed back and failing again, it keeps one error column.
    newest = max((tmp_path / "runs").iterdir())
    with open(newest / "failures.csv", encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh, delimiter=";")) == ["from", "to", "type", "error"]


def test_a_killed_run_is_incomplete_and_never_read_with_another_runs_summary(
    tmp_path: Path, sandbox: str
) -> None:
    write_links_csv(tmp_path / "links.csv", 200)
    config = write_job(tmp_path, sandbox, "links.csv")
    assert bulksync("run", "--config", str(config)).returncode == 1
    config.write_text(config.read_text().replace("rate = [[400, 1]]", "rate = [[20, 1]]"))
    configured = tmp_path / "out" / "results.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = list((tmp_path / "runs").iterdir())
            if len(runs) == 2 and configured.exists() and len(lines_of(configured)) >= 20:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    killed = max((tmp_path / "runs").iterdir())
    assert not (killed / "summary.json").exists()
    # The configured results are the killed run's, and no summary beside them claims them.
    assert configured.resolve() == (killed / "results.jsonl").resolve()
    assert not (tmp_path / "out" / "results.summary.json").exists()
    listed = bulksync("runs", "--runs-dir", str(tmp_path / "runs"), "--json")
    statuses = [orjson.loads(x)["status"] for x in listed.stdout.splitlines()]
    assert statuses == ["incomplete", "Completed"]
    html = bulksync("report", str(killed), "--html")
    assert html.returncode == 2
    assert html.stderr.count("\n") == 1 and "did not finish" in html.stderr, html.stderr
    text = bulksync("report", str(configured))
    assert text.returncode == 0, text.stderr
    assert "Completed" not in text.stdout


def test_a_results_file_cut_in_its_last_line_is_read_up_to_it(tmp_path: Path) -> None:
    lines = [{"kind": "link", "key": f"k{i}", "status": "succeeded"} for i in range(3)]
    body = b"".join(orjson.dumps(x) + b"\n" for x in lines) + b'{"kind": "link", "ke'
    (tmp_path / "cut.jsonl").write_bytes(body)
    shown = bulksync("report", str(tmp_path / "cut.jsonl"), "--json")
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["total"] == 3
    assert "cut.jsonl:4: the last line is cut" in shown.stderr


def test_the_results_link_holds_when_its_folder_is_reached_through_a_symlink(
    tmp_path: Path,
) -> None:
    from bulksync.app._run_folder import point_at

    latest = tmp_path / "config" / "runs" / "20261203T000000Z-abcd" / "results.jsonl"
    latest.parent.mkdir(parents=True)
    latest.write_text('{"line": 1}\n')
    real_out = tmp_path / "disk" / "deep" / "out"
    real_out.mkdir(parents=True)
    (tmp_path / "out").symlink_to(real_out)  # the results folder the config names
    link = tmp_path / "out" / "results.jsonl"

    point_at(latest, link)

    assert link.is_symlink()
    assert link.read_text() == '{"line": 1}\n'
    assert (real_out / "results.jsonl").read_text() == '{"line": 1}\n'


def test_runs_started_in_one_second_list_by_their_start(tmp_path: Path) -> None:
    """Run ids hold the second and four random hex digits: within a second, only the starts
    (in milliseconds) say which run came last."""
    from bulksync.app._run_folder import list_runs

    runs_dir = tmp_path / "runs"
    # The later run gets the id that sorts first as text.
    for run_id, started in (("20261204T010000Z-ffff", ".100Z"), ("20261204T010000Z-0000", ".900Z")):
        folder = runs_dir / run_id
        folder.mkdir(parents=True)
        (folder / "results.jsonl").write_bytes(b"")
        summary = {"started_at": "2026-12-04T01:00:00" + started, "exit_code": 0}
        (folder / "summary.json").write_bytes(orjson.dumps(summary))
    assert [run["run_id"] for run in list_runs(runs_dir)] == [
        "20261204T010000Z-0000",
        "20261204T010000Z-ffff",
    ]
