"""A resync of N unchanged links: items skipped per second, requests sent, peak RSS, state size.

    python -m benchmarks.resync_links                  # 1,000,000 links
    python -m benchmarks.resync_links --sizes 100000   # any sizes

For each size the state database is filled first with N links as a run confirms them (the key
and the content hash of each record as the reader reads it from the very input, the id the
fake target gives it), without sending them: a first run would take minutes and is not what is
measured. Then `bulksync run`, in its own process (``benchmarks._peak``), reads the same input
against the in-memory fake target, as a user would start it (the plan line on, the run folder,
its timeline and report written). Every item must end "skipped" with no request sent; the
figure is the links over the wall time of that process, start-up included. One JSON line per
size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = "state.sqlite"


def write_links(path: Path, count: int) -> None:
    with open(path, "wb") as out:
        for i in range(count):
            link = {"from": f"doc-{i // 10}", "to": f"doc-{i}", "type": "ref_refCol"}
            out.write(orjson.dumps(link) + b"\n")


def seed_state(links: Path, state: Path) -> int:
    """Confirm every link of ``links`` in ``state`` as a run against the fake target would."""
    from bulksync.app.config import normalize_base_url
    from bulksync.inputs.readers import read_records
    from bulksync.spi._records import LinkRecord
    from bulksync.store.state import StateStore, content_hash

    store = StateStore(state, f"fake {normalize_base_url('')}", flush_every=4096)
    count = 0
    try:
        for record in read_records(links, "link"):
            assert isinstance(record, LinkRecord)
            key = record.key
            remote_id = hashlib.sha1(key.encode()).hexdigest()[:12]  # the fake's ids
            store.confirm("link", key, content_hash(record), remote_id, "succeeded")
            count += 1
    finally:
        store.close()
    return count


def database_bytes(state: Path) -> int:
    """The state database on disk: the file, and its write-ahead log where one is left."""
    return sum(p.stat().st_size for p in state.parent.glob(state.name + "*") if p.is_file())


def measure(count: int, folder: Path) -> dict[str, object]:
    """Seed the state with ``count`` links, then resync them twice: as a user starts it (the
    plan line first, a pass of its own over the input) and with ``[output] plan = false``
    (the engine's pass alone)."""
    links = folder / f"links-{count}.jsonl"
    write_links(links, count)
    state = folder / STATE_FILE
    for old in folder.glob(STATE_FILE + "*"):
        old.unlink()
    seeding = time.monotonic()
    seeded = seed_state(links, state)
    seed_s = time.monotonic() - seeding
    seeded_bytes = database_bytes(state)
    figure: dict[str, object] = {"links": count, "seeded": seeded, "seed_s": round(seed_s, 1)}
    for plan in (True, False):
        run = resync(links, count, folder, plan)
        figure.update(run if plan else {f"{k}_no_plan": v for k, v in run.items()})
    after_bytes = database_bytes(state)
    links.unlink()
    figure.update(
        {
            "state_bytes_seeded": seeded_bytes,
            "state_bytes": after_bytes,
            "state_mb_per_million": round(after_bytes / count * 1_000_000 / 1e6, 1),
            "state_bytes_per_item": round(after_bytes / count, 1),
        }
    )
    return figure


def resync(links: Path, count: int, folder: Path, plan: bool) -> dict[str, object]:
    """One `bulksync run` over the seeded state, in a process of its own."""
    config = folder / f"job-{count}.toml"
    config.write_text(
        f"""
[target]
kind = "fake"
[inputs]
links = "{links.name}"
[output]
results = "results-{count}.jsonl"
progress = false
plan = {"true" if plan else "false"}
[fake]
track_keys = false
[state]
path = "{STATE_FILE}"
""",
        encoding="utf-8",
    )
    peak_file = folder / f"peak-{count}.txt"
    err_file = folder / f"stderr-{count}.txt"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.monotonic()
    with open(err_file, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._peak", str(peak_file), "bulksync", "run",
             "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=folder,
        )  # fmt: skip
        # wait4: the child's own CPU time (its ru_maxrss would not be its own, see _peak).
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    cpu_s = usage.ru_utime + usage.ru_stime
    summary_file = folder / f"results-{count}.summary.json"
    summary = orjson.loads(summary_file.read_bytes()) if summary_file.exists() else {}
    peak_kib = int(peak_file.read_text()) if peak_file.exists() else 0
    skipped = int(summary.get("skipped", 0))
    errors = err_file.read_text(encoding="utf-8", errors="replace").splitlines()
    plan_line = next((line for line in errors if "plan:" in line), None)
    for path in (folder / f"results-{count}.jsonl", summary_file, peak_file, config, err_file):
        path.unlink(missing_ok=True)
    for run in (folder / "runs").iterdir():
        for item in run.iterdir():
            item.unlink()
        run.rmdir()
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "skipped": skipped,
        "total": summary.get("total"),
        "requests": summary.get("requests"),
        "elapsed_s": round(elapsed, 2),
        "engine_elapsed_s": summary.get("elapsed_s"),
        "skipped_per_s": round(skipped / elapsed),
        "cpu_s": round(cpu_s, 2),
        # The machine is shared: the CPU the run took is what other load does not stretch.
        "skipped_per_cpu_s": round(skipped / cpu_s) if cpu_s else None,
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "plan_line": plan_line,
        "stderr_tail": errors[-3:] if os.waitstatus_to_exitcode(status) else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    ok = True
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bulksync-resync-") as tmp:
            figure = measure(size, Path(tmp))
        print(orjson.dumps(figure).decode(), flush=True)
        for suffix in ("", "_no_plan"):
            ok = ok and figure["exit_code" + suffix] == 0 and figure["skipped" + suffix] == size
            ok = ok and figure["requests" + suffix] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
