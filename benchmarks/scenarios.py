"""The six scenarios of ``python -m benchmarks`` (issue 5), each returning its figures.

Every ratio is taken between runs made in the same invocation, against the same sandbox
process, so the noise of a shared machine cancels as far as it can. Each client run is a fresh
pinned process (see ``_harness``); every run gets link types of its own so that every create is
a real create (no 409s from an earlier run).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulksync.app.demo import tiny_png

from . import memory_links, memory_stream
from ._harness import Figure, Sandbox, median, route_counts, run_client, total_requests

LINKS_ROUTE = "POST /api/links"
SEED_DOCUMENTS = 2000  # doc-00001 ... doc-02000 exist in the sandbox from the start
LINKS_PER_ORIGIN = 100


@dataclass(frozen=True, slots=True)
class Sizes:
    ceiling_items: int
    ceiling_rounds: int
    sequential_items: int  # the sequential baseline is timed on the first N items
    sequential_max_s: float
    budget_s: float  # how long each budget run lasts at the limit
    assets: int
    memory_links: tuple[int, int]
    calls_links: int


FULL = Sizes(
    ceiling_items=20_000,
    ceiling_rounds=3,
    sequential_items=600,
    sequential_max_s=30.0,
    budget_s=60.0,
    assets=2_000,
    memory_links=(100_000, 1_000_000),
    calls_links=10_000,
)
SMOKE = Sizes(
    ceiling_items=300,
    ceiling_rounds=1,
    sequential_items=15,
    sequential_max_s=5.0,
    budget_s=2.0,
    assets=40,
    memory_links=(1_000, 5_000),
    calls_links=400,
)


@dataclass
class Context:
    sizes: Sizes
    folder: Path  # scratch space: inputs, results, sandbox logs
    smoke: bool = False
    large: bool = False  # --large: the scale scenarios at their 1,000,000-item sizes
    _tags: itertools.count[int] = field(default_factory=itertools.count)

    def tag(self, name: str) -> str:
        return f"{name}-{next(self._tags)}"

    def sandbox(self, *args: str, module: str = "bulksync.sandbox") -> Sandbox:
        return Sandbox(list(args), self.folder / "sandbox.log", module=module)


def write_links(path: Path, count: int, link_type: str, documents: int = SEED_DOCUMENTS) -> Path:
    """``count`` distinct links between ``documents`` seeded documents, grouped by origin as
    exports are."""
    if count > LINKS_PER_ORIGIN * documents:
        raise ValueError("more links than distinct (origin, target) pairs")
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            origin = (i // LINKS_PER_ORIGIN) % documents
            target = (origin + 1 + i % LINKS_PER_ORIGIN) % documents
            link = {
                "from": f"doc-{origin + 1:05d}",
                "to": f"doc-{target + 1:05d}",
                "type": link_type,
                "sequence": i,
            }
            out.write(json.dumps(link) + "\n")
    return path


def measured(
    ctx: Context, sandbox: Sandbox, client: str, args: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """Run one client against ``sandbox``; add what the server saw and how busy it was."""
    before, cpu_before = sandbox.stats(), sandbox.cpu()
    report = run_client(client, {"url": sandbox.url, "folder": str(ctx.folder), **args}, timeout_s)
    after, cpu_after = sandbox.stats(), sandbox.cpu()
    report["server_links"] = route_counts(before, after, LINKS_ROUTE)
    report["server_requests"] = total_requests(before, after)
    report["server_429s"] = int(after["rate_limited"]["total"]) - int(
        before["rate_limited"]["total"]
    )
    if cpu_before is not None and cpu_after is not None and report["elapsed_s"]:
        # Share of the sandbox's own CPU it used while the client ran: near 1.0, it would be
        # the bottleneck and the ratios would understate the client.
        report["server_cpu_share"] = round((cpu_after - cpu_before) / report["elapsed_s"], 2)
    return report


def _links_run(
    ctx: Context, sandbox: Sandbox, client: str, links_n: int, timeout_s: float, **args: Any
) -> dict[str, Any]:
    tag = ctx.tag(client)
    links = write_links(ctx.folder / f"links-{tag}.jsonl", links_n, tag)
    report = measured(ctx, sandbox, client, {"links": str(links), "tag": tag, **args}, timeout_s)
    links.unlink()
    for results in ctx.folder.glob(f"results-{tag}*"):
        results.unlink()
    return report


# -- 1. client ceiling ---------------------------------------------------------------------------

LATENCY_MS = 20.0
IN_FLIGHT = 64


def uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def client_ceiling(ctx: Context) -> list[Figure]:
    """bulksync against a raw aiohttp worker pool on the same 20 ms, unlimited server.

    First on asyncio's loop (what the default install runs on), then, when uvloop is installed
    (``bulksync[fast]``), with both sides on uvloop: the same requests, the same rounds.
    """
    loops = ["asyncio", "uvloop"] if uvloop_installed() else ["asyncio"]
    figures: list[Figure] = []
    with ctx.sandbox(
        "--quable-latency-fixed-ms", str(LATENCY_MS),
        "--quable-rate-limit-windows", "off",
        "--quable-seed-documents", str(SEED_DOCUMENTS),
    ) as sandbox:  # fmt: skip
        for loop in loops:
            figures += _ceiling_rounds(ctx, sandbox, loop)
    return figures


def _ceiling_rounds(ctx: Context, sandbox: Sandbox, loop: str) -> list[Figure]:
    n = ctx.sizes.ceiling_items
    timeout = 60 + n / 100  # far beyond the expected few seconds
    bulk: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    for round_ in range(ctx.sizes.ceiling_rounds):
        # Alternate the order, so that a drift of the machine does not favour one side.
        order = ["raw_pool", "bulksync"] if round_ % 2 == 0 else ["bulksync", "raw_pool"]
        for client in order:
            report = _links_run(
                ctx, sandbox, client, n, timeout, concurrency=IN_FLIGHT, rate=[], loop=loop
            )
            (bulk if client == "bulksync" else raw).append(report)
    ratios = [b["items_per_s"] / r["items_per_s"] for b, r in zip(bulk, raw, strict=True)]
    detail = {
        "loop": loop,
        "items": n,
        "rounds": len(ratios),
        "round_ratios": [round(x, 3) for x in ratios],
        "ratio_min_median_max": [round(min(ratios), 3), round(median(ratios), 3),
                                 round(max(ratios), 3)],
        "bulksync_cpu_us_rounds": [b["cpu_us_per_item"] for b in bulk],
        "raw_cpu_us_rounds": [r["cpu_us_per_item"] for r in raw],
        "latency_bound_items_per_s": round(IN_FLIGHT / (LATENCY_MS / 1000)),
        "server_cpu_share": [r.get("server_cpu_share") for r in [*raw, *bulk]],
        "bulksync_failed": [b["failed"] for b in bulk],
        "raw_statuses": [r["statuses"] for r in raw],
    }  # fmt: skip
    s = "client_ceiling"
    suffix = "" if loop == "asyncio" else f"_{loop}"
    # The targets hold for the default install (asyncio); uvloop's figures are for comparison.
    ratio_target, cpu_target = (">= 1.0", "<= 300") if loop == "asyncio" else (None, None)
    return [
        Figure(
            s, f"bulksync_items_per_s{suffix}", _med(bulk, "items_per_s"), "items/s",
            detail=detail,
        ),
        Figure(s, f"raw_aiohttp_items_per_s{suffix}", _med(raw, "items_per_s"), "items/s"),
        Figure(s, f"ceiling_ratio{suffix}", round(median(ratios), 3), "ratio", ratio_target),
        Figure(
            s, f"bulksync_cpu_us_per_item{suffix}", _med(bulk, "cpu_us_per_item"), "µs/item",
            cpu_target,
        ),
        Figure(
            s, f"raw_aiohttp_cpu_us_per_item{suffix}", _med(raw, "cpu_us_per_item"), "µs/item"
        ),
    ]  # fmt: skip


def _med(reports: list[dict[str, Any]], key: str) -> float:
    return round(median([float(r[key]) for r in reports]), 1)


# -- 2. naive baselines --------------------------------------------------------------------------


def naive_baselines(ctx: Context) -> list[Figure]:
    """The same links through sequential ``requests``, one big ``gather``, and bulksync."""
    n = ctx.sizes.ceiling_items
    timeout = 60 + n / 100
    with ctx.sandbox(
        "--quable-latency-fixed-ms", str(LATENCY_MS),
        "--quable-rate-limit-windows", "off",
        "--quable-seed-documents", str(SEED_DOCUMENTS),
    ) as sandbox:  # fmt: skip
        sequential = _links_run(
            ctx,
            sandbox,
            "sequential",
            n,
            ctx.sizes.sequential_max_s + 60,
            count=ctx.sizes.sequential_items,
            max_s=ctx.sizes.sequential_max_s,
        )
        gathered = _links_run(ctx, sandbox, "gather", n, timeout, max_s=timeout - 30)
        bulk = _links_run(ctx, sandbox, "bulksync", n, timeout, concurrency=IN_FLIGHT, rate=[])
    s = "naive_baselines"
    detail = {
        "items": n,
        "sequential_items_timed": sequential["items"],
        "gather_statuses": gathered["statuses"],
        "gather_errors": gathered["errors"],
        "bulksync_failed": bulk["failed"],
        "server_cpu_share": [r.get("server_cpu_share") for r in (sequential, gathered, bulk)],
    }
    speed = bulk["items_per_s"]
    return [
        Figure(s, "bulksync_items_per_s", round(speed, 1), "items/s", detail=detail),
        Figure(s, "sequential_items_per_s", round(sequential["items_per_s"], 1), "items/s"),
        Figure(s, "gather_items_per_s", round(gathered["items_per_s"], 1), "items/s"),
        Figure(
            s, "speedup_vs_sequential", round(speed / sequential["items_per_s"], 1), "x", ">= 50"
        ),
        Figure(s, "speedup_vs_gather", round(speed / gathered["items_per_s"], 2), "x"),
        Figure(s, "bulksync_peak_rss_mb", bulk["peak_rss_mb"], "MB"),
        Figure(s, "sequential_peak_rss_mb", sequential["peak_rss_mb"], "MB"),
        Figure(s, "gather_peak_rss_mb", gathered["peak_rss_mb"], "MB"),
    ]


# -- 3. budget accuracy --------------------------------------------------------------------------

KNOWN_LIMIT = (1000, 10.0)  # 100 requests/s over a sliding 10 s window
UNKNOWN_LIMIT = (100, 1.0)  # 100 requests/s over a sliding 1 s window, told to nobody
UNKNOWN_LONG_LIMIT = (1000, 10.0)  # 100/s again, over 10 s: a burst is refused for seconds
BUDGET_CONCURRENCY = 16


def _limit_run(
    ctx: Context, windows: tuple[int, float], retry_after: bool, rate: list[Any]
) -> dict[str, Any]:
    limit, period = windows
    per_s = limit / period
    duration = ctx.sizes.budget_s
    count = round(per_s * duration)
    with ctx.sandbox(
        "--quable-latency-fixed-ms", str(LATENCY_MS),
        "--quable-rate-limit-windows", f"{limit}/{period:g}",
        "--quable-rate-limit-retry-after", "true" if retry_after else "false",
        "--quable-seed-documents", str(SEED_DOCUMENTS),
    ) as sandbox:  # fmt: skip
        report = _links_run(
            ctx,
            sandbox,
            "bulksync",
            count,
            duration * 3 + 60,
            concurrency=BUDGET_CONCURRENCY,
            rate=rate,
            max_s=duration * 2 + 10,  # a client far below the limit is cut off, not waited for
        )
    accepted = int(report["server_links"].get("201", 0))
    refused = int(report["server_links"].get("429", 0))
    report["accepted"], report["refused"] = accepted, refused
    report["achieved_ratio"] = round(accepted / report["elapsed_s"] / per_s, 3)
    report["share_429"] = round(refused / max(1, accepted + refused), 4)
    return report


def budget_accuracy(ctx: Context) -> list[Figure]:
    """Paced to a limit we are told; then adapting to one only the server knows."""
    known = _limit_run(ctx, KNOWN_LIMIT, retry_after=True, rate=[list(KNOWN_LIMIT)])
    unknown = _limit_run(ctx, UNKNOWN_LIMIT, retry_after=False, rate=[])
    # The same unknown limit, with the Retry-After the Quable sandbox sends by default: the
    # budget pauses as told and slows down too, since every 429 now costs a pause.
    hinted = _limit_run(ctx, UNKNOWN_LIMIT, retry_after=True, rate=[])
    # A window of seconds nobody disclosed: the unpaced start fills it in a second, and the
    # server then refuses everything for nine, with or without saying how long.
    long = _limit_run(ctx, UNKNOWN_LONG_LIMIT, retry_after=False, rate=[])
    long_hinted = _limit_run(ctx, UNKNOWN_LONG_LIMIT, retry_after=True, rate=[])
    s = "budget_accuracy"

    def keep(r: dict[str, Any]) -> dict[str, Any]:
        keys = ("items", "elapsed_s", "accepted", "refused", "requests", "retries", "failed")
        return {k: r.get(k) for k in keys}

    return [
        Figure(
            s, "known_achieved_ratio", known["achieved_ratio"], "of limit", ">= 0.98",
            detail={"limit": "1000 per 10 s (100/s), told to bulksync", **keep(known)},
        ),
        Figure(s, "known_429s", known["refused"], "429s", "== 0"),
        Figure(
            s, "unknown_achieved_ratio", unknown["achieved_ratio"], "of limit", ">= 0.97",
            detail={"limit": "100 per 1 s, no Retry-After, server only", **keep(unknown)},
        ),
        Figure(s, "unknown_429_share", unknown["share_429"], "of requests", "<= 0.01"),
        Figure(
            s, "unknown_retry_after_achieved_ratio", hinted["achieved_ratio"], "of limit",
            ">= 0.95",
            detail={"limit": "100 per 1 s, 429s carry Retry-After, server only", **keep(hinted)},
        ),
        Figure(s, "unknown_retry_after_429_share", hinted["share_429"], "of requests", "<= 0.02"),
        Figure(
            s, "unknown_long_achieved_ratio", long["achieved_ratio"], "of limit", ">= 0.9",
            detail={"limit": "1000 per 10 s, no Retry-After, server only", **keep(long)},
        ),
        Figure(s, "unknown_long_429_share", long["share_429"], "of requests", "<= 0.02"),
        Figure(
            s, "unknown_long_retry_after_achieved_ratio", long_hinted["achieved_ratio"],
            "of limit", ">= 0.9",
            detail={"limit": "1000 per 10 s, 429s carry Retry-After, server only",
                    **keep(long_hinted)},
        ),
        Figure(
            s, "unknown_long_retry_after_429_share", long_hinted["share_429"], "of requests",
            "<= 0.02",
        ),
    ]  # fmt: skip


# -- 4. two-step assets --------------------------------------------------------------------------

FILE_BYTES = 50 * 1024
UPLOAD_MS, CREATE_MS = 50.0, 20.0
UPLOAD_WORKERS, CREATE_WORKERS = 8, 16
CREATES_PER_S = 100.0  # the creates' budget; the uploads feeding them take as much again


def write_assets(folder: Path, count: int, tag: str) -> Path:
    media = folder / f"media-{tag}"
    media.mkdir()
    head = tiny_png(16, 16, 7)
    blob = head + b"\0" * (FILE_BYTES - len(head))
    assets = folder / f"assets-{tag}.jsonl"
    with open(assets, "w", encoding="utf-8") as out:
        for i in range(count):
            name = f"img-{i:05d}.png"
            (media / name).write_bytes(blob)
            item = {"id": f"{tag}-{i:05d}", "file": f"{media.name}/{name}"}
            out.write(json.dumps(item) + "\n")
    return assets


def two_step_assets(ctx: Context) -> list[Figure]:
    """Upload (50 ms, 8 workers) then create (20 ms, budget-bound): pipelined, so the pair
    should run at the pace of the tighter stage, not at the sum of both latencies."""
    n = ctx.sizes.assets
    tag = ctx.tag("assets")
    assets = write_assets(ctx.folder, n, tag)
    # One budget per target pays for every request: 2 x 100/s, so the creates get 100/s.
    budget = 2 * CREATES_PER_S
    with ctx.sandbox(
        "--set", f"quable.latency.fixed_ms={CREATE_MS:g}",
        "--set", "quable.rate_limit.windows=off",
        "--route-delay-ms", f"POST /api/files={UPLOAD_MS - CREATE_MS:g}",
        module="benchmarks._sandbox",
    ) as sandbox:  # fmt: skip
        before = sandbox.stats()
        report = measured(
            ctx,
            sandbox,
            "bulksync",
            {
                "assets": str(assets),
                "tag": tag,
                "concurrency": CREATE_WORKERS,
                "stage_concurrency": {"upload": UPLOAD_WORKERS},
                "rate": [[int(budget), 1.0]],
            },
            60 + n / 10,
        )
        after = sandbox.stats()
    upload_bound = UPLOAD_WORKERS / (UPLOAD_MS / 1000)
    create_bound = CREATES_PER_S
    bound = min(upload_bound, create_bound)
    s = "two_step_assets"
    detail = {
        "assets": n,
        "file_bytes": FILE_BYTES,
        "upload_bound_items_per_s": upload_bound,
        "create_bound_items_per_s": create_bound,
        "budget_requests_per_s": budget,
        "uploads": route_counts(before, after, "POST /api/files"),
        "creates": route_counts(before, after, "POST /api/assets"),
        "failed": report["failed"],
        "server_cpu_share": report.get("server_cpu_share"),
    }
    return [
        Figure(s, "items_per_s", round(report["items_per_s"], 1), "items/s", detail=detail),
        Figure(s, "bound_items_per_s", bound, "items/s"),
        Figure(s, "bound_ratio", round(report["items_per_s"] / bound, 3), "ratio", ">= 0.9"),
    ]


# -- 5. memory -----------------------------------------------------------------------------------


def memory(ctx: Context) -> list[Figure]:
    """Peak RSS streaming N links, through the engine and the in-memory fake target.

    The fake target, not the sandbox: at ~3,000 links/s a million links would take the
    sandbox minutes and its own store would grow by a million links; the engine is what is
    measured (``benchmarks.memory_links`` does the run).
    """
    small_n, large_n = ctx.sizes.memory_links
    small = memory_links.measure(small_n, ctx.folder, IN_FLIGHT)
    large = memory_links.measure(large_n, ctx.folder, IN_FLIGHT)
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]  # type: ignore[operator]
    complete = all(r["exit_code"] == 0 and r["result_lines"] == r["links"] for r in (small, large))
    # The Python API's job.stream(): the same links as dicts from a generator, no file.
    streamed = memory_stream.measure(large_n, ctx.folder, IN_FLIGHT)
    s = "memory"
    detail = {"connector": "fake", "small": small, "large": large, "every_result_written": complete}
    stream_detail = {**streamed, "every_result_taken": memory_stream.complete(streamed)}
    return [
        Figure(
            s,
            "stream_peak_rss_large",
            streamed["peak_rss_mb"],
            "MB",
            "<= 150",
            detail=stream_detail,
        ),
        Figure(s, "stream_items_per_s_large", streamed.get("items_per_s", 0), "items/s"),
        Figure(s, "peak_rss_small", small["peak_rss_mb"], "MB", detail=detail),  # type: ignore[arg-type]
        Figure(s, "peak_rss_large", large["peak_rss_mb"], "MB", "<= 150"),  # type: ignore[arg-type]
        Figure(s, "rss_growth", round(growth, 3), "x", "<= 1.2"),
        Figure(s, "timeline_lines_large", large["timeline_lines"], "lines"),  # type: ignore[arg-type]
        Figure(s, "report_html_large", large["report_html_kb"], "KB", "<= 1536"),  # type: ignore[arg-type]
    ]


# -- 6. calls per item ---------------------------------------------------------------------------


def calls_per_item(ctx: Context) -> list[Figure]:
    """The same links as v4 grouped document links and as v5 one-per-link."""
    n = ctx.sizes.calls_links
    runs: dict[str, dict[str, Any]] = {}
    with ctx.sandbox(
        "--quable-rate-limit-windows", "off",
        "--quable-seed-documents", str(SEED_DOCUMENTS),
    ) as sandbox:  # fmt: skip
        for api in ("v5", "v4"):
            runs[api] = _links_run(
                ctx, sandbox, "bulksync", n, 60 + n / 50,
                concurrency=16, rate=[], quable={"links_api": api},
            )  # fmt: skip
    v5, v4 = (runs[api]["server_requests"] / n for api in ("v5", "v4"))
    s = "calls_per_item"
    detail = {
        "links": n,
        "documents": -(-n // LINKS_PER_ORIGIN),
        "v5_requests": runs["v5"]["server_requests"],
        "v4_requests": runs["v4"]["server_requests"],
        "v5_items_per_s": runs["v5"]["items_per_s"],
        "v4_items_per_s": runs["v4"]["items_per_s"],
        "failed": [runs["v5"]["failed"], runs["v4"]["failed"]],
    }
    return [
        Figure(s, "v5_calls_per_item", round(v5, 4), "calls/item", detail=detail),
        Figure(s, "v4_calls_per_item", round(v4, 4), "calls/item"),
        Figure(s, "v4_fewer_calls", round(v5 / v4, 1), "x"),
    ]


SCENARIOS: dict[str, Callable[[Context], list[Figure]]] = {
    "client_ceiling": client_ceiling,
    "naive_baselines": naive_baselines,
    "budget_accuracy": budget_accuracy,
    "two_step_assets": two_step_assets,
    "memory": memory,
    "calls_per_item": calls_per_item,
}

# What each scenario reports; the smoke test checks that every one of them was produced.
METRICS: dict[str, tuple[str, ...]] = {
    "client_ceiling": (
        "bulksync_items_per_s", "raw_aiohttp_items_per_s", "ceiling_ratio",
        "bulksync_cpu_us_per_item", "raw_aiohttp_cpu_us_per_item",
    ),
    "naive_baselines": (
        "bulksync_items_per_s", "sequential_items_per_s", "gather_items_per_s",
        "speedup_vs_sequential", "speedup_vs_gather",
        "bulksync_peak_rss_mb", "sequential_peak_rss_mb", "gather_peak_rss_mb",
    ),
    "budget_accuracy": (
        "known_achieved_ratio", "known_429s", "unknown_achieved_ratio", "unknown_429_share",
        "unknown_retry_after_achieved_ratio", "unknown_retry_after_429_share",
        "unknown_long_achieved_ratio", "unknown_long_429_share",
        "unknown_long_retry_after_achieved_ratio", "unknown_long_retry_after_429_share",
    ),
    "two_step_assets": ("items_per_s", "bound_items_per_s", "bound_ratio"),
    "memory": ("peak_rss_small", "peak_rss_large", "rss_growth"),
    "calls_per_item": ("v5_calls_per_item", "v4_calls_per_item", "v4_fewer_calls"),
}  # fmt: skip
