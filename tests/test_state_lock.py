"""The state lock in one process: refusal naming the holder, release, takeover notes, and a
dry run that reads a state in use."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import orjson
import pytest

from bulksync.app.cli import main
from bulksync.store._state_lock import StateInUse, holder, lock_path
from bulksync.store.state import StateStore


def test_a_second_exclusive_store_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "bulksync-state.sqlite"
    first = StateStore(path, "t", exclusive=True)
    with pytest.raises(StateInUse) as refused:
        StateStore(path, "t", exclusive=True)
    message = str(refused.value)
    assert message.startswith("state bulksync-state.sqlite is in use by pid ")
    assert f"pid {os.getpid()} on host {socket.gethostname()} since " in message
    assert "\n" not in message and refused.value.exit_code == 2
    assert holder(path) is not None and str(os.getpid()) in (holder(path) or "")
    first.close()
    assert holder(path) is None
    assert lock_path(path).read_bytes() == b""  # released: nobody to name
    StateStore(path, "t", exclusive=True).close()  # free again


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.sqlite"
    # What a kill -9 leaves: the file with its holder, no lock (the kernel dropped it).
    stale = {"pid": 999999, "host": socket.gethostname(), "started": 0}
    lock_path(path).write_bytes(orjson.dumps(stale))
    StateStore(path, "t", exclusive=True).close()
    err = capsys.readouterr().err
    assert "pid 999999" in err and "taking over" in err


def test_a_lock_file_from_another_host_is_reported_as_unverifiable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.sqlite"
    other = {"pid": 42, "host": "not-" + socket.gethostname(), "started": 0}
    lock_path(path).write_bytes(orjson.dumps(other))
    StateStore(path, "t", exclusive=True).close()
    err = capsys.readouterr().err
    assert "pid 42 on host not-" in err and "cannot be checked from this host" in err


def test_a_dry_run_reads_a_state_in_use_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "links.jsonl").write_text('{"from": "a", "to": "b", "type": "t"}\n')
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    held = StateStore(tmp_path / "bulksync-state.sqlite", "t", exclusive=True)
    try:
        assert main(["run", "--config", str(config), "--dry-run"]) == 0
        captured = capsys.readouterr()
        assert "is in use by pid" in captured.err and "1 create" in captured.out
        assert main(["run", "--config", str(config)]) == 2
        assert "wait for it or use another [state] path" in capsys.readouterr().err
    finally:
        held.close()
    assert main(["run", "--config", str(config)]) == 0
