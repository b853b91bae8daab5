"""The Python API's docs (issue 17): the README's examples run against the fake target and
the sandbox, and a consumer type-checks with mypy --strict against the built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
from sandbox_process import running_sandbox_process
from test_python_api import BAD_LINE, LINKS, write_job

ROOT = Path(__file__).resolve().parents[1]


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Use it from Python\n", 1)[1].split("\n## ", 1)[0]
    marker = "<!-- tests/test_python_api_docs.py runs the next python block -->\n```python\n"
    return [block.split("\n```", 1)[0] for block in section.split(marker)[1:]]


NOTEBOOK, AIRFLOW, SQLITE = range(3)


def test_the_readme_has_its_python_examples_marked() -> None:
    examples = readme_examples()
    assert len(examples) == 3
    assert "async for result in results:" in examples[NOTEBOOK]
    assert "@task(" in examples[AIRFLOW] and "sqlite3" in examples[SQLITE]


def run_readme_example(
    folder: Path, which: int, *command: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (folder / "example.py").write_text(readme_examples()[which], encoding="utf-8")
    return subprocess.run(
        [sys.executable, *(command or ["example.py"])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=env,
        check=False,
    )


# A notebook cell: compiled with top-level await, awaited inside a running loop (as IPython does).
AS_A_CELL = """\
import ast, asyncio, sys

code = compile(open("example.py").read(), "cell", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def kernel() -> None:
    cell = eval(code, {"__name__": "__main__"})
    if cell is not None:
        await cell


asyncio.run(kernel())
"""


def test_the_readme_notebook_cell_streams_its_rows_in_a_running_loop(tmp_path: Path) -> None:
    (tmp_path / "kernel.py").write_text(AS_A_CELL, encoding="utf-8")
    done = run_readme_example(tmp_path, NOTEBOOK, "kernel.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000 pushed, 0 unchanged, 0 failed", done.stdout
    again = run_readme_example(tmp_path, NOTEBOOK, "kernel.py")  # the state: nothing again
    assert again.stdout.strip() == "0 pushed, 1000 unchanged, 0 failed", again.stderr
    assert sum(1 for _ in (tmp_path / "out" / "results.jsonl").open("rb")) == 1000


# Airflow is not installed here: what the example relies on is that Airflow calls the decorated
# function on a worker (and fails the task when it raises); the stand-in only lets it import.
AIRFLOW_STAND_IN = """\
def task(*args, **kwargs):
    if args and callable(args[0]):
        return args[0]
    return lambda function: function
"""


def run_the_airflow_task(folder: Path) -> subprocess.CompletedProcess[str]:
    stand_in = folder / "stand-in" / "airflow"
    stand_in.mkdir(parents=True, exist_ok=True)
    (stand_in / "__init__.py").write_text("", encoding="utf-8")
    (stand_in / "decorators.py").write_text(AIRFLOW_STAND_IN, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(stand_in.parent)}
    call = "import example; print(example.nightly_resync())"
    return run_readme_example(folder, AIRFLOW, "-c", call, env=env)


def test_the_readme_airflow_task_resyncs_and_fails_on_failed_items(tmp_path: Path) -> None:
    write_job(tmp_path / "good")
    lines = [orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(LINKS)]
    (tmp_path / "good" / "links.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    done = run_the_airflow_task(tmp_path / "good")
    assert done.returncode == 0, done.stderr
    assert f"{LINKS} pushed, 0 unchanged, 0 failed" in done.stdout
    assert f"{{'pushed': {LINKS}, 'unchanged': 0}}" in done.stdout
    again = run_the_airflow_task(tmp_path / "good")  # the nightly rerun: nothing changed
    assert f"0 pushed, {LINKS} unchanged, 0 failed" in again.stdout, again.stderr

    write_job(tmp_path / "bad")  # the same links, line 5 unreadable
    failed = run_the_airflow_task(tmp_path / "bad")
    assert failed.returncode == 1
    assert f"{LINKS - 1} pushed, 0 unchanged, 1 failed" in failed.stdout
    assert f"line {BAD_LINE}: " in failed.stdout
    assert "RuntimeError: 1 item(s) failed; results in " in failed.stderr


def test_the_readme_sqlite_example_streams_rows_into_propeller_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.setenv("PYAPI_PROPELLER_ID", "sandbox")
    monkeypatch.setenv("PYAPI_PROPELLER_SECRET", "sandbox")
    pairs = [(a, b, "related") for a in range(1, 6) for b in range(1, 6) if a != b]
    pairs.insert(3, (1, 99999, "related"))  # no such product: Propeller fails that item alone
    with sqlite3.connect(tmp_path / "catalogue.sqlite") as db:
        db.execute("CREATE TABLE related (source INTEGER, target INTEGER, kind TEXT)")
        db.executemany("INSERT INTO related VALUES (?, ?, ?)", pairs)
    db.close()
    with running_sandbox_process(env=os.environ) as url:
        (tmp_path / "propeller.toml").write_text(
            f"""
[target]
kind = "propeller"
base_url = "{url}/v2"
client_id_env = "PYAPI_PROPELLER_ID"
client_secret_env = "PYAPI_PROPELLER_SECRET"
[output]
results = "out/results.jsonl"
progress = false
[propeller]
subtype = "bulksync"
""",
            encoding="utf-8",
        )
        done = run_readme_example(tmp_path, SQLITE)
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip().splitlines()
    assert out[0] == f"{len(pairs) - 1} links pushed, 1 failed", done.stdout
    assert out[1].startswith("row 3: ") and len(out) == 2


CONSUMER = """\
from dataclasses import dataclass

import bulksync


def nightly(path: str) -> int:
    try:
        report = bulksync.Job.from_toml(path, limits={"concurrency": 4}).run()
    except (bulksync.AuthError, bulksync.QuotaExhausted) as exc:
        raise SystemExit(str(exc)) from None
    failed: int = report.failed
    return failed + report.exit_code


async def in_a_loop(job: bulksync.Job) -> bulksync.RunReport:
    return await job.arun(full=True)


@dataclass
class Link:
    from_: str
    to: str
    type: str


async def streamed(job: bulksync.Job, rows: list[Link]) -> int:
    failed = 0
    async with job.stream(links=rows, window=500) as results:
        async for result in results:
            item: bulksync.ItemResult = result
            failed += 0 if item.success else 1
    report: bulksync.RunReport | None = results.report
    return failed if report is None else report.total
"""


def test_a_consumer_type_checks_with_mypy_strict_against_the_wheel(tmp_path: Path) -> None:
    # The wheel, not the editable install: py.typed must be in what pip installs.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("bulksync-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "bulksync/py.typed" in archive.namelist()
        archive.extractall(site)
    consumer = tmp_path / "consumer" / "consumer.py"
    consumer.parent.mkdir()
    consumer.write_text(CONSUMER, encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", consumer.name],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=consumer.parent,
        env={**os.environ, "MYPYPATH": str(site)},
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success" in checked.stdout
