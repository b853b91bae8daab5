"""`bulksync report`: the human view (counts per kind and action, failures grouped by cause),
`--json` (the bulk response), `--html` plumbing, and a clear line for what is no results file."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.app.cli import main
from bulksync.sandbox import QuableSettings, SandboxSettings, running_sandbox

TOKEN_ENV = "REPORT_TEST_TOKEN"


@contextmanager
def sandbox_in_thread() -> Iterator[str]:
    """A sandbox on 127.0.0.1 served by its own event loop, so main() can run here as a user
    runs it (main() starts an event loop of its own)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        try:
            settings = SandboxSettings(quable=QuableSettings(seed_documents=10))
            async with running_sandbox(settings) as sandbox:
                box["url"], box["stop"] = sandbox.url, asyncio.Event()
                box["loop"] = asyncio.get_running_loop()
                ready.set()
                await box["stop"].wait()
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(60)
    assert "url" in box, "the sandbox did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(60)


def link(origin: str, target: str) -> str:
    return orjson.dumps({"from": origin, "to": target, "type": "t"}).decode()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def quable_job(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        f'[target]\nkind = "quable"\nbase_url = "{url}"\nallow_http = true\n'
        f'token_env = "{TOKEN_ENV}"\n[inputs]\nlinks = "links.jsonl"\n'
        "[limits]\nrate = [[100000, 1]]\n"
        '[state]\npath = "state.db"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


def fake_job(tmp_path: Path, fake: str = "") -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        "[limits]\nconcurrency = 4\nmax_elapsed_s = 30\n"
        '[output]\nresults = "out/results.jsonl"\nprogress = false\n'
        f"[fake]\n{fake}\n",
        encoding="utf-8",
    )
    return config


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def action_line(view: str, kind: str) -> dict[str, int]:
    """``link  created 1,200  exists 30`` -> {"created": 1200, "exists": 30}."""
    (line,) = [row for row in view.splitlines() if row.split()[:1] == [kind]]
    cells = re.findall(r"([a-z][a-z -]*?) ([\d,]+)", line[len(kind) :])
    return {name.strip(): int(count.replace(",", "")) for name, count in cells}


def test_a_sandbox_resync_is_counted_per_action_with_its_failure_grouped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "sandbox-token")
    links = [link("doc-00001", f"doc-0000{i}") for i in range(2, 6)]
    links.append(link("doc-00001", "doc-late"))  # its target does not exist: fails each run
    write_lines(tmp_path / "links.jsonl", links)
    with sandbox_in_thread() as url:
        config = quable_job(tmp_path, url)
        assert main(["run", "--config", str(config)]) == 1
        capsys.readouterr()
        first = report(capsys, str(tmp_path / "results.jsonl"))
        assert action_line(first, "link") == {"created": 4, "failed": 1}

        write_lines(tmp_path / "links.jsonl", [*links, link("doc-00006", "doc-00007")])
        assert main(["run", "--config", str(config)]) == 1
        capsys.readouterr()
        second = report(capsys, str(tmp_path / "results.jsonl"))
        assert action_line(second, "link") == {"created": 1, "unchanged": 4, "failed": 1}

        assert main(["run", "--config", str(config), "--no-state"]) == 1
        capsys.readouterr()
        third = report(capsys, str(tmp_path / "results.jsonl"))
        assert action_line(third, "link") == {"exists": 5, "failed": 1}
    assert "total 6  succeeded 5  skipped 0  failed 1" in third
    assert "status   Completed" in third  # from the summary beside the results
    assert re.search(r"requests \d+  retries 0  429s 0", third)
    (cause,) = [row for row in third.splitlines() if row.startswith("  ") and "1  " in row[:6]]
    (example,) = [row for row in third.splitlines() if ":5  doc-00001->doc-late:t" in row]
    assert "links.jsonl:5" in example and "failures  1 in 1 group" in third
    assert cause.split()[0] == "1"


def test_a_fake_run_shows_totals_and_groups_its_failures_by_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [link("a", f"b{i}") for i in range(40)] + ["not json", '{"from": "a"}']
    write_lines(tmp_path / "links.jsonl", lines)
    assert main(["run", "--config", str(fake_job(tmp_path, "permanent_rate = 0.25"))]) == 1
    capsys.readouterr()
    results = tmp_path / "out" / "results.jsonl"
    items = [orjson.loads(raw) for raw in results.read_bytes().splitlines()]
    rejected = sum(1 for i in items if i["status"] == "failed" and i["error"]["type"] == "HTTP422")
    assert rejected > 3  # so its group shows 3 examples and "... N more"
    failed = sum(1 for i in items if i["status"] == "failed")

    view = report(capsys, str(results))
    assert action_line(view, "link") == {"succeeded": 42 - failed, "failed": failed}
    assert f"total 42  succeeded {42 - failed}  skipped 0  failed {failed}" in view
    assert f"failures  {failed} in 3 groups" in view
    groups = _groups(view)
    assert [(count, cause.split(":")[0]) for count, cause, _ in groups] == [
        (rejected, "HTTP422"),
        (1, "InvalidInput"),
        (1, "InvalidInput"),
    ]
    assert all(len(examples) <= 3 for _, _, examples in groups)
    count, _, examples = groups[0]
    assert len(examples) == 3 and f"... {count - 3} more" in view
    for example in examples:  # source:line key message
        where, key, message = example.split("  ", 2)
        assert re.fullmatch(r".*links\.jsonl:\d+", where) and key.startswith("a->b")
        assert "rejected by the fake server" in message
    # A reader's message names its source:line already: it is not shown twice.
    assert any(re.fullmatch(r".*links\.jsonl:42  missing field 'to'", e) for e in groups[2][2])

    only_failed = report(capsys, str(results), "--failed")
    assert "total 42" not in only_failed and f"failures  {failed} in 3 groups" in only_failed


def _groups(view: str) -> list[tuple[int, str, list[str]]]:
    """The failures section: (count, cause, example lines) per group."""
    groups: list[tuple[int, str, list[str]]] = []
    section = view.split("failures  ", 1)[1].splitlines()[1:]
    for row in section:
        head = re.fullmatch(r"  \s*(\d[\d,]*)  (.+)", row)
        if head and not row.startswith("      "):
            groups.append((int(head[1].replace(",", "")), head[2], []))
        elif row.strip() and not row.strip().startswith("... "):
            groups[-1][2].append(row.strip())
    return groups


def crafted(line: int, kind: str, message: str, key: str | None = None) -> dict[str, Any]:
    return {
        "kind": "asset",
        "source": "assets.csv",
        "line": line,
        "key": key or f"sku-{line}",
        "status": "failed",
        "success": False,
        "remote_id": None,
        "error": {"type": kind, "message": message},
        "attempts": 1,
    }


def test_crafted_results_group_by_masked_message_with_three_examples_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [crafted(n, "HTTP404", f"asset 'sku-{n}' not found (id {n})") for n in range(2, 12)]
    items += [crafted(20 + n, "HTTP500", "server error\n<html>\nboom</html>") for n in range(2)]
    items += [
        {"kind": "asset", "line": 30, "status": "succeeded", "action": "created"},
        {"kind": "asset", "line": 31, "status": "succeeded", "action": "updated"},
        {"kind": "asset", "line": 32, "status": "succeeded", "action": "created"},
        {"kind": "link", "line": 2, "status": "skipped", "reason": "unchanged"},
        {"kind": "link", "line": 3, "status": "skipped", "reason": "dependency failed: asset 'x'"},
        {"kind": "link", "source": "state", "line": 0, "status": "succeeded", "action": "deleted"},
    ]
    results = tmp_path / "results.jsonl"
    results.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))

    view = report(capsys, str(results))
    assert action_line(view, "asset") == {"created": 2, "updated": 1, "failed": 12}
    assert action_line(view, "link") == {"deleted": 1, "unchanged": 1, "dependency failed": 1}
    assert "failures  12 in 2 groups" in view
    groups = _groups(view)
    assert [(count, cause) for count, cause, _ in groups] == [
        (10, "HTTP404: asset '…' not found (id N)"),
        (2, "HTTP500: server error <html> boom</html>"),  # a multi-line answer on one line
    ]
    assert groups[0][2] == [
        f"assets.csv:{n}  sku-{n}  asset 'sku-{n}' not found (id {n})" for n in (2, 3, 4)
    ]
    assert len(groups[1][2]) == 2 and "... 7 more" in view
    assert "results  " in view and "status" not in view  # no summary beside: none shown


def test_json_is_the_bulk_response_and_a_run_folder_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(tmp_path / "links.jsonl", [link("a", "b"), "not json", link("a", "c")])
    assert main(["run", "--config", str(fake_job(tmp_path))]) == 1
    capsys.readouterr()
    results = tmp_path / "out" / "results.jsonl"
    lines = [orjson.loads(raw) for raw in results.read_bytes().splitlines()]
    bulk = orjson.loads(report(capsys, str(results), "--json"))
    assert bulk == {"data": lines, "messages": ["Completed"], "total": 3}
    failed = orjson.loads(report(capsys, str(results), "--json", "--failed"))
    (bad,) = [item for item in lines if item["status"] == "failed"]
    assert failed == {"data": [bad], "messages": ["Completed"], "total": 1}

    # A run folder holds results.jsonl and summary.json (issue 15's run record).
    run = tmp_path / "runs" / "20260101T000000Z-abcd"
    run.mkdir(parents=True)
    (run / "results.jsonl").write_bytes(results.read_bytes())
    (run / "summary.json").write_bytes(orjson.dumps({"messages": ["Interrupted"], "retries": 2}))
    assert orjson.loads(report(capsys, str(run), "--json"))["messages"] == ["Interrupted"]
    view = report(capsys, str(run))
    assert "status   Interrupted" in view and "retries 2" in view


def test_html_without_the_renderer_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_bytes(orjson.dumps(crafted(2, "E", "m")) + b"\n")
    (run / "summary.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "bulksync.app._html_report", None)  # import fails
    for argv in (["report", str(run), "--html"], ["report", "--html", str(run)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        [line] = captured.err.strip().splitlines()
        assert "HTML report is not available" in line and captured.out == ""


def test_html_hands_the_run_folder_and_the_output_to_the_renderer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    calls: list[tuple[Path, Path]] = []

    def write_report_html(run_dir: Path, out: Path) -> Path:
        calls.append((run_dir, out))
        out.write_text("<html></html>")
        return out

    module = types.ModuleType("bulksync.app._html_report")
    module.write_report_html = write_report_html  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bulksync.app._html_report", module)
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "results.jsonl").write_bytes(orjson.dumps(crafted(2, "E", "m")) + b"\n")
    (run / "summary.json").write_text("{}")
    (tmp_path / "results.jsonl").symlink_to(run / "results.jsonl")  # the configured path

    assert main(["report", str(tmp_path / "results.jsonl"), "--html"]) == 0
    assert main(["report", str(run), "--html", str(tmp_path / "x.html")]) == 0
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "res.jsonl").write_bytes((run / "results.jsonl").read_bytes())
    assert main(["report", str(loose / "res.jsonl"), "--html"]) == 0
    assert calls == [
        (run, run / "report.html"),
        (run, tmp_path / "x.html"),
        (loose, loose / "res.report.html"),  # no run folder: beside the results
    ]
    assert f"report: {run / 'report.html'}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("links.csv", b"from,to,type\na,b,t\n", "line 1 is not a JSON line"),
        ("links.jsonl", b'{"from": "a", "to": "b", "type": "t"}\n', "line 1 has no status"),
        ("odd.jsonl", b'{"status": "done"}\n', "line 1 has an unknown status"),
        ("list.jsonl", b"[1, 2]\n", "line 1 is not a JSON object"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file"),
        ("latin1.jsonl", b'{"status": "caf\xe9"}\n', "line 1 is not UTF-8 text"),
        ("results.summary.json", b'{\n  "total": 3\n}\n', "line 1 is not a JSON line"),
        ("empty.jsonl", b"", "is empty and has no summary beside it"),
        ("blank.jsonl", b"\n\n", "is empty and has no summary beside it"),
    ],
)
def test_a_file_that_is_no_results_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, says: str
) -> None:
    (tmp_path / name).write_bytes(content)
    for view in ([], ["--json"], ["--failed"]):
        assert main(["report", str(tmp_path / name), *view]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # nothing half-written before the error
        [line] = captured.err.strip().splitlines()
        assert line.startswith("bulksync: ") and says in line and name in line


def test_missing_files_and_folders_that_are_no_run_folder_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "folder").mkdir()
    for argv, says in [
        ([str(tmp_path / "nope.jsonl")], "results file not found"),
        ([str(tmp_path / "folder")], "is a folder with no results.jsonl"),
        ([str(tmp_path / "folder"), "--json"], "is a folder with no results.jsonl"),
        (["/dev/null"], "is not a regular file"),
        ([], "report needs a results file or a run folder"),
    ]:
        assert main(["report", *argv]) == 2, argv
        [line] = capsys.readouterr().err.strip().splitlines()
        assert says in line


def test_an_empty_results_file_with_its_summary_is_a_run_of_no_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(tmp_path / "links.jsonl", [])
    assert main(["run", "--config", str(fake_job(tmp_path))]) == 0
    capsys.readouterr()
    view = report(capsys, str(tmp_path / "out" / "results.jsonl"))
    assert "total 0" in view and "(no items)" in view and "no failures" in view


def test_completion_scripts_name_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    commands = ("run", "retry-failed", "report", "demo", "config-schema", "completion")
    assert main(["completion", "bash"]) == 0
    bash = capsys.readouterr().out
    for command in commands:
        assert re.search(rf"\b{re.escape(command)}\b", bash), command
    assert "--html" in bash and "--json" in bash
    checked = subprocess.run(["bash", "-n"], input=bash, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr

    assert main(["completion", "zsh"]) == 0
    zsh = capsys.readouterr().out
    assert zsh.strip() and all(command in zsh for command in commands)
    zsh_bin = _which("zsh")
    if zsh_bin is None:
        pytest.skip("zsh is not installed: its syntax is not checked")
    checked = subprocess.run([zsh_bin, "-n"], input=zsh, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr


def _which(program: str) -> str | None:
    import shutil

    return shutil.which(program)
