"""Peak memory of ``Job.stream()``: N dict links from a Python generator through the fake target.

    python -m benchmarks.memory_stream                 # 100,000 and 1,000,000 links
    python -m benchmarks.memory_stream --sizes 20000   # any sizes

Each size runs in its own process (``benchmarks._stream_child``) and reports the child's own
peak RSS (``VmHWM``, see ``benchmarks._peak``), the results the consumer took, and how far the
producer ever got ahead of the consumer (never more than the stream's window).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson


def measure(count: int, folder: Path, concurrency: int) -> dict[str, Any]:
    work = folder / f"stream-{count}"
    work.mkdir(parents=True, exist_ok=True)
    peak_file = work / "peak.txt"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._peak", str(peak_file), "benchmarks._stream_child",
         str(count), str(concurrency), str(work)],
        capture_output=True, text=True, env=env, cwd=work, timeout=1800, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    figure: dict[str, Any] = orjson.loads(lines[-1]) if lines else {"links": count}
    figure["process_exit_code"] = done.returncode
    if done.returncode != 0:
        figure["stderr"] = done.stderr[-500:]
    peak_kib = int(peak_file.read_text()) if peak_file.exists() else 0
    figure["peak_rss_mb"] = round(peak_kib / 1024, 1)
    shutil.rmtree(work)
    return figure


def complete(figure: dict[str, Any]) -> bool:
    return bool(figure.get("exit_code") == 0 and figure.get("results_taken") == figure["links"])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory(prefix="bulksync-stream-") as tmp:
        for size in args.sizes:
            figure = measure(size, Path(tmp), args.concurrency)
            figures.append(figure)
            print(orjson.dumps(figure).decode(), flush=True)
    return 0 if all(complete(f) for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
