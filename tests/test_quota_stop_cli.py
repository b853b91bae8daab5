"""A used-up quota on the command line (issue 16): exit 6, one line saying when the next request
is possible, one result per input line (the unsent ones "not attempted: quota exhausted"), a
rerun that sends nothing while the quota is used up; --wait-for-quota waits instead."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulksync.app.cli import main


def job(tmp_path: Path, links: int, limits: str = "") -> Path:
    lines = [orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(links)]
    (tmp_path / "links.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    path = tmp_path / "job.toml"
    path.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "links.jsonl"
[limits]
concurrency = 4
{limits}
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return path


def results(tmp_path: Path) -> list[dict[str, object]]:
    raw = (tmp_path / "out" / "results.jsonl").read_bytes()
    return [orjson.loads(line) for line in raw.splitlines()]


def lines_by(lines: list[dict[str, object]], line: int) -> dict[str, object]:
    return next(r for r in lines if r["line"] == line)


def summary(tmp_path: Path) -> dict[str, object]:
    return orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())  # type: ignore[no-any-return]


def test_a_used_up_quota_exits_6_with_one_line_and_every_line_its_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = job(tmp_path, 38)
    with (tmp_path / "links.jsonl").open("ab") as extra:
        extra.write(b'{"from": "doc", "to": \n')  # line 39: unreadable
        extra.write(b'{"from": "doc", "to": "d37", "type": "t"}\n')  # line 40: a duplicate
    code = main(["run", "--config", str(config), "--rate", "10/86400"])
    assert code == 6
    err = capsys.readouterr().err.strip().splitlines()
    quota = [line for line in err if "quota" in line and not line.startswith("bulksync: plan:")]
    assert len(quota) == 1, err
    assert quota[0].startswith("bulksync: quota exhausted: 10 per 24 h used; next request possible")
    lines = results(tmp_path)
    assert sorted(r["line"] for r in lines) == list(range(1, 41))  # type: ignore[type-var]
    sent = [r for r in lines if r["status"] == "succeeded"]
    assert 0 < len(sent) <= 10
    bad, duplicate = lines_by(lines, 39), lines_by(lines, 40)
    assert bad["status"] == "failed" and bad["error"]["type"] != "QuotaExhausted"  # type: ignore[index]
    assert duplicate["error"]["type"] == "DuplicateItem"  # type: ignore[index]
    for r in lines:
        if r["status"] != "succeeded" and r["line"] < 39:  # type: ignore[operator]
            assert r["error"] == {
                "type": "QuotaExhausted",
                "message": "not attempted: quota exhausted",
                "http_status": None,
            }
    first = summary(tmp_path)
    assert first["exit_code"] == 6
    assert first["quota"]["limit"] == 10 and first["quota"]["period_s"] == 86400  # type: ignore[index]
    assert str(first["quota"]["resume_at"]).endswith("Z")  # type: ignore[index]

    # The ledger remembers the day's 10: a rerun sends nothing and stops the same way, what
    # was pushed skipped as unchanged.
    capsys.readouterr()
    code = main(["run", "--config", str(config), "--rate", "10/86400"])
    assert code == 6
    # It says so as it starts, after its plan: the run cannot surprise with an exit 6.
    err = capsys.readouterr().err.splitlines()
    earlier = [line for line in err if line.startswith("bulksync: quota: ")]
    assert earlier == [
        "bulksync: quota: 10 of 10 per 24 h already sent to this target by earlier runs; "
        "0 left in that window"
    ], err
    again = summary(tmp_path)
    assert again["requests"] == 0
    assert again["skipped"] == len(sent) and again["failed"] == 40 - len(sent)
    assert sorted(r["line"] for r in results(tmp_path)) == list(range(1, 41))  # type: ignore[type-var]


def test_wait_for_quota_waits_for_the_window_and_completes(tmp_path: Path) -> None:
    config = job(tmp_path, 15, "max_quota_wait_s = 0.2")
    assert main(["run", "--config", str(config), "--rate", "5/0.6"]) == 6
    assert main(["run", "--config", str(config), "--rate", "5/0.6", "--wait-for-quota"]) == 0
    done = summary(tmp_path)
    # The 10 left needed the window twice: the run paused for it rather than stop.
    assert done["succeeded"] == 10 and done["skipped"] == 5
    assert done["pauses"]["count"] >= 1  # type: ignore[index]


def test_the_wait_for_the_quota_shows_in_the_stats_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = job(tmp_path, 8, "max_quota_wait_s = 0.5")
    argv = ["run", "--config", str(config), "--rate", "5/3", "--wait-for-quota"]
    assert main([*argv, "--stats-interval", "0.2"]) == 0
    err = capsys.readouterr().err
    waiting = [line for line in err.splitlines() if "quota 5 per 3 s used" in line]
    assert waiting, err
    assert "paused" in waiting[0] and "next request at 20" in waiting[0]
