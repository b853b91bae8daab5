"""`bulksync bench`: the ramp finds the knee of a sandbox that degrades above a given rate,
and --writes leaves no synthetic object behind, after Ctrl-C too (checked in the sandbox's
export, on the server's side)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sandbox_process import running_sandbox_process

from bulksync.app._bench_ramp import (
    RampOptions,
    StageTally,
    judge,
    knee,
    knee_line,
    p95_limit,
    stage_rates,
)
from bulksync.app.cli import main
from bulksync.sandbox import LatencySettings
from bulksync.sandbox._load import LoadMeter

PREFIX = "bulksync-bench-"


def _bench(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any]]:
    code = main(["bench", "--sandbox", "--json", *flags])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1])


def test_the_ramp_finds_the_knee_of_a_sandbox_degrading_above_40_per_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = _bench(
        capsys,
        *("--start", "10", "--ceiling", "160", "--stage-seconds", "1.5"),
        # An absolute limit: 40 req/s more than 40 add 400 ms, and a busy machine's hiccups
        # stay well below it (the relative default is tested on its own, below).
        *("--max-p95-ms", "200", "--sandbox-degrade-above", "40", "--runs-dir", str(tmp_path)),
    )
    assert code == 0
    offered = [stage["offered_rps"] for stage in result["stages"]]
    assert offered[:3] == [10, 20, 40]
    assert result["knee_rps"] in (20, 40, 80)  # within one stage of 40
    last = result["stages"][-1]
    assert last["held"] is False and last["reason"].startswith("p95")  # it slowed: it stopped
    assert last["offered_rps"] == offered[-1] > result["knee_rps"]
    assert all(stage["requests"] > 0 for stage in result["stages"])
    # The same run folder as a sync's: the summary, the timeline, the report.
    run = Path(result["run"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "bench" and summary["bench"]["knee_rps"] == result["knee_rps"]
    assert summary["requests"] >= sum(stage["requests"] for stage in result["stages"])
    assert (run / "timeline.jsonl").read_text().count("\n") >= 1
    report = (run / "report.html").read_text()
    assert "Bench stages" in report and "held · the knee" in report
    assert "stage 1: 10 req/s" in report  # each stage is a stage of the timeline's chart


def test_a_rate_limit_is_a_knee_too_its_429s_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = _bench(
        capsys,
        *("--start", "10", "--ceiling", "80", "--stage-seconds", "1.5"),
        *("--sandbox-set", "quable.rate_limit.windows=30/1", "--runs-dir", str(tmp_path)),
    )
    assert code == 0
    assert result["knee_rps"] in (10, 20)  # 30 a second: 40 cannot hold
    last = result["stages"][-1]
    assert last["held"] is False and last["throttled"] > 0
    assert last["statuses"]["429"] == last["throttled"]


def test_every_stage_held_up_to_the_ceiling_without_degrading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = _bench(
        capsys, "--start", "10", "--ceiling", "30", "--stage-seconds", "0.5", "--runs-dir",
        str(tmp_path),
    )  # fmt: skip
    assert code == 0
    assert [s["offered_rps"] for s in result["stages"]] == [10, 20, 30]
    assert result["knee_rps"] == 30 and all(s["held"] for s in result["stages"])


def test_writes_leave_nothing_behind_even_when_answers_are_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fifth of the writes are applied and their answer lost: those creates' fate is unknown
    # to the bench, which must delete them at the end all the same.
    code, result = _bench(
        capsys,
        *("--writes", "--start", "20", "--ceiling", "40", "--stage-seconds", "1"),
        *("--max-error-share", "1", "--runs-dir", str(tmp_path)),
        *("--sandbox-set", "faults.drop_after_write_rate=0.2", "--sandbox-set", "faults.seed=3"),
    )
    synthetic = result["synthetic"]
    assert synthetic["created"] > 0 and synthetic["left"] == []
    assert sum(s["errors"] for s in result["stages"]) > 0  # the lost answers did happen
    assert result["sandbox_leftovers"] == []
    assert code == 0


def _export_ids(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/_sandbox/export", timeout=10) as answer:
        export = json.loads(answer.read())
    return [a["id"] for a in export["quable"]["assets"] if str(a.get("id")).startswith(PREFIX)]


def test_writes_interrupted_by_sigint_mid_ramp_leave_nothing_behind(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_TOKEN": "sandbox-token"}
    flags = ("--quable-rate-limit-windows", "off", "--quable-latency-fixed-ms", "100")
    with running_sandbox_process(*flags, env=env) as url:
        job = tmp_path / "job.toml"
        job.write_text(
            f'[target]\nkind = "quable"\nbase_url = "{url}"\ntoken_env = "BENCH_TOKEN"\n'
            f'[output]\nruns_dir = "{tmp_path / "runs"}"\n'
        )
        command = [sys.executable, "-m", "bulksync", "bench", "--config", str(job), "--writes"]
        command += ["--start", "40", "--stage-seconds", "30", "--json"]
        bench = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not _export_ids(url) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _export_ids(url), "the bench created nothing"
            time.sleep(0.5)  # mid-stage: creates and deletes in flight
            bench.send_signal(signal.SIGINT)
            out, err = bench.communicate(timeout=60)
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.wait(timeout=10)
        assert bench.returncode == 130, err
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["interrupted"] is True and result["synthetic"]["left"] == []
        synthetic = result["synthetic"]
        assert synthetic["created"] > 0 and synthetic["deleted"] == synthetic["created"]
        last = result["stages"][-1]  # interrupted: its rates are over the time it ran
        assert last["held"] is None and last["requests"] > 0
        assert 0 < last["elapsed_s"] < 30 and last["sent_rps"] > 0
        assert _export_ids(url) == []
        assert b"Traceback" not in err


def test_writes_against_the_fake_with_transient_faults_clean_up_what_may_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fake has no lookup: a delete of unknown fate is sent again (deletes are idempotent).
    job = tmp_path / "job.toml"
    job.write_text('[target]\nkind = "fake"\n[fake]\ntransient_rate = 0.2\nseed = 5\n')
    flags = ["--writes", "--start", "20", "--ceiling", "40", "--stage-seconds", "0.5"]
    flags += ["--max-error-share", "1", "--json", "--runs-dir", str(tmp_path)]
    assert main(["bench", "--config", str(job), *flags]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["synthetic"]["created"] > 0 and result["synthetic"]["left"] == []
    assert sum(s["errors"] + s["throttled"] for s in result["stages"]) > 0


def test_reads_against_the_fake_count_every_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[target]\nkind = "fake"\n')
    flags = ["--start", "20", "--ceiling", "20", "--stage-seconds", "0.5", "--json"]
    assert main(["bench", "--config", str(job), *flags, "--runs-dir", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (stage,) = result["stages"]
    assert stage["statuses"] == {"200": stage["requests"]} and stage["requests"] >= 5
    summary = json.loads((Path(result["run"]) / "summary.json").read_text())
    assert summary["requests"] == stage["requests"]  # the fake has no preflight, no login


def test_writes_on_a_target_that_declares_no_synthetic_object_stop_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[target]\nkind = "propeller"\nbase_url = "https://api.example.com/v2"\n')
    assert main(["bench", "--config", str(job), "--writes"]) == 2
    err = capsys.readouterr().err
    refusal = "bulksync: Propeller declares no synthetic object: bench --writes cannot run"
    assert err.strip() == refusal


def test_stage_rates_multiply_up_to_the_ceiling_and_offer_it() -> None:
    assert stage_rates(RampOptions(start=5, factor=2, ceiling=50)) == [5, 10, 20, 40, 50]
    assert stage_rates(RampOptions(start=10, factor=2, ceiling=80)) == [10, 20, 40, 80]
    assert len(stage_rates(RampOptions(start=1, factor=1.01, ceiling=1e9))) == 20


def _stage(rate: float, p95_ms: float, errors: int = 0, throttled: int = 0) -> StageTally:
    tally = StageTally(rate, 1.0)
    for _ in range(100 - errors - throttled):
        tally.answered(200, True, p95_ms / 1000)
    for _ in range(errors):
        tally.failed("timeout")
    for _ in range(throttled):
        tally.answered(429, False, 0.001)
    tally.granted = 100
    return tally


def test_a_stage_holds_its_latency_and_its_errors_and_the_knee_is_the_last_that_held() -> None:
    options = RampOptions()
    stages = [_stage(5, 20), _stage(10, 40), _stage(20, 200)]
    for stage in stages:
        judge(stage, 60.0, options)
    assert [s.held for s in stages] == [True, True, False]
    assert stages[2].reason is not None and stages[2].reason.startswith("p95")
    assert knee(stages) is stages[1]
    throttled = _stage(40, 20, errors=3, throttled=3)
    judge(throttled, 60.0, options)
    assert throttled.held is False and "429 3.0%" in str(throttled.reason)
    at_the_limit = _stage(40, 20, errors=5)  # 5% is the limit, not past it
    judge(at_the_limit, 60.0, options)
    assert at_the_limit.held is True
    assert knee([_stage(5, 10)]) is None  # never judged (interrupted): no knee
    short = _stage(200, 20)  # 100 requests in a second of 200 req/s: the rate was not offered
    judge(short, 60.0, options)
    assert short.held is False and short.reason == "sent only 100.0 of 200 req/s"


def test_the_default_p95_limit_is_three_times_the_first_stage_and_at_least_50_ms() -> None:
    assert p95_limit(RampOptions(), _stage(5, 40)) == pytest.approx(3 * 40, rel=0.02)
    assert p95_limit(RampOptions(), _stage(5, 2)) == 50
    assert p95_limit(RampOptions(max_p95_ms=500), _stage(5, 40)) == 500
    assert p95_limit(RampOptions(), StageTally(5, 1.0)) is None  # nothing answered


def test_the_sandbox_slows_down_in_proportion_to_the_load_above_its_threshold() -> None:
    latency = LatencySettings(degrade_above_rps=40, degrade_ms_per_rps=10)
    assert latency.degraded_seconds(40) == 0 and latency.degraded_seconds(30) == 0
    assert latency.degraded_seconds(50) == pytest.approx(0.1)
    assert LatencySettings().degraded_seconds(1000) == 0  # off by default
    meter = LoadMeter()
    rates = [meter.arrive(t / 100) for t in range(150)]  # 100 a second for 1.5 s
    assert rates[49] == 50 and rates[-1] == 100


@pytest.mark.parametrize("kind", ["quable", "propeller", "ocapi", "fake"])
def test_every_built_in_target_benchmarks_a_read_by_default(kind: str) -> None:
    from bulksync.app.registry import target_spec

    spec = target_spec(kind)
    assert spec.bench_read is not None
    read = spec.bench_read(spec.options())
    assert read.request.method == "GET" and not read.request.is_write and read.served
    if spec.bench_write is not None:  # what --writes sends: a create, a delete, a GET
        write = spec.bench_write(spec.options())
        ident = "bulksync-bench-x-000001"
        assert write.create(ident).is_write and write.delete(ident).is_write
        assert write.lookup is None or write.lookup(ident).method == "GET"


def test_a_refused_token_stops_the_bench_with_exit_3_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake has no preflight: the first creates go out and are refused (401, even after a
    # fresh login), so they created nothing; the bench never ran: no table, no verdict.
    monkeypatch.setenv("BENCH_FAKE_TOKEN", "not-the-token")
    job = tmp_path / "job.toml"
    job.write_text(
        '[target]\nkind = "fake"\ntoken_env = "BENCH_FAKE_TOKEN"\n'
        '[fake]\nstatic_token = "the-token"\n'
    )
    flags = ["--writes", "--start", "10", "--ceiling", "10", "--stage-seconds", "0.5"]
    code = main(["bench", "--config", str(job), *flags, "--runs-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert err.strip().splitlines()[-1].startswith("bulksync: the target refused the API token")
    assert "Traceback" not in err and "not-the-token" not in err
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["exit_code"] == 3 and summary["bench"]["synthetic"]["created"] == 0
    assert summary["bench"]["synthetic"]["left"] == []  # a 401 create left nothing behind


def test_an_unreachable_target_stops_the_bench_with_exit_4_and_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setenv("BENCH_TOKEN", "sandbox-token")
    with socket.socket() as probe:  # a port of 127.0.0.1 nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job = tmp_path / "job.toml"
    job.write_text(
        f'[target]\nkind = "quable"\nbase_url = "http://127.0.0.1:{port}"\n'
        'token_env = "BENCH_TOKEN"\n'
    )
    code = main(["bench", "--config", str(job), "--runs-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 4 and out == ""
    assert err.strip().startswith("bulksync: cannot connect to 127.0.0.1") and "knee" not in err


def test_refused_creates_are_neither_created_nor_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every create is refused (422, no classification): nothing exists, nothing to delete.
    code, result = _bench(
        capsys,
        *("--writes", "--start", "10", "--ceiling", "10", "--stage-seconds", "0.5"),
        *("--sandbox-set", "quable.require_classification=true", "--runs-dir", str(tmp_path)),
    )
    synthetic = result["synthetic"]
    assert result["stages"][0]["errors"] > 0 and code == 0
    assert synthetic["created"] == synthetic["deleted"] == synthetic["never_created"] == 0
    assert synthetic["left"] == [] and result["sandbox_leftovers"] == []


def test_creates_answered_429_leave_nothing_to_clean_up_and_the_stage_does_not_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = _bench(
        capsys,
        *("--writes", "--start", "10", "--ceiling", "20", "--stage-seconds", "1.5"),
        *("--sandbox-set", "quable.rate_limit.windows=30/2", "--runs-dir", str(tmp_path)),
    )
    synthetic = result["synthetic"]
    assert sum(s["throttled"] for s in result["stages"]) > 0
    assert synthetic["deleted"] == synthetic["created"] > 0 and synthetic["never_created"] == 0
    assert synthetic["left"] == [] and result["sandbox_leftovers"] == [] and code == 0
    assert result["stages"][-1]["held"] is False


def test_a_stage_served_under_90_percent_of_its_rate_does_not_hold() -> None:
    stage = StageTally(100, 1.0)  # all sent, but half served: 429s and a pause held it
    for _ in range(50):
        stage.answered(200, True, 0.02)
    for _ in range(2):
        stage.answered(429, False, 0.001)  # 4%: under the error threshold
    stage.granted, stage.paused_s = 100, 0.4
    judge(stage, 60.0, RampOptions())
    assert stage.held is False
    assert stage.reason == "achieved only 50.0 of 100 req/s (paused 0.4 s after 429s)"


def test_the_knee_line_says_the_bench_was_interrupted() -> None:
    held, cut = _stage(10, 20), _stage(20, 20)
    judge(held, 60.0, RampOptions())
    line = knee_line([held, cut], 60.0, interrupted=True)
    assert line.startswith("knee: 10 req/s") and "interrupted during stage 2" in line
    assert "interrupted during stage 1" in knee_line([cut], None, interrupted=True)
