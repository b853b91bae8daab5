"""No traceback, ever: a failure injected at each layer ends the way the user can act on.

In the reader, the validator, the content hash, the judge, the identity or a stage, a bug on one
line fails that line alone (``InternalError`` naming its file:line) and the run goes on. A bug
outside any record (the result writer, building the target) exits 5 with one line on stderr
naming a crash file that holds the traceback, secrets masked.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.app import runner
from bulksync.app.cli import main
from bulksync.connectors.fake import _fake as fake
from bulksync.inputs import _csv, readers
from bulksync.spi._redact import register_secret
from bulksync.store import results, verdict

BOOM = "boom"  # the key fragment that makes an injected function raise


def boom_on(original: Callable[..., Any], pick: Callable[..., bool]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if pick(*args, **kwargs):
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    return wrapper


def has_boom(*args: Any, **kwargs: Any) -> bool:
    return BOOM in repr(args)


def job(tmp_path: Path, links: str = "links.jsonl", state: bool = True) -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "{links}"
[state]
enabled = {"true" if state else "false"}
[limits]
concurrency = 2
max_elapsed_s = 30
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return config


def write_links(tmp_path: Path, csv: bool = False) -> Path:
    keys = ["one", BOOM, "three"]
    if csv:
        path = tmp_path / "links.csv"
        path.write_text("from,to,type\n" + "".join(f"doc,{k},t\n" for k in keys))
    else:
        path = tmp_path / "links.jsonl"
        path.write_bytes(
            b"".join(orjson.dumps({"from": "doc", "to": k, "type": "t"}) + b"\n" for k in keys)
        )
    return path


LAYERS: list[tuple[str, Any, str, bool]] = [
    # (layer, module, attribute, csv input)
    ("jsonl reader", readers, "build_record", False),
    ("csv reader", _csv, "build_record", True),
    ("validator", readers, "record_key", False),  # replaced below: the validator's _link
    ("content hash", verdict, "content_hash", False),
    ("judge", verdict.Judge, "judge", False),
    ("identity", fake.FakeConnector, "identity", False),
    ("a stage", fake._WriteStage, "run", False),
]


@pytest.mark.parametrize(("layer", "owner", "name", "csv"), LAYERS, ids=[x[0] for x in LAYERS])
def test_a_bug_on_one_record_fails_that_record_and_the_run_goes_on(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    layer: str,
    owner: Any,
    name: str,
    csv: bool,
) -> None:
    if layer == "validator":
        from bulksync.inputs import _validate

        owner, name = _validate, "_link"
    monkeypatch.setattr(owner, name, boom_on(getattr(owner, name), has_boom))
    path = write_links(tmp_path, csv)
    code = main(["run", "--config", str(job(tmp_path, path.name))])
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert code == 1
    lines = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    by_line = {r["line"]: r for r in map(orjson.loads, lines)}
    first = 2 if csv else 1
    assert sorted(by_line) == [first, first + 1, first + 2]  # one result per line
    assert by_line[first]["status"] == by_line[first + 2]["status"] == "succeeded"
    failed = by_line[first + 1]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "InternalError"
    assert "RuntimeError: injected failure" in failed["error"]["message"]
    if layer != "a stage":  # a stage's result carries its line in source/line
        assert f"{path}:{first + 1}" in failed["error"]["message"]


def crash_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("bulksync-crash-*.txt"))


def test_a_bug_in_the_result_writer_exits_5_with_a_crash_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_dir = tmp_path / "tmp"
    crash_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(crash_dir))
    original = results.ResultWriter.write

    def write(self: results.ResultWriter, result: results.ItemResult) -> None:
        if result.key and BOOM in result.key:
            raise OSError(28, "No space left on device")
        original(self, result)

    monkeypatch.setattr(results.ResultWriter, "write", write)
    write_links(tmp_path)
    code = main(["run", "--config", str(job(tmp_path))])
    err = capfd.readouterr().err
    assert code == 5
    assert "Traceback" not in err
    # The run's first line is its plan (bulksync.app._plan_line); the crash is the next.
    [line] = [x for x in err.strip().splitlines() if not x.startswith("bulksync: plan:")]
    [crash] = crash_files(crash_dir)
    assert (
        line == "bulksync: internal error: OSError: [Errno 28] No space left on device "
        f"(details in {crash})"
    )
    assert "Traceback" in crash.read_text() and "No space left on device" in crash.read_text()


def test_a_bug_outside_any_record_exits_5_and_masks_secrets_in_the_crash_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_dir = tmp_path / "tmp"
    crash_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(crash_dir))
    secret = "hunter2-secret-value"
    register_secret(secret)

    def broken(config: Any) -> Any:
        raise KeyError(f"token {secret}")

    monkeypatch.setattr(runner, "build_target", broken)
    write_links(tmp_path)
    code = main(["run", "--config", str(job(tmp_path))])
    err = capfd.readouterr().err
    assert code == 5
    [line] = err.strip().splitlines()
    assert line.startswith("bulksync: internal error: KeyError: ") and secret not in line
    [crash] = crash_files(crash_dir)
    assert str(crash) in line
    text = crash.read_text()
    assert "Traceback" in text and "in broken" in text
    assert secret not in text and "***" in text
    assert crash.stat().st_mode & 0o077 == 0  # in the shared temporary folder: owner only


def test_report_of_a_file_that_is_no_results_file_exits_2_with_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    for name, content in [
        ("links.csv", "from,to,type\na,b,t\n"),
        ("links.jsonl", '{"from": "a"}\n'),
    ]:
        (tmp_path / name).write_text(content)
        assert main(["report", str(tmp_path / name)]) == 2
        captured = capfd.readouterr()
        assert captured.out == ""  # nothing half-written before the error
        [line] = captured.err.strip().splitlines()
        assert "is not a bulksync results file" in line and name in line
        assert main(["retry-failed", str(tmp_path / name), "--config", str(job(tmp_path))]) == 2
        assert "is not a bulksync results file" in capfd.readouterr().err


@pytest.mark.parametrize("faults", ["0.6", "-0.1", "nan", "1"])
def test_demo_faults_out_of_range_exit_2_with_one_line(
    capfd: pytest.CaptureFixture[str], faults: str
) -> None:
    assert main(["demo", "--faults", faults]) == 2
    [line] = capfd.readouterr().err.strip().splitlines()
    assert line.startswith("bulksync: --faults takes a share from 0 to 0.5")


def test_a_stray_quote_with_prune_deletes_nothing_and_reports_the_swallowed_rows(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    links = tmp_path / "links.csv"
    rows = [f"doc,item{i},t\n" for i in range(6)]
    links.write_text("from,to,type\n" + "".join(rows))
    config = job(tmp_path, "links.csv")
    assert main(["run", "--config", str(config)]) == 0  # all six pushed, in the state
    capfd.readouterr()
    # A stray opening quote on line 4 swallows every later row into one field.
    rows[2] = 'doc,"item2,t\n'
    links.write_text("from,to,type\n" + "".join(rows))
    code = main(["run", "--config", str(config), "--prune", "--max-delete", "100%"])
    captured = capfd.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    message = (
        f"prune skipped: 4 input line(s) could not be read (first: {links}:4); nothing was deleted"
    )
    assert f"bulksync: {message}" in captured.err.splitlines()
    lines = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    by_line = {r["line"]: r for r in map(orjson.loads, lines)}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7]  # every line accounted for, none deleted
    assert all(r["status"] != "succeeded" or r["line"] < 4 for r in by_line.values())
    assert "lines 4-7: unterminated quoted field swallows 4 lines" in by_line[4]["error"]["message"]
    assert {by_line[n]["key"] for n in (5, 6, 7)} == {
        "doc->item3:t",
        "doc->item4:t",
        "doc->item5:t",
    }
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert summary["deleted"] == 0 and summary["messages"] == [message]


def test_strict_fields_fails_unknown_fields_and_columns(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "links.jsonl").write_text(
        '{"from": "a", "to": "b", "type": "t", "sequnce": 1}\n'
        '{"from": "a", "to": "c", "type": "t"}\n'
    )
    code = main(["run", "--config", str(job(tmp_path, state=False)), "--strict-fields"])
    assert code == 1
    lines = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    by_line = {r["line"]: r for r in map(orjson.loads, lines)}
    assert by_line[2]["status"] == "succeeded"
    assert "unknown field 'sequnce' (did you mean 'sequence'?)" in by_line[1]["error"]["message"]
    (tmp_path / "links.csv").write_text("from,to,type,Sequnce\na,b,t,1\na,c,t,\n")
    code = main(
        ["run", "--config", str(job(tmp_path, "links.csv", state=False)), "--strict-fields"]
    )
    err = capfd.readouterr().err
    assert code == 1
    assert "unknown CSV column 'Sequnce' (did you mean 'sequence'?)" in err
    lines = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    by_line = {r["line"]: r for r in map(orjson.loads, lines)}
    assert by_line[2]["status"] == "failed" and by_line[3]["status"] == "succeeded"
