"""``python -m benchmarks``: run the scenarios, print one JSON line per figure, write the results.

    python -m benchmarks                       # full run (about 10 minutes on 2 cores)
    python -m benchmarks --smoke               # every scenario at a tiny size (well under 2 min)
    python -m benchmarks --only budget_accuracy,memory
    python -m benchmarks --out /tmp/bench      # write latest.json and RESULTS.md elsewhere
    python -m benchmarks --only ocapi_batch --merge   # replace only these figures in the results
    python -m benchmarks --only cpu_scale,resync,large_uploads --large   # the 1M-item sizes

A full run writes ``benchmarks/results/latest.json`` and ``benchmarks/RESULTS.md``; a smoke run
writes to ``benchmarks/results/smoke/`` unless ``--out`` says otherwise, so that it never
overwrites the figures of a full run. ``--merge`` keeps the figures already written of the
scenarios that did not run, so that ``--only`` can refresh some figures without losing the rest.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from . import scenarios, scenarios_scale, scenarios_targets, shared_budget
from ._harness import Figure, pinning
from .scenarios import FULL, SMOKE, Context

SCENARIOS = {
    **scenarios.SCENARIOS,
    **scenarios_targets.SCENARIOS,
    **scenarios_scale.SCENARIOS,
    **shared_budget.SCENARIOS,
}
METRICS = {
    **scenarios.METRICS,
    **scenarios_targets.METRICS,
    **scenarios_scale.METRICS,
    **shared_budget.METRICS,
}

HERE = Path(__file__).resolve().parent

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("client_ceiling", "bulksync_items_per_s"): "bulksync, single-link POST /api/links",
    ("client_ceiling", "raw_aiohttp_items_per_s"): "raw aiohttp pool, same requests",
    ("client_ceiling", "ceiling_ratio"): "bulksync ÷ raw aiohttp (median of rounds)",
    ("client_ceiling", "bulksync_cpu_us_per_item"): "client CPU per item, bulksync",
    ("client_ceiling", "raw_aiohttp_cpu_us_per_item"): "client CPU per item, raw aiohttp",
    ("client_ceiling", "bulksync_items_per_s_uvloop"): "bulksync on uvloop (bulksync[fast])",
    ("client_ceiling", "raw_aiohttp_items_per_s_uvloop"): "raw aiohttp pool on uvloop",
    ("client_ceiling", "ceiling_ratio_uvloop"): "bulksync ÷ raw aiohttp, both on uvloop",
    ("client_ceiling", "bulksync_cpu_us_per_item_uvloop"): "client CPU per item, bulksync, uvloop",
    ("client_ceiling", "raw_aiohttp_cpu_us_per_item_uvloop"): "client CPU per item, raw, uvloop",
    ("naive_baselines", "bulksync_items_per_s"): "bulksync, 64 in flight",
    ("naive_baselines", "sequential_items_per_s"): "sequential requests.post (vendor docs)",
    ("naive_baselines", "gather_items_per_s"): "one unbounded asyncio.gather (aiohttp)",
    ("naive_baselines", "speedup_vs_sequential"): "bulksync ÷ sequential",
    ("naive_baselines", "speedup_vs_gather"): "bulksync ÷ gather",
    ("naive_baselines", "bulksync_peak_rss_mb"): "peak RSS, bulksync",
    ("naive_baselines", "sequential_peak_rss_mb"): "peak RSS, sequential requests",
    ("naive_baselines", "gather_peak_rss_mb"): "peak RSS, gather",
    ("budget_accuracy", "known_achieved_ratio"): "achieved ÷ known limit (100/s, 10 s window)",
    ("budget_accuracy", "known_429s"): "429s at the known limit",
    ("budget_accuracy", "unknown_achieved_ratio"): "achieved ÷ server-only limit (100/s)",
    ("budget_accuracy", "unknown_429_share"): "share of requests answered 429",
    ("budget_accuracy", "unknown_retry_after_achieved_ratio"): "same, 429s with Retry-After",
    ("budget_accuracy", "unknown_retry_after_429_share"): "share answered 429, Retry-After",
    ("budget_accuracy", "unknown_long_achieved_ratio"): "achieved ÷ server-only 1,000 per 10 s",
    ("budget_accuracy", "unknown_long_429_share"): "share answered 429, 10 s window",
    ("budget_accuracy", "unknown_long_retry_after_achieved_ratio"): "same, with Retry-After",
    ("budget_accuracy", "unknown_long_retry_after_429_share"): "share answered 429, same",
    ("two_step_assets", "items_per_s"): "assets/s, upload then create",
    ("two_step_assets", "bound_items_per_s"): "bound of the tighter stage (create budget)",
    ("two_step_assets", "bound_ratio"): "achieved ÷ bound",
    ("memory", "peak_rss_small"): "peak RSS, {small:,} links",
    ("memory", "peak_rss_large"): "peak RSS, {large:,} links",
    ("memory", "rss_growth"): "growth {small:,} → {large:,}",
    ("memory", "timeline_lines_large"): "timeline.jsonl of the {large:,}-link run (one a second)",
    ("memory", "report_html_large"): "report.html of the {large:,}-link run",
    ("memory", "stream_peak_rss_large"): "peak RSS, {large:,} dict links through job.stream()",
    ("memory", "stream_items_per_s_large"): "links/s through job.stream(), every result taken",
    ("calls_per_item", "v5_calls_per_item"): "v5, one POST /api/links per link",
    ("calls_per_item", "v4_calls_per_item"): "v4, grouped document links",
    ("calls_per_item", "v4_fewer_calls"): "v5 calls ÷ v4 calls",
    **scenarios_targets.DESCRIPTIONS,
    **shared_budget.DESCRIPTIONS,
    **scenarios_scale.DESCRIPTIONS,
}


def run(names: list[str], smoke: bool, large: bool = False) -> list[Figure]:
    sizes = SMOKE if smoke else FULL
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bulksync-bench-") as tmp:
        for name in names:
            folder = Path(tmp) / name
            folder.mkdir()
            ctx = Context(sizes, folder, smoke, large)
            started = time.monotonic()
            try:
                produced = SCENARIOS[name](ctx)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                traceback.print_exc()
                produced = [Figure(name, "error", None, "", detail={"error": repr(exc)})]
            took = round(time.monotonic() - started, 1)
            for figure in produced:
                figure.detail.setdefault("scenario_s", took)
                print(json.dumps({**figure.row(), **figure.detail}, default=str), flush=True)
            figures.extend(produced)
    return figures


def environment(smoke: bool, large: bool = False) -> dict[str, Any]:
    server, _ = pinning()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "smoke" if smoke else "large" if large else "full",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "pinning": "sandbox on CPU 1, clients on CPU 0 (taskset)" if server else "none",
        **http_stack(),
    }


def http_stack() -> dict[str, Any]:
    """What the HTTP path runs on: aiohttp's C extensions (its parser and writer; without them
    it falls back to pure Python, several times slower) and uvloop, if installed."""
    import importlib.util

    import aiohttp

    compiled = all(
        importlib.util.find_spec(f"aiohttp.{name}") is not None
        for name in ("_http_parser", "_http_writer")
    )
    try:
        import uvloop

        uvloop_version: str | None = uvloop.__version__
    except ImportError:
        uvloop_version = None
    return {"aiohttp": aiohttp.__version__, "aiohttp_c_extensions": compiled,
            "uvloop": uvloop_version}  # fmt: skip


def write_results(
    figures: list[Figure],
    out_json: Path,
    out_md: Path,
    smoke: bool,
    merged: list[str] | None = None,
    large: bool = False,
) -> None:
    """Write the figures; with ``merged`` (the scenarios just run), keep the other scenarios'
    figures from ``out_json`` and the header of the run(s) they came from in ``out_md``."""
    earlier: list[str] = []
    if merged is not None:
        figures = merge(earlier_figures(out_json), figures, merged)
        earlier = earlier_header(out_md, merged)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps([f.row() for f in figures], indent=1) + "\n", encoding="utf-8")
    env = environment(smoke, large)
    out_md.write_text(markdown(figures, env, smoke, earlier, merged, large), encoding="utf-8")


TABLE_HEAD = "| scenario | figure | value | unit | target | met |"
MERGED_PREFIX = "Figures of "


def earlier_figures(out_json: Path) -> list[Figure]:
    if not out_json.exists():
        return []
    rows = json.loads(out_json.read_text(encoding="utf-8"))
    return [Figure(**row) for row in rows]


def merge(earlier: list[Figure], new: list[Figure], names: list[str]) -> list[Figure]:
    """The earlier figures of the scenarios not in ``names``, and the new ones, in the order of
    the registry (scenarios it no longer knows last); within a scenario, as produced."""
    kept = [f for f in earlier if f.scenario not in names]
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return sorted([*kept, *new], key=lambda f: order.get(f.scenario, len(order)))


def earlier_header(out_md: Path, names: list[str]) -> list[str]:
    """The run lines of ``out_md``, less those of earlier merges of only these scenarios."""
    if not out_md.exists():
        return []
    lines = out_md.read_text(encoding="utf-8").splitlines()
    end = lines.index(TABLE_HEAD) if TABLE_HEAD in lines else len(lines)
    kept = []
    for line in lines[1:end]:
        if not line.strip():
            continue
        if line.startswith(MERGED_PREFIX) and ":" in line:
            covered = line[len(MERGED_PREFIX) : line.index(":")].split(", ")
            if set(covered) <= set(names):
                continue  # superseded by this run
        kept.append(line)
    return kept


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}"


def markdown(
    figures: list[Figure],
    env: dict[str, Any],
    smoke: bool,
    earlier: list[str] | None = None,
    merged: list[str] | None = None,
    large: bool = False,
) -> str:
    sizes = SMOKE if smoke else FULL
    flags = (" --smoke" if smoke else "") + (" --large" if large else "")
    small, large = sizes.memory_links
    machine = (
        f"{env['cpus']} CPUs ({env['machine']}), Python {env['python']}; pinning: {env['pinning']}"
    )
    if merged is None or not earlier:
        header = [
            f"Run {env['date']} with `python -m benchmarks{flags}` on "
            f"{machine}. The machine is shared and noisy: compare the ratios, "
            "which are taken within one run, rather than the absolute rates."
        ]
    else:
        command = f"python -m benchmarks{flags} --only {','.join(merged)}"
        header = [*earlier, (
            f"{MERGED_PREFIX}{', '.join(merged)}: run {env['date']} with `{command} --merge` "
            f"on {machine}; the other figures are those of the run above."
        )]  # fmt: skip
    lines = [
        "# bulksync benchmarks"
        + (" (smoke run: tiny sizes, figures not meaningful)" if smoke else ""),
        "",
        *(part for line in header for part in (line, "")),
        TABLE_HEAD,
        "|---|---|---:|---|---|---|",
    ]
    for f in figures:
        what = DESCRIPTIONS.get((f.scenario, f.metric), f.metric).format(small=small, large=large)
        met = "—" if f.met is None else ("yes" if f.met else "**no**")
        target = f.target or ""
        lines.append(
            f"| {f.scenario} | {what} (`{f.metric}`) | {_value(f.value)} | {f.unit} "
            f"| {target} | {met} |"
        )
    lines += ["", "## How each figure is measured", "", *NOTES.format(
        ceiling=sizes.ceiling_items, rounds=sizes.ceiling_rounds, seq=sizes.sequential_items,
        budget_s=sizes.budget_s, assets=sizes.assets, small=small, large=large,
        calls=sizes.calls_links,
    ).strip().splitlines(), *scenarios_targets.notes(smoke).strip().splitlines(),
        *shared_budget.notes(smoke, sizes.budget_s).strip().splitlines(),
        *scenarios_scale.notes(smoke, env.get("mode") == "large").strip().splitlines(),
        ""]  # fmt: skip
    return "\n".join(lines)


NOTES = """
Every client runs in a fresh process pinned to CPU 0; the sandbox (`python -m bulksync.sandbox`)
runs in its own process pinned to CPU 1. Requests go to 127.0.0.1 only.

1. **client_ceiling**: {ceiling:,} single-link `POST /api/links`, sandbox latency 20 ms, no rate
   limit, 64 in flight. bulksync (`run_job_async`, Quable connector, 64 workers, no budget
   window) against a raw aiohttp pool (64 workers on one session, no results, no retries),
   {rounds} round(s) in alternating order; the ratio is the median of the per-round ratios.
   CPU µs per item is the client process's user + system time over the items.
2. **naive_baselines**: the same links. Sequential `requests.post` without a session, as in the
   vendor's examples, is timed on the first {seq:,} links (every link costs the same). The
   `gather` baseline reads every link into memory and gathers one task per link over one
   aiohttp session with its defaults (100 connections). Peak RSS is each process's own
   high-water mark (`VmHWM`; `ru_maxrss` would include the parent's size, see
   `benchmarks/_peak.py`).
3. **budget_accuracy**: known limit, 1,000 requests per sliding 10 s (100/s), enforced by the
   sandbox (with `Retry-After`) and given to bulksync as its rate window; {budget_s:g} s worth of
   links at 16 workers. Achieved = links the server accepted ÷ elapsed ÷ 100/s. Unknown limit:
   100 requests per sliding 1 s, enforced by the sandbox without `Retry-After`, not told to
   bulksync (no rate window, 16 workers): achieved ÷ 100/s, and 429s ÷ all link requests.
   The same again with `Retry-After` on the 429s (the Quable sandbox's default): bulksync
   pauses as told and lowers its pace as well. Then an undisclosed window of seconds, 1,000
   requests per sliding 10 s, without and with `Retry-After`: the unpaced start fills it
   within a second and the server refuses everything for nine more.
4. **two_step_assets**: {assets:,} assets with 50 KB files; `POST /api/files` answers in 50 ms,
   `POST /api/assets` in 20 ms; 8 upload workers, 16 create workers. The creates' budget is
   100/s: the target's one budget pays for every request, so it is 200/s, half for the creates
   and half for the uploads feeding them. Bound = min(uploads 8 ÷ 50 ms = 160/s, creates
   100/s). The sandbox's latency knob is per API, so this one runs the same sandbox app
   through `benchmarks/_sandbox.py`, which adds 30 ms to `POST /api/files` only.
5. **memory**: `benchmarks.memory_links` streams {small:,} and {large:,} links through
   `bulksync run` against the in-memory **fake target** (not the sandbox, which would take
   minutes for a million links and grow its own store), 64 workers, one process per size; peak
   RSS of that process.
6. **calls_per_item**: {calls:,} links (100 per document, one link type) through v5 (one
   `POST /api/links` each) and v4 (`POST /api_1.php/documents/{{code}}/links/{{type}}`, one per
   document and type); requests counted by the sandbox.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--smoke", action="store_true", help="every scenario at a tiny size")
    parser.add_argument(
        "--large",
        action="store_true",
        help="the scale scenarios at 1,000,000 items (cpu_scale alone adds about 7 minutes)",
    )
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", type=Path, help="folder for latest.json and RESULTS.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the figures already written of the scenarios not run (use with --only)",
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    _, client = pinning()
    if client and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # this process and what it spawns, unless told otherwise
    figures = run(names, args.smoke, args.large)
    if args.out:
        out_json, out_md = args.out / "latest.json", args.out / "RESULTS.md"
    elif args.smoke:
        out_json, out_md = (
            HERE / "results" / "smoke" / "latest.json",
            HERE / "results" / "smoke" / "RESULTS.md",
        )
    else:
        out_json, out_md = HERE / "results" / "latest.json", HERE / "RESULTS.md"
    write_results(figures, out_json, out_md, args.smoke, names if args.merge else None, args.large)
    print(f"wrote {out_json} and {out_md}", file=sys.stderr)
    missing = [
        (s, m) for s in names for m in METRICS[s]
        if not any(f.scenario == s and f.metric == m and f.value is not None for f in figures)
    ]  # fmt: skip
    if missing:
        print(f"missing figures: {missing}", file=sys.stderr)
        return 1
    return 0
