"""The Python API (issue 17): the same job from a script, a worker thread, a running event loop
and a loop's executor gives the same results; stops raise the exceptions a caller catches;
the public names are pinned; rows as inputs. The docs' examples and mypy: test_python_api_docs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from sandbox_process import running_sandbox_process

import bulksync

ROOT = Path(__file__).resolve().parents[1]
LINKS = 12
BAD_LINE = 5  # unreadable JSON: a failed result, not an exception


def write_job(folder: Path, limits: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(LINKS)]
    lines[BAD_LINE - 1] = b'{"from": "doc", "to": '
    (folder / "links.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    path = folder / "job.toml"
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


def statuses(report: bulksync.RunReport) -> list[tuple[int, str | None, str]]:
    return sorted((item["line"], item["key"], item["status"]) for item in report.items())


EXPECTED = sorted(
    (line, None if line == BAD_LINE else f"doc->d{line - 1}:t", "failed")
    if line == BAD_LINE
    else (line, f"doc->d{line - 1}:t", "succeeded")
    for line in range(1, LINKS + 1)
)

SCRIPT = """\
import sys

import orjson

import bulksync

report = bulksync.Job.from_toml(sys.argv[1]).run()
rows = sorted((item["line"], item["key"], item["status"]) for item in report.items())
print(orjson.dumps({"exit_code": report.exit_code, "rows": rows}).decode())
"""


def run_as_script(job: Path) -> tuple[int, list[tuple[int, str | None, str]]]:
    folder = job.parent
    script = folder / "script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(job)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout.strip().splitlines()[-1])
    return out["exit_code"], sorted((line, key, status) for line, key, status in out["rows"])


def run_in_thread(path: Path) -> bulksync.RunReport:
    job = bulksync.Job.from_toml(path)
    reports: list[bulksync.RunReport] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            reports.append(job.run())
        except BaseException as exc:  # the thread's failure, shown by the test
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert errors == []
    return reports[0]


async def test_the_same_job_gives_the_same_results_wherever_it_runs(tmp_path: Path) -> None:
    assert asyncio.get_running_loop().is_running()
    script_code, script_rows = run_as_script(write_job(tmp_path / "script"))
    threaded = run_in_thread(write_job(tmp_path / "thread"))
    in_loop = await bulksync.Job.from_toml(write_job(tmp_path / "loop")).arun()
    sync_job = bulksync.Job.from_toml(write_job(tmp_path / "executor"))
    executor = await asyncio.get_running_loop().run_in_executor(None, sync_job.run)
    # A notebook cell: the sync call straight from inside the running loop.
    notebook = bulksync.Job.from_toml(write_job(tmp_path / "notebook")).run()

    assert script_rows == EXPECTED
    for report in (threaded, in_loop, executor, notebook):
        assert statuses(report) == EXPECTED
        assert report.exit_code == script_code == 1  # a failed item: exit 1, no exception
        assert (report.total, report.succeeded, report.failed) == (LINKS, LINKS - 1, 1)
        assert report.stopped is None and not report.interrupted and not report.ok


QUABLE_TOKEN_ENV = "PYAPI_TEST_QUABLE_TOKEN"


def write_quable_job(folder: Path, url: str) -> Path:
    """Assets by remotePath on the sandbox; each folder its own ids (one sandbox for all)."""
    folder.mkdir(parents=True)
    rows = [
        orjson.dumps({"id": f"{folder.name}-{i}", "remotePath": f"https://img.example.com/{i}.jpg"})
        for i in range(LINKS)
    ]
    rows[BAD_LINE - 1] = b'{"id": '
    (folder / "assets.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    path = folder / "job.toml"
    path.write_text(
        f"""
[target]
kind = "quable"
base_url = "{url}"
token_env = "{QUABLE_TOKEN_ENV}"
[inputs]
assets = "assets.jsonl"
[limits]
rate = [[100000, 1]]
concurrency = 4
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    return path


def by_line(rows: list[tuple[int, str | None, str]], folder: str) -> list[tuple[int, str, str]]:
    return [(line, (key or "").replace(folder, "*"), status) for line, key, status in rows]


async def test_the_same_job_on_the_sandbox_gives_the_same_results_wherever_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(QUABLE_TOKEN_ENV, "sandbox-token")
    flags = ("--quable-rate-limit-windows", "off", "--quable-latency-fixed-ms", "5")
    with running_sandbox_process(*flags, env=os.environ) as url:
        code, rows = run_as_script(write_quable_job(tmp_path / "script", url))
        seen = {"script": by_line(rows, "script")}
        threaded = run_in_thread(write_quable_job(tmp_path / "thread", url))
        seen["thread"] = by_line(statuses(threaded), "thread")
        in_loop = await bulksync.Job.from_toml(write_quable_job(tmp_path / "loop", url)).arun()
        seen["loop"] = by_line(statuses(in_loop), "loop")
        job = bulksync.Job.from_toml(write_quable_job(tmp_path / "executor", url))
        executor = await asyncio.get_running_loop().run_in_executor(None, job.run)
        seen["executor"] = by_line(statuses(executor), "executor")
    expected = [
        (line, "" if line == BAD_LINE else f"*-{line - 1}", status) for line, _, status in EXPECTED
    ]
    assert seen == {mode: expected for mode in seen}
    assert code == 1
    for report in (threaded, in_loop, executor):
        assert report.exit_code == 1 and report.summary["requests"] >= LINKS - 1


def test_no_signal_handler_is_left_behind_on_the_main_thread(tmp_path: Path) -> None:
    import signal

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    report = bulksync.Job.from_toml(write_job(tmp_path)).run()
    assert statuses(report) == EXPECTED
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_job_from_tables_is_the_toml_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_job(tmp_path)
    monkeypatch.chdir(tmp_path)
    job = bulksync.Job(
        target={"kind": "fake"},
        inputs={"links": "links.jsonl"},
        output={"results": "out/results.jsonl", "progress": False},
    )
    assert job.config.inputs.links == tmp_path / "links.jsonl"
    assert statuses(job.run()) == EXPECTED
    again = bulksync.Job(job.config).run()  # the state remembers: nothing to push again
    assert (again.skipped, again.failed) == (LINKS - 1, 1)


def test_overrides_apply_like_the_command_line_flags(tmp_path: Path) -> None:
    job = bulksync.Job.from_toml(write_job(tmp_path), limits={"concurrency": 2})
    assert job.config.limits.concurrency == 2
    with pytest.raises(bulksync.ConfigError, match="concurrency"):
        bulksync.Job.from_toml(write_job(tmp_path), limits={"concurrency": "many"})
    with pytest.raises(TypeError):
        bulksync.Job(job.config, limits={"concurrency": 2})


def test_a_bad_config_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(bulksync.ConfigError):
        bulksync.Job(target={"kind": "no-such-target"}, inputs={"links": "x.jsonl"})
    with pytest.raises(bulksync.ConfigError, match="cannot read config"):
        bulksync.Job.from_toml(tmp_path / "missing.toml")


def test_a_used_up_quota_raises_after_every_line_has_its_result(tmp_path: Path) -> None:
    job = bulksync.Job.from_toml(write_job(tmp_path), limits={"rate": [[3, 86400]]})
    with pytest.raises(bulksync.QuotaExhausted):
        job.run()
    raw = (tmp_path / "out" / "results.jsonl").read_bytes()
    lines = [orjson.loads(x) for x in raw.splitlines()]
    assert sorted(r["line"] for r in lines) == list(range(1, LINKS + 1))
    # Asked not to raise: the same stop, as the report says it.
    report = job.run(raise_on_stop=False)
    assert isinstance(report.stopped, bulksync.QuotaExhausted)
    assert report.exit_code == 6 and report.summary["quota"]["limit"] == 3
    assert sorted(item["line"] for item in report.items()) == list(range(1, LINKS + 1))


async def test_a_stop_raises_from_arun_too(tmp_path: Path) -> None:
    job = bulksync.Job.from_toml(write_job(tmp_path), limits={"rate": [[3, 86400]]})
    with pytest.raises(bulksync.QuotaExhausted):
        await job.arun()


def test_the_public_names_are_pinned() -> None:
    assert bulksync.__all__ == [
        "AssetRecord",
        "AuthError",
        "BadRecord",
        "BulksyncError",
        "Client",
        "Config",
        "ConfigError",
        "Connector",
        "Done",
        "Engine",
        "EngineOptions",
        "ErrorClass",
        "ErrorInfo",
        "Failed",
        "FilePart",
        "HttpRequest",
        "HttpResponse",
        "InputFileError",
        "ItemResult",
        "Job",
        "LinkRecord",
        "Origin",
        "QuotaExhausted",
        "RateBudget",
        "RequestFailed",
        "ResultStream",
        "RetryPolicy",
        "RunReport",
        "Skipped",
        "Stage",
        "TargetUnreachable",
        "TransportError",
        "__version__",
    ]
    for name in bulksync.__all__:
        assert hasattr(bulksync, name), name
    for error in ("AuthError", "ConfigError", "TargetUnreachable", "QuotaExhausted"):
        assert issubclass(getattr(bulksync, error), bulksync.BulksyncError)
        # A traceback names it as the caller imports it.
        assert f"{getattr(bulksync, error).__module__}.{error}" == f"bulksync.{error}"


def test_the_connector_spi_job_stays_in_the_spi() -> None:
    from bulksync.spi import Job as EngineJob

    assert EngineJob is not bulksync.Job
    assert bulksync.Job.__module__ == "bulksync.app._api"


def link_rows() -> Iterator[object]:
    for i in range(LINKS):
        if i == BAD_LINE - 1:
            yield {"from": "doc", "to": ""}  # no type, empty target: fails its own line
        elif i == BAD_LINE:
            yield ["not", "a", "dict"]
        else:
            yield {"from": "doc", "to": f"d{i}", "type": "t"}


def check_row_results(report: bulksync.RunReport) -> None:
    rows = {item["line"]: item for item in report.items()}
    assert sorted(rows) == list(range(1, LINKS + 1))  # row i is line i + 1, each once
    failed = sorted(line for line, item in rows.items() if item["status"] == "failed")
    assert failed == [BAD_LINE, BAD_LINE + 1]
    assert rows[1]["key"] == "doc->d0:t" and rows[LINKS]["key"] == f"doc->d{LINKS - 1}:t"
    assert (report.succeeded, report.failed) == (LINKS - 2, 2)


def test_rows_from_a_generator_are_checked_like_file_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = bulksync.Job(target={"kind": "fake"}, output={"progress": False})
    with pytest.raises(bulksync.ConfigError, match="no input"):
        job.run()
    check_row_results(job.run(links=link_rows()))  # type: ignore[arg-type]
    # A path in place of the config's input, as --links does.
    write_job(tmp_path / "files")
    path = tmp_path / "files" / "links.jsonl"
    again = list(job.run(links=path).items())
    assert sorted(item["line"] for item in again) == list(range(1, LINKS + 1))
    assert {item["source"] for item in again} == {str(path)}
    assert [item["line"] for item in again if item["status"] == "failed"] == [BAD_LINE]


async def test_rows_from_an_async_generator_in_a_running_loop(tmp_path: Path) -> None:
    async def rows() -> AsyncIterator[object]:
        for row in link_rows():
            await asyncio.sleep(0)
            yield row

    job = bulksync.Job.from_toml(write_job(tmp_path))
    check_row_results(await job.arun(links=rows()))  # type: ignore[arg-type]


def test_refused_credentials_raise_auth_error_or_report_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAPI_PROPELLER_ID", "sandbox")
    monkeypatch.setenv("PYAPI_PROPELLER_SECRET", "not-the-secret")
    rows = [{"from": {"class": "product", "id": 1}, "to": {"class": "product", "id": 2}}]
    with running_sandbox_process(env=os.environ) as url:
        job = bulksync.Job(
            target={
                "kind": "propeller",
                "base_url": f"{url}/v2",
                "client_id_env": "PYAPI_PROPELLER_ID",
                "client_secret_env": "PYAPI_PROPELLER_SECRET",
            },
            output={"results": str(tmp_path / "out" / "results.jsonl"), "progress": False},
            propeller={"subtype": "bulksync"},
        )
        with pytest.raises(bulksync.AuthError) as raised:
            job.run(links=[{**row, "type": "related"} for row in rows])
        report = job.run(links=[{**row, "type": "related"} for row in rows], raise_on_stop=False)
    assert "not-the-secret" not in str(raised.value)
    # As the CLI's exit 3: the login fails before the first item (fail fast), none is sent.
    assert report.exit_code == 3 and isinstance(report.stopped, bulksync.AuthError)
    assert report.summary["requests"] >= 1 and report.succeeded == 0
