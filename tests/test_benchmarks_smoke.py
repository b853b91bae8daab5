"""`python -m benchmarks --smoke`: every scenario runs at a tiny size and reports its figures.

Only the presence of the figures is checked, never their values: the machine is shared and
the sizes are far too small to mean anything. The benchmark starts its own sandbox processes
on 127.0.0.1 and stops them; the subprocess timeout only bounds a hang.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE_HEAD = "| scenario | figure | value | unit | target | met |"
HANG_GUARD_S = 300

# The figures issues 5 and 6 ask of each scenario.
METRICS = {
    "client_ceiling": [
        "bulksync_items_per_s",
        "raw_aiohttp_items_per_s",
        "ceiling_ratio",
        "bulksync_cpu_us_per_item",
        "raw_aiohttp_cpu_us_per_item",
    ],
    "naive_baselines": [
        "bulksync_items_per_s",
        "sequential_items_per_s",
        "gather_items_per_s",
        "speedup_vs_sequential",
        "speedup_vs_gather",
        "bulksync_peak_rss_mb",
        "sequential_peak_rss_mb",
        "gather_peak_rss_mb",
    ],
    "budget_accuracy": [
        "known_achieved_ratio",
        "known_429s",
        "unknown_achieved_ratio",
        "unknown_429_share",
        "unknown_long_achieved_ratio",
        "unknown_long_429_share",
    ],
    "two_step_assets": ["items_per_s", "bound_items_per_s", "bound_ratio"],
    "memory": ["peak_rss_small", "peak_rss_large", "rss_growth"],
    "calls_per_item": ["v5_calls_per_item", "v4_calls_per_item", "v4_fewer_calls"],
    "propeller_links": ["items_per_s", "bulk_requests", "calls_per_item"],
    "ocapi_batch": [
        "single_items_per_s",
        "batch_items_per_s",
        "single_calls_per_item",
        "batch_calls_per_item",
        "batch_speedup",
    ],
    # Issue 19: N processes on one Redis budget, and the cost of an acquire there.
    "shared_budget": [
        *(f"n{n}_{m}" for n in (1, 2, 4, 8) for m in ("achieved_ratio", "429s")),
        "round_trips_per_request",
        "acquire_us_memory",
        "acquire_us_redis",
        "overhead_us_per_acquire",
        "round_trips_per_acquire",
        "redis_ping_us",
        "acquire_cpu_us_redis",
    ],
    # Issue 18: every cost as the work grows.
    "cpu_scale": ["cpu_growth"],
    "resync": ["skipped_per_s", "requests", "peak_rss_mb", "state_mb_per_million"],
    "large_uploads": ["bulksync_mb_per_s", "raw_aiohttp_mb_per_s", "upload_ratio"],
}


def benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def test_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    completed = benchmarks("--out", str(tmp_path))

    rows = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    keys = {"scenario", "metric", "value", "target", "met", "unit"}
    assert all(set(row) == keys for row in rows)
    produced = {(row["scenario"], row["metric"]) for row in rows if row["value"] is not None}
    expected = {(scenario, metric) for scenario, metrics in METRICS.items() for metric in metrics}
    assert expected <= produced, sorted(expected - produced)
    for row in rows:  # a figure with a target says whether it met it
        assert (row["met"] is None) == (row["target"] is None), row

    printed = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert {(p["scenario"], p["metric"]) for p in printed} >= expected

    table = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert TABLE_HEAD in table
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in table
    assert all(f"`{metric}`" in table for _, metric in expected)

    # --only with --merge replaces that scenario's figures and keeps every other one.
    benchmarks("--only", "propeller_links", "--merge", "--out", str(tmp_path))
    merged = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert [(r["scenario"], r["metric"]) for r in merged] == [
        (r["scenario"], r["metric"]) for r in rows
    ]
    assert [r for r in merged if r["scenario"] != "propeller_links"] == [
        r for r in rows if r["scenario"] != "propeller_links"
    ]
    header = (tmp_path / "RESULTS.md").read_text(encoding="utf-8").split(TABLE_HEAD)[0]
    assert "Run " in header and "Figures of propeller_links: run " in header
