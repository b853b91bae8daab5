"""The failures file of a run: the failed items' input lines plus `error`, in a format that
reads back the same (CSV for CSV, CSV for JSONL lines a CSV cell can carry, else JSONL), fed
back as the input to try exactly the failed items again."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.app._failures import FailureInput, write_failures
from bulksync.app.cli import main

REJECTED = 0.3  # share of keys the fake rejects, the same keys in every run


def job(tmp_path: Path, links: str = "links.jsonl", extra: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "{links}"
{extra}
[limits]
concurrency = 4
max_elapsed_s = 30
[output]
results = "out/results.jsonl"
progress = false
[fake]
permanent_rate = {REJECTED}
""",
        encoding="utf-8",
    )
    return path


def link_lines(count: int, **more: Any) -> bytes:
    return b"".join(
        orjson.dumps({"from": f"p{i}", "to": "d", "type": "ref", "attributes": {"n": i}, **more})
        + b"\n"
        for i in range(count)
    )


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def run_folders(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())


def _failed_keys(results: Path) -> set[str]:
    return {r["key"] for r in lines_of(results) if r["status"] == "failed"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_failures_fed_back_retry_exactly_the_failed_items(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / f"links.{fmt}"
    if fmt == "jsonl":
        source.write_bytes(link_lines(60, sequence=3))
    else:
        rows = "".join(f'p{i};d;ref;"{{""n"": {i}}}";x\n' for i in range(60))
        source.write_text("From;to;type;attributes;comment\n" + rows, encoding="utf-8")
    config = job(tmp_path, links=source.name)
    assert main(["run", "--config", str(config)]) == 1
    (first,) = run_folders(tmp_path)
    failed = _failed_keys(first / "results.jsonl")
    assert 5 < len(failed) < 50
    failures = first / "failures.csv"
    with failures.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh, delimiter=";" if fmt == "csv" else ","))
    if fmt == "csv":
        assert table[0] == ["From", "to", "type", "attributes", "comment", "error"]
    else:
        assert table[0] == ["from", "to", "type", "attributes", "sequence", "error"]
    assert len(table) == len(failed) + 1
    assert all("rejected by the fake server" in row[-1] for row in table[1:])
    capsys.readouterr()
    # Fed back as the input: exactly the failed items are tried, with no warning about `error`.
    assert main(["run", "--config", str(config), "--links", str(failures)]) == 1
    assert "error" not in capsys.readouterr().err
    second = next(p for p in run_folders(tmp_path) if p != first)
    retried = lines_of(second / "results.jsonl")
    assert {r["key"] for r in retried} == failed
    assert all(r["status"] == "failed" and r["attempts"] == 1 for r in retried)
    # A failures file of a failures file keeps one error column, the latest error.
    with (second / "failures.csv").open(encoding="utf-8", newline="") as fh:
        again = list(csv.reader(fh, delimiter=";" if fmt == "csv" else ","))
    assert again[0].count("error") == 1 and len(again) == len(failed) + 1


def test_jsonl_lines_that_csv_cannot_carry_go_to_failures_jsonl(tmp_path: Path) -> None:
    # A null and a float have no CSV cell that reads back the same.
    (tmp_path / "links.jsonl").write_bytes(link_lines(40, sequence=None, weight=1.5))
    config = job(tmp_path)
    assert main(["run", "--config", str(config)]) == 1
    (first,) = run_folders(tmp_path)
    assert not (first / "failures.csv").exists()
    copied = lines_of(first / "failures.jsonl")
    assert {r["error"].split(":")[0] for r in copied} == {"HTTP422"}
    assert all(r["weight"] == 1.5 and r["sequence"] is None for r in copied)
    failed = _failed_keys(first / "results.jsonl")
    assert main(["run", "--config", str(config), "--links", str(first / "failures.jsonl")]) == 1
    second = next(p for p in run_folders(tmp_path) if p != first)
    assert {r["key"] for r in lines_of(second / "results.jsonl")} == failed


def test_failures_copy_multi_line_rows_and_name_each_input(tmp_path: Path) -> None:
    """The join by line number: quoted cells over several lines, blank lines, a malformed row."""
    assets = tmp_path / "assets.csv"
    assets.write_text(
        "id,remotePath,attributes\n"
        "a1,https://x.test/1,\n"
        "\n"
        'a2,https://x.test/2,"{""note"": ""two\nlines""}"\n'  # lines 4-5
        "a3,https://x.test/3,\n"  # line 6
        "a4,https://x.test/4\n",  # line 7: too few cells
        encoding="utf-8",
    )
    links = tmp_path / "links.jsonl"
    links.write_bytes(b"\xef\xbb\xbf" + link_lines(3))  # a BOM before the first line
    results = tmp_path / "results.jsonl"

    def failed(source: Path, line: int, kind: str, message: str) -> dict[str, Any]:
        error = {"type": kind, "message": message}
        return {"source": str(source), "line": line, "status": "failed", "error": error}

    lines = [
        failed(assets, 4, "E", "m\nn"),
        {"source": str(assets), "line": 2, "status": "succeeded"},
        failed(assets, 7, "Bad", "x"),
        failed(links, 1, "E", "l1"),
        failed(links, 2, "DuplicateItem", "duplicate of line 1"),
        failed(links, 3, "E", "l3"),
        {"source": "state", "line": 0, "status": "failed", "error": None},
    ]
    results.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    done = write_failures(
        results,
        [FailureInput("asset", assets, True), FailureInput("link", links, False)],
        lambda kind, suffix: tmp_path / f"failures-{kind}s{suffix}",
        delimiter=None,
        shape=None,
        scratch=tmp_path / "scratch.sqlite",
    )
    assert done.files == [tmp_path / "failures-assets.csv", tmp_path / "failures-links.csv"]
    assert done.not_copied == 1  # the prune result has no input line
    assert done.duplicates == 1  # left out, as retry-failed leaves it out
    table = list(csv.reader(io.StringIO((tmp_path / "failures-assets.csv").read_text())))
    assert table == [
        ["id", "remotePath", "attributes", "error"],
        ["a2", "https://x.test/2", '{"note": "two\nlines"}', "E: m n"],
        ["a4", "https://x.test/4", "", "Bad: x"],
    ]
    links_table = list(csv.reader(io.StringIO((tmp_path / "failures-links.csv").read_text())))
    assert [(row[0], row[-1]) for row in links_table[1:]] == [("p0", "E: l1"), ("p2", "E: l3")]
    assert not (tmp_path / "scratch.sqlite").exists()


def test_the_readers_know_the_error_column_even_with_strict_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bulksync.inputs.readers import read_records
    from bulksync.spi._records import BadRecord

    (tmp_path / "l.csv").write_text("from,to,type,error\na,b,t,HTTP422: no\n", encoding="utf-8")
    (tmp_path / "l.jsonl").write_bytes(b'{"from": "a", "to": "b", "type": "t", "error": "x"}\n')
    for name in ("l.csv", "l.jsonl"):
        with read_records(tmp_path / name, "link", strict_fields=True) as stream:
            records = list(stream)
        assert len(records) == 1 and not isinstance(records[0], BadRecord), records
        assert records[0].key == "a->b:t"
    assert capsys.readouterr().err == ""
