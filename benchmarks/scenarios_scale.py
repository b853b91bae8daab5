"""The scale scenarios of ``python -m benchmarks`` (issue 18): how each cost grows with the work.

- ``cpu_scale``: client CPU per single-call item at 10k and 100k links (and 1M with
  ``--large``), each size a fresh bulksync process against the same sandbox as the ceiling.
- ``resync``: a resync of N unchanged links (200,000, or 1,000,000 with ``--large``):
  items skipped per second, requests sent, peak RSS, and the state database's size per million
  items (``benchmarks.resync_links`` does the runs).
- ``large_uploads``: large files through the two-step upload path against a raw aiohttp
  streaming upload of the same files to the same sandbox (MB/s), and the peak RSS of bulksync
  uploading one 2 GiB file.

Same conventions as ``benchmarks.scenarios``: fresh pinned client processes, the sandbox in a
process of its own, ratios taken within one run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import resync_links
from ._harness import Figure, Sandbox, median, route_counts
from .scenarios import LINKS_PER_ORIGIN, Context, measured, write_links

LATENCY_MS = 20.0  # as the client ceiling: the same requests, at other sizes
IN_FLIGHT = 64
CPU_ROUNDS_UP_TO = 100_000  # larger cpu_scale sizes get one round (1M links: 6 minutes)
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    cpu_links: tuple[int, ...]
    # Rounds per size up to CPU_ROUNDS_UP_TO, interleaved, the median kept: one round of a
    # shared machine's noise moved the growth by 10%.
    cpu_rounds: int
    resync_links: int
    upload_files: int
    upload_file_mib: int
    upload_rounds: int
    big_file_mib: int


SMOKE = ScaleSizes((300, 1_000), 1, 2_000, 2, 2, 1, 8)
FULL = ScaleSizes((10_000, 100_000), 3, 200_000, 4, 128, 3, 2048)
LARGE = ScaleSizes((10_000, 100_000, 1_000_000), 3, 1_000_000, 4, 256, 3, 2048)


def sizes(ctx: Context) -> ScaleSizes:
    if ctx.smoke:
        return SMOKE
    return LARGE if ctx.large else FULL


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


# -- client CPU per item at growing sizes ---------------------------------------------------------


def cpu_scale(ctx: Context) -> list[Figure]:
    """The client ceiling's single-link POSTs at each size: the CPU per item must stay flat.

    Each size runs ``cpu_rounds`` times (once above 100k links), the sizes interleaved and their
    order reversed every other round, so a drift of the machine falls on every size alike; the
    growth is taken between the sizes' medians.
    """
    scale = sizes(ctx)
    counts = scale.cpu_links
    documents = max(2000, -(-max(counts) // LINKS_PER_ORIGIN))
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with ctx.sandbox(
        "--quable-latency-fixed-ms", str(LATENCY_MS),
        "--quable-rate-limit-windows", "off",
        "--quable-seed-documents", str(documents),
    ) as sandbox:  # fmt: skip
        for round_ in range(scale.cpu_rounds):
            order = counts if round_ % 2 == 0 else tuple(reversed(counts))
            for n in order:
                if round_ == 0 or n <= CPU_ROUNDS_UP_TO:
                    rounds[n].append(_cpu_run(ctx, sandbox, n, documents))
    per_item = [median([float(r["cpu_us_per_item"]) for r in rounds[n]]) for n in counts]
    growth = max(per_item) / min(per_item)
    s = "cpu_scale"
    detail = {
        "sizes": list(counts),
        "cpu_us_per_item": per_item,
        "cpu_us_rounds": [[r["cpu_us_per_item"] for r in rounds[n]] for n in counts],
        "cpu_us_min_median_max": [
            [
                min(r["cpu_us_per_item"] for r in rounds[n]),
                v,
                max(r["cpu_us_per_item"] for r in rounds[n]),
            ]
            for n, v in zip(counts, per_item, strict=True)
        ],
        "items_per_s": [[r["items_per_s"] for r in rounds[n]] for n in counts],
        "peak_rss_mb": [max(r["peak_rss_mb"] for r in rounds[n]) for n in counts],
        "failed": [sum(r["failed"] or 0 for r in rounds[n]) for n in counts],
        "server_links": [[r["server_links"] for r in rounds[n]] for n in counts],
        "server_cpu_share": [[r.get("server_cpu_share") for r in rounds[n]] for n in counts],
    }
    figures = [
        Figure(s, f"cpu_us_per_item_{_label(n)}", round(v, 1), "µs/item")
        for n, v in zip(counts, per_item, strict=True)
    ]
    figures[0].detail = detail
    figures.append(Figure(s, "cpu_growth", round(growth, 3), "x", "<= 1.1"))
    return figures


def _cpu_run(ctx: Context, sandbox: Sandbox, n: int, documents: int) -> dict[str, Any]:
    tag = ctx.tag("cpu")
    links = write_links(ctx.folder / f"links-{tag}.jsonl", n, tag, documents)
    timeout = 120 + n / 100  # 100 links/s would be far below the figure measured
    args = {
        "links": str(links), "tag": tag, "concurrency": IN_FLIGHT, "rate": [],
        "max_s": timeout - 60,
    }  # fmt: skip
    report = measured(ctx, sandbox, "bulksync", args, timeout)
    if report.get("timed_out") or report["items"] != n:
        raise RuntimeError(f"{n:,} links: {report['items']} done, not all in time")
    links.unlink()
    for leftover in ctx.folder.glob(f"results-{tag}*"):
        leftover.unlink()
    return report


# -- resync of unchanged links ----------------------------------------------------------------


def resync(ctx: Context) -> list[Figure]:
    """N links the state holds unchanged: every one skipped, none sent."""
    n = sizes(ctx).resync_links
    run = resync_links.measure(n, ctx.folder)
    s = "resync"
    ok = run["skipped"] == n and run["skipped_no_plan"] == n
    detail = {**run, "every_item_skipped": ok}
    return [
        Figure(s, "skipped_per_s", run["skipped_per_s"], "items/s", ">= 50000", detail=detail),  # type: ignore[arg-type]
        Figure(s, "skipped_per_cpu_s", run["skipped_per_cpu_s"], "items/CPU s"),  # type: ignore[arg-type]
        Figure(s, "skipped_per_s_no_plan", run["skipped_per_s_no_plan"], "items/s"),  # type: ignore[arg-type]
        Figure(s, "requests", run["requests"], "requests", "== 0"),  # type: ignore[arg-type]
        Figure(s, "peak_rss_mb", run["peak_rss_mb"], "MB", "<= 150"),  # type: ignore[arg-type]
        Figure(s, "state_mb_per_million", run["state_mb_per_million"], "MB"),  # type: ignore[arg-type]
    ]


# -- large-file uploads -------------------------------------------------------------------------

UPLOAD_WORKERS = 2
BIG_KEYS = ("mb_per_s", "failed", "statuses", "uploads", "peak_rss_mb", "cpu_s", "elapsed_s")


def _sparse_files(folder: Path, tag: str, count: int, size: int) -> tuple[Path, list[Path]]:
    """``count`` files of ``size`` bytes (sparse: made in no time, read as zeros) and the
    assets input naming them."""
    media = folder / f"media-{tag}"
    media.mkdir()
    files = []
    for i in range(count):
        path = media / f"blob-{i:03d}.bin"
        with open(path, "wb") as out:
            out.truncate(size)
        _warm(path)
        files.append(path)
    assets = folder / f"assets-{tag}.jsonl"
    with open(assets, "w", encoding="utf-8") as out:
        for i, path in enumerate(files):
            out.write(json.dumps({"id": f"{tag}-{i:03d}", "file": f"{media.name}/{path.name}"}))
            out.write("\n")
    return assets, files


def _warm(path: Path) -> None:
    """Read the file once: the first reader of a sparse file pays for the kernel's page cache
    filling (seconds of system time for 2 GiB), and that must not be whichever client is
    first."""
    with open(path, "rb") as handle:
        while handle.read(4 * MIB):
            pass


def _remove(assets: Path, files: list[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)
    if files:
        files[0].parent.rmdir()
    assets.unlink(missing_ok=True)


def _upload_pair(
    ctx: Context, sandbox: Any, count: int, size: int, order: list[str]
) -> dict[str, dict[str, Any]]:
    """bulksync and the raw uploader over the same new files; MB/s of each."""
    tag = ctx.tag("upload")
    assets, files = _sparse_files(ctx.folder, tag, count, size)
    total = count * size
    timeout = 120 + total / MIB / 10  # 10 MB/s would be far below either client
    runs: dict[str, dict[str, Any]] = {}
    try:
        for client in order:
            before = sandbox.stats()
            if client == "bulksync":
                args = {
                    "assets": str(assets),
                    "tag": ctx.tag("assets"),
                    "concurrency": UPLOAD_WORKERS,
                    "stage_concurrency": {"upload": UPLOAD_WORKERS},
                    "rate": [],
                    "timeout_s": timeout,
                }
            else:
                args = {"files": [str(f) for f in files], "concurrency": UPLOAD_WORKERS}
            report = measured(ctx, sandbox, client, args, timeout + 60)
            after = sandbox.stats()
            report["uploads"] = route_counts(before, after, "POST /api/files")
            report["mb_per_s"] = round(total / 1e6 / float(report["elapsed_s"]), 1)
            runs[client] = report
    finally:
        _remove(assets, files)
        for leftover in ctx.folder.glob("results-assets-*"):
            leftover.unlink()
    return runs


def large_uploads(ctx: Context) -> list[Figure]:
    size = sizes(ctx)
    big = size.big_file_mib * MIB
    with ctx.sandbox(
        "--set", "quable.latency.fixed_ms=0",
        "--set", "quable.rate_limit.windows=off",
        "--set", f"quable.max_body_bytes={big + 16 * MIB}",
        module="benchmarks._sandbox",
    ) as sandbox:  # fmt: skip
        rounds = []
        for round_ in range(size.upload_rounds):
            order = ["raw_upload", "bulksync"] if round_ % 2 == 0 else ["bulksync", "raw_upload"]
            each = size.upload_file_mib * MIB
            rounds.append(_upload_pair(ctx, sandbox, size.upload_files, each, order))
        single = _upload_pair(ctx, sandbox, 1, big, ["raw_upload", "bulksync"])
    ratios = [r["bulksync"]["mb_per_s"] / r["raw_upload"]["mb_per_s"] for r in rounds]
    s = "large_uploads"
    detail = {
        "files": size.upload_files,
        "file_mib": size.upload_file_mib,
        "workers": UPLOAD_WORKERS,
        "round_ratios": [round(x, 3) for x in ratios],
        "bulksync_mb_per_s": [r["bulksync"]["mb_per_s"] for r in rounds],
        "raw_mb_per_s": [r["raw_upload"]["mb_per_s"] for r in rounds],
        "bulksync_uploads": [r["bulksync"]["uploads"] for r in rounds],
        "bulksync_failed": [r["bulksync"]["failed"] for r in rounds],
        "raw_statuses": [r["raw_upload"]["statuses"] for r in rounds],
        "server_cpu_share": [
            (r["bulksync"].get("server_cpu_share"), r["raw_upload"].get("server_cpu_share"))
            for r in rounds
        ],
        "big_file_mib": size.big_file_mib,
        "big_bulksync": {k: single["bulksync"].get(k) for k in BIG_KEYS},
        "big_raw": {k: single["raw_upload"].get(k) for k in BIG_KEYS},
    }
    bulk_mb = median([r["bulksync"]["mb_per_s"] for r in rounds])
    raw_mb = median([r["raw_upload"]["mb_per_s"] for r in rounds])
    big_ratio = single["bulksync"]["mb_per_s"] / single["raw_upload"]["mb_per_s"]
    return [
        Figure(s, "bulksync_mb_per_s", round(bulk_mb, 1), "MB/s", detail=detail),
        Figure(s, "raw_aiohttp_mb_per_s", round(raw_mb, 1), "MB/s"),
        Figure(s, "upload_ratio", round(median(ratios), 3), "ratio", ">= 0.9"),
        Figure(s, "big_file_ratio", round(big_ratio, 3), "ratio"),
        Figure(s, "big_file_peak_rss_mb", single["bulksync"]["peak_rss_mb"], "MB", "<= 100"),
        Figure(s, "raw_big_file_peak_rss_mb", single["raw_upload"]["peak_rss_mb"], "MB"),
    ]


SCENARIOS: dict[str, Callable[[Context], list[Figure]]] = {
    "cpu_scale": cpu_scale,
    "resync": resync,
    "large_uploads": large_uploads,
}

METRICS: dict[str, tuple[str, ...]] = {
    "cpu_scale": ("cpu_growth",),
    "resync": (
        "skipped_per_s", "skipped_per_cpu_s", "skipped_per_s_no_plan", "requests",
        "peak_rss_mb", "state_mb_per_million",
    ),
    "large_uploads": (
        "bulksync_mb_per_s", "raw_aiohttp_mb_per_s", "upload_ratio", "big_file_ratio",
        "big_file_peak_rss_mb", "raw_big_file_peak_rss_mb",
    ),
}  # fmt: skip

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("cpu_scale", "cpu_us_per_item_300"): "client CPU per item, 300 links",
    ("cpu_scale", "cpu_us_per_item_1k"): "client CPU per item, 1,000 links",
    ("cpu_scale", "cpu_us_per_item_10k"): "client CPU per item, 10,000 links",
    ("cpu_scale", "cpu_us_per_item_100k"): "client CPU per item, 100,000 links",
    ("cpu_scale", "cpu_us_per_item_1m"): "client CPU per item, 1,000,000 links",
    ("cpu_scale", "cpu_growth"): "largest ÷ smallest CPU per item over the sizes",
    ("resync", "skipped_per_s"): "unchanged links skipped per second (wall, plan line on)",
    ("resync", "skipped_per_cpu_s"): "the same per CPU second of the run",
    ("resync", "skipped_per_s_no_plan"): "skipped per second, `[output] plan = false`",
    ("resync", "requests"): "requests sent",
    ("resync", "peak_rss_mb"): "peak RSS of the resync",
    ("resync", "state_mb_per_million"): "state database per million items",
    ("large_uploads", "bulksync_mb_per_s"): "bulksync, upload then create (median of rounds)",
    ("large_uploads", "raw_aiohttp_mb_per_s"): "raw aiohttp streaming upload, same files",
    ("large_uploads", "upload_ratio"): "bulksync ÷ raw MB/s (median of the rounds' ratios)",
    ("large_uploads", "big_file_ratio"): "the same for one 2 GiB file",
    ("large_uploads", "big_file_peak_rss_mb"): "peak RSS, bulksync uploading one 2 GiB file",
    ("large_uploads", "raw_big_file_peak_rss_mb"): "peak RSS, raw aiohttp, the same file",
}

NOTES = """
9. **cpu_scale**: the client ceiling's requests (single-link `POST /api/links`, sandbox
   latency {latency:g} ms, no rate limit, {in_flight} in flight) at {cpu} links, one fresh
   bulksync process per size against one sandbox seeded with enough documents; client CPU per
   item as in 1. Growth = the largest figure ÷ the smallest (flat: ≤ 1.1). `--large` adds
   1,000,000 links (about 7 minutes against the sandbox).
10. **resync**: `benchmarks.resync_links`, {resync:,} links (`--large`: 1,000,000). The state is
   filled first as a run against the in-memory fake target confirms the links (same keys,
   content hashes and ids), without sending them; then `bulksync run` in its own process over
   the same input, as a user starts it (the plan line's own pass over the input included),
   and once more with `[output] plan = false` (the engine's pass alone). Skipped per second =
   links ÷ that process's wall time, start-up included; per CPU second = links ÷ its user +
   system time, which the shared machine's other load does not stretch. Requests: the run's
   summary. State size: the database and its log after the resync, per million links.
11. **large_uploads**: {files} sparse files of {file_mib} MiB (read as zeros, so the disk is not
   measured) through bulksync (Quable `POST /api/files` then `POST /api/assets`,
   {workers} upload workers) and through a raw aiohttp pool ({workers} workers, one multipart
   `POST /api/files` per file streamed from disk), {rounds} round(s) in alternating order, new
   files each time (read once before, so that neither client pays for filling the page
   cache), against one sandbox with no latency whose upload route streams the file through
   its hash. MB/s = bytes ÷ the client's elapsed time. Then one {big:,} MiB file
   through both, and each process's peak RSS (`VmHWM`).
"""


def notes(smoke: bool, large: bool = False) -> str:
    size = SMOKE if smoke else LARGE if large else FULL
    return NOTES.format(
        latency=LATENCY_MS,
        in_flight=IN_FLIGHT,
        cpu=", ".join(f"{n:,}" for n in size.cpu_links),
        resync=size.resync_links,
        files=size.upload_files,
        file_mib=size.upload_file_mib,
        workers=UPLOAD_WORKERS,
        rounds=size.upload_rounds,
        big=size.big_file_mib,
    )
