"""Peak memory of a links run of any size: streams N links through the fake target.

    python -m benchmarks.memory_links                 # 100,000 and 1,000,000 links
    python -m benchmarks.memory_links --sizes 20000   # any sizes

Each size runs `bulksync run` in its own process against the in-memory fake target (no
network, no latency, per-key tracking off so the fake itself stays flat) and reports the
child's own peak RSS (``VmHWM``, see ``benchmarks._peak``) as one JSON line. The engine, not
the fake, is what is measured, with everything a run records on: the run folder, its
per-second timeline and its HTML report (their sizes are reported too).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def write_links(path: Path, count: int) -> None:
    with open(path, "wb") as out:
        for i in range(count):
            link = {"from": f"doc-{i // 10}", "to": f"doc-{i}", "type": "ref_refCol"}
            out.write(orjson.dumps(link) + b"\n")


def measure(count: int, folder: Path, concurrency: int) -> dict[str, object]:
    links = folder / f"links-{count}.jsonl"
    write_links(links, count)
    config = folder / f"job-{count}.toml"
    config.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "{links.name}"
[limits]
concurrency = {concurrency}
[output]
results = "results-{count}.jsonl"
progress = false
[fake]
track_keys = false
""",
        encoding="utf-8",
    )
    peak_file = folder / f"peak-{count}.txt"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._peak", str(peak_file), "bulksync", "run",
         "--config", str(config)],
        stdout=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    _, status, _ = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    peak_kib = int(peak_file.read_text()) if peak_file.exists() else 0
    results = folder / f"results-{count}.jsonl"
    with open(results, "rb") as fh:  # the configured path: a link to the run's own file
        lines = sum(1 for _ in fh)
    (run,) = (folder / "runs").iterdir()  # each measure removes its run folder
    with open(run / "timeline.jsonl", "rb") as fh:
        seconds = sum(1 for _ in fh)
    report = run / "report.html"
    report_kb = round(report.stat().st_size / 1024, 1) if report.exists() else None
    links.unlink()
    shutil.rmtree(run)
    results.unlink()
    return {
        "links": count,
        "exit_code": code,
        "result_lines": lines,
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "elapsed_s": round(elapsed, 1),
        "items_per_s": round(count / elapsed),
        "timeline_lines": seconds,
        "report_html_kb": report_kb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory(prefix="bulksync-memory-") as tmp:
        for size in args.sizes:
            figure = measure(size, Path(tmp), args.concurrency)
            figures.append(figure)
            print(orjson.dumps(figure).decode(), flush=True)
    if len(figures) > 1:
        growth = figures[-1]["peak_rss_mb"] / figures[0]["peak_rss_mb"]  # type: ignore[operator]
        print(orjson.dumps({"rss_growth": round(growth, 2)}).decode())
    return 0 if all(f["exit_code"] == 0 and f["result_lines"] == f["links"] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
