"""Synthetic run folders for the HTML report tests, in the run folder's formats (README, "A
record of every run"): summary.json, timeline.jsonl (one line per second, counters as
deltas), results.jsonl (today's lines plus started_at, ended_at, ms)."""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

START = datetime(2026, 12, 3, 11, 0, 0, tzinfo=UTC)
HOSTILE = "</script><script>window.__pwned=1</script><!-- <img src='http://127.0.0.1:9/x.png'>"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def summary(total: int, failed: int, seconds: int) -> dict[str, Any]:
    skipped = total // 10
    return {
        "messages": ["Completed"],
        "total": total,
        "succeeded": total - failed - skipped,
        "failed": failed,
        "skipped": skipped,
        "requests": total + total // 20,
        "retries": total // 40,
        "throttled": total // 100,
        "elapsed_s": float(seconds),
        "items_per_s": round(total / seconds, 1),
        "latency_ms": {"p50": 42.1, "p95": 180.4, "p99": 410.0},
        "run_id": "20261203T110000Z-a1b2",
        "version": "0.1.0",
        "config_hash": "0123456789ab",
        "target": {"kind": "fake", "base_url": "http://127.0.0.1:8080/api"},
        "started_at": iso(START),
        "ended_at": iso(START + timedelta(seconds=seconds)),
        "exit_code": 1 if failed else 0,
        "counts": {
            "asset": {"created": total // 2, "exists": total // 10, "failed": failed // 2},
            "link": {"created": total // 4, "unchanged": 5, "failed": failed - failed // 2},
        },
        "pauses": {"count": 3, "total_s": 37.5},
        "token_refreshes": 2,
        # Log buckets as LatencyHistogram keeps them: many narrow ones.
        "latency_histogram": [
            [round(1.01 ** (i + 1), 3), int(1000 * math.exp(-(((i - 380) / 60) ** 2)))]
            for i in range(200, 700)
        ],
    }


def timeline(seconds: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for t in range(seconds):
        throttled = 1 if t % 97 == 0 else 0
        paused = 12.0 <= (t % 600) < 20.0
        requests = 0 if paused else rng.randint(80, 120)
        yield {
            "t": t,
            "ts": (START + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requests": requests,
            "retries": throttled * 2,
            "throttled": throttled,
            "pace": 100.0 if t < seconds // 2 else 80.0,
            "limit": 100.0,
            "in_flight": rng.randint(0, 16),
            "paused_s": 1.0 if paused else 0.0,
            "pause_reason": "Retry-After" if paused else None,
            "latency_ms": None
            if not requests
            else {"p50": 40 + rng.random() * 5, "p95": 150 + rng.random() * 60, "p99": 400.0},
            "stages": {
                "assets: upload": {"done": requests // 2, "failed": throttled, "skipped": 0},
                "links: create": {"done": requests // 3, "failed": 0, "skipped": 1},
            },
        }


def cause(i: int) -> str:
    """A distinct word per cause: numbers and quoted values are masked when grouping."""
    letters = string.ascii_lowercase
    return letters[i % 26] + letters[(i // 26) % 26] + letters[(i // 676) % 26]


def results(total: int, causes: int, failed_every: int = 50) -> Iterator[dict[str, Any]]:
    for i in range(total):
        begun = START + timedelta(milliseconds=i)
        failed = i % failed_every == 0
        yield {
            "kind": "asset",
            "source": "assets.csv",
            "line": i + 2,
            "key": f"SKU-{i}",
            "status": "failed" if failed else "succeeded",
            "success": not failed,
            "remote_id": None if failed else f"r{i}",
            "error": {
                "type": f"Rejected{cause(i // failed_every % causes)}",
                "message": f"assets.csv:{i + 2}: field '{cause(i // failed_every % causes)}' "
                f"of SKU-{i} was refused by the target with status 422 (value {i} is out of "
                "range for this attribute; see the target's documentation)",
                "http_status": 422,
            }
            if failed
            else None,
            "attempts": 1,
            "started_at": iso(begun),
            "ended_at": iso(begun + timedelta(milliseconds=40)),
            "ms": 40.0,
        }


def hostile_results() -> list[dict[str, Any]]:
    return [
        {
            "kind": "asset",
            "source": f"assets{HOSTILE}.csv",
            "line": 3,
            "key": f"SKU{HOSTILE}",
            "status": "failed",
            "success": False,
            "error": {"type": f"Bad{HOSTILE}", "message": f"server said: {HOSTILE}"},
            "attempts": 1,
            "started_at": iso(START),
            "ended_at": iso(START),
            "ms": 0.0,
        }
    ]


def write_run(
    folder: Path,
    seconds: int = 900,
    total: int = 5000,
    causes: int = 12,
    extra_results: list[dict[str, Any]] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = list(results(total, causes)) + (extra_results or [])
    failed = sum(1 for line in lines if line["status"] == "failed")
    (folder / "summary.json").write_bytes(orjson.dumps(summary(total, failed, seconds)))
    with open(folder / "timeline.jsonl", "wb") as fh:
        for line in timeline(seconds):
            fh.write(orjson.dumps(line) + b"\n")
    with open(folder / "results.jsonl", "wb") as fh:
        for line in lines:
            fh.write(orjson.dumps(line) + b"\n")
    return folder
