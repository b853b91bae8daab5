"""The state's own cost, SQLite file against PostgreSQL: a first run and a resync of N links.

    python -m benchmarks.state_backends                 # 20,000 links, 3 rounds
    python -m benchmarks.state_backends --links 5000 --rounds 1

The target is the built-in fake with no latency and no faults, so what differs between the two
backends is the state (intents, confirmations, lookups). PostgreSQL is a real server started
for the benchmark (bulksync.testing.postgres: a unix socket, fsync off); each run is a
`bulksync run` process of its own. The backends alternate within each round and the figures
are medians, so the ratio holds on a noisy machine even when the seconds do not. One JSON line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bulksync.testing.postgres import new_database, running_postgres

DSN_ENV = "BENCH_STATE_PG_DSN"


def write_job(folder: Path, backend: str, links: int) -> Path:
    folder.mkdir(parents=True)
    rows = (orjson.dumps({"from": "doc", "to": f"d{i}", "type": "t"}) for i in range(links))
    (folder / "links.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    config = folder / "job.toml"
    config.write_text(
        f"""
[target]
kind = "fake"
[fake]
latency_s = 0
jitter_s = 0
transient_rate = 0
[inputs]
links = "links.jsonl"
[state]
backend = "{backend}"
dsn_env = "{DSN_ENV}"
[output]
results = "out/results.jsonl"
progress = false
plan = false
stats_interval = 0
""",
        encoding="utf-8",
    )
    return config


def timed_run(config: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bulksync run exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def measure(links: int, rounds: int) -> dict[str, object]:
    times: dict[str, list[float]] = {}
    with running_postgres() as server, tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        for round_ in range(rounds):
            dsn = new_database(server, f"bench{round_}")
            env = {**os.environ, DSN_ENV: dsn}
            for backend in ("sqlite", "postgres"):
                config = write_job(Path(tmp) / f"{backend}-{round_}", backend, links)
                times.setdefault(f"{backend}_first_run_s", []).append(timed_run(config, env))
                times.setdefault(f"{backend}_resync_s", []).append(timed_run(config, env))
    figure: dict[str, object] = {"links": links, "rounds": rounds}
    medians = {name: statistics.median(values) for name, values in times.items()}
    figure.update({name: round(value, 2) for name, value in medians.items()})
    for run in ("first_run", "resync"):
        ratio = medians[f"postgres_{run}_s"] / medians[f"sqlite_{run}_s"]
        figure[f"postgres_over_sqlite_{run}"] = round(ratio, 2)
    return figure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(orjson.dumps(measure(args.links, args.rounds)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
