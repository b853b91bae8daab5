"""The example target, examples/bulksync-notes: a separate package found through the
``bulksync.targets`` entry point, run by `bulksync run` and held to the conformance suite."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Hashable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
import pytest
from bulksync_notes.sandbox import NotesState, RunningNotes, running_notes

from bulksync.app.cli import main as bulksync_main
from bulksync.spi import TargetSpec
from bulksync.testing import Subject, conformance_tests

TOKEN_ENV = "NOTES_TEST_TOKEN"
[ENTRY] = entry_points(group="bulksync.targets", name="notes")
SPEC = ENTRY.load()


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {"from": f"board-{i % 3}", "to": f"note-{i:04d}", "type": "idea", "sequence": i}
        for i in range(n)
    ]


def held(notes: RunningNotes) -> Sequence[Hashable]:
    return [(p["board"], p["note"], p["label"]) for p in notes.state.pins.values()]


SUBJECT = Subject(
    name="notes",
    server=running_notes,
    url=lambda notes: notes.url,
    tables=lambda root: {
        "target": {"kind": "notes", "base_url": root, "token_env": TOKEN_ENV},
        "notes": {"list_page_size": 2},  # small pages: four boards' listings really page
    },
    rows=rows,
    held=held,
    identity=lambda row: (row["from"], row["to"], row["type"]),
    spec=SPEC,
    env={TOKEN_ENV: "notes-token"},
)

TestNotesConformance = conformance_tests(SUBJECT)


def test_the_entry_point_gives_a_spec_from_outside_bulksync() -> None:
    assert isinstance(SPEC, TargetSpec) and SPEC.name == "notes"
    assert ENTRY.dist is not None and ENTRY.dist.name == "bulksync-notes"
    assert not SPEC.connector.__module__.startswith("bulksync.")  # not a core module


def imports_of(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_example_imports_nothing_of_bulksync_but_the_spi() -> None:
    package = Path(sys.modules[SPEC.connector.__module__].__file__ or "").parent
    modules = {m for f in package.glob("*.py") for m in imports_of(f)}
    core = sorted(m for m in modules if m.startswith("bulksync.") or m == "bulksync")
    assert core and all(m.startswith("bulksync.spi") for m in core), core


class NotesInThread:
    """The sandbox on a loop of its own, so that `bulksync run` can own the test's thread."""

    def __init__(self) -> None:
        self.state = NotesState()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with running_notes(self.state) as notes:
            self.url = notes.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> NotesInThread:
        self._thread.start()
        assert self._ready.wait(10), "the notes sandbox did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def write_job(folder: Path, url: str, lines: list[dict[str, Any]]) -> Path:
    (folder / "pins.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    job = folder / "job.toml"
    job.write_text(
        f"""
[target]
kind = "notes"
base_url = "{url}"
token_env = "{TOKEN_ENV}"
[inputs]
links = "pins.jsonl"
[notes]
list_page_size = 5
[output]
results = "results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return job


def results(folder: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (folder / "results.jsonl").read_bytes().splitlines()]


def test_bulksync_run_pushes_pins_then_prunes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "notes-token")
    lines = rows(7)
    with NotesInThread() as notes:
        job = write_job(tmp_path, notes.url, lines)
        assert bulksync_main(["run", "--config", str(job)]) == 0
        assert {r["status"] for r in results(tmp_path)} == {"succeeded"}
        assert sorted(p["note"] for p in notes.state.pins.values()) == [x["to"] for x in lines]
        # A moved pin is updated in place; the one that left is deleted by --prune.
        moved = [{**lines[0], "sequence": 99}, *lines[1:6]]
        write_job(tmp_path, notes.url, moved)
        code = bulksync_main(["run", "--config", str(job), "--prune", "--max-delete", "1"])
        assert code == 0, capsys.readouterr().err
        pins = {p["note"]: p for p in notes.state.pins.values()}
    assert sorted(pins) == [x["to"] for x in moved]
    assert pins["note-0000"]["position"] == 99
    assert "notes-token" not in (tmp_path / "results.jsonl").read_text(encoding="utf-8")


def test_a_wrong_token_exits_3_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with NotesInThread() as notes:
        job = write_job(tmp_path, notes.url, rows(3))
        assert bulksync_main(["run", "--config", str(job)]) == 3
        assert notes.state.pins == {}
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not-the-token" not in err


def test_the_command_line_in_a_child_process_runs_the_notes_kind(tmp_path: Path) -> None:
    # Only the entry point connects the two: no test-process patching reaches a child.
    with NotesInThread() as notes:
        job = write_job(tmp_path, notes.url, rows(4))
        env = {**os.environ, TOKEN_ENV: "notes-token"}
        command = [sys.executable, "-m", "bulksync", "run", "--config", str(job)]
        done = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert len(notes.state.pins) == 4
