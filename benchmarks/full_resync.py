"""`--full` over a target that already holds the catalogue: listing speed, writes, memory.

    python -m benchmarks.full_resync                  # 10,000 and 50,000 links
    python -m benchmarks.full_resync --sizes 20000    # any sizes

For each size the sandbox (in this process, no latency, no rate limit) is filled directly with
N Quable links; the input holds the same links with 1% of their sequences changed. One
`bulksync run --full` (its own process, so its peak RSS is its own) must list every link
through the hydra paging and write exactly the changed 1% (v5: DELETE + POST each). One JSON
line per size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

from bulksync.sandbox import SandboxSettings, running_sandbox

ROOT = Path(__file__).resolve().parent.parent
PER_DOCUMENT = 100
PAGE = 100  # the sandbox's largest page (API Platform clamps a larger limit)


def triple(i: int) -> tuple[str, str]:
    return f"doc-{i // PER_DOCUMENT + 1:05d}", f"doc-{i % PER_DOCUMENT + 1:05d}"


async def measure(count: int, folder: Path) -> dict[str, object]:
    documents = count // PER_DOCUMENT + PER_DOCUMENT + 1
    settings = SandboxSettings().with_overrides(
        {"quable.seed_documents": str(documents), "quable.rate_limit.windows": ""}
    )
    changed = set(range(0, count, 100))  # 1%
    rows = []
    for i in range(count):
        origin, target = triple(i)
        sequence = i + 1_000_000 if i in changed else i
        rows.append({"from": origin, "to": target, "type": "ref", "sequence": sequence})
    (folder / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    async with running_sandbox(settings) as sandbox:
        store = sandbox.state.store.quable
        for i in range(count):
            origin, target = triple(i)
            store.add_link(origin, "document", target, "document", "ref", i, {})
        config = folder / "job.toml"
        config.write_text(
            f"""
[target]
kind = "quable"
base_url = "{sandbox.url}"
token_env = "BENCH_FULL_TOKEN"
[inputs]
links = "links.jsonl"
[limits]
rate = [[1000000, 1]]
concurrency = 32
[quable]
list_page_size = {PAGE}
[output]
results = "results.jsonl"
progress = false
[state]
enabled = false
""",
            encoding="utf-8",
        )
        peak_file = folder / "peak.txt"
        env = {
            **os.environ,
            "BENCH_FULL_TOKEN": "sandbox-token",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        before = sandbox.state.stats.snapshot()["requests"]
        started = time.monotonic()
        command = [
            sys.executable, "-m", "benchmarks._peak", str(peak_file),
            "bulksync", "run", "--config", str(config), "--full",
        ]  # fmt: skip
        with anyio.fail_after(600):
            done = await anyio.run_process(command, env=env, check=False)
        elapsed = time.monotonic() - started
        after = sandbox.state.stats.snapshot()["requests"]
        held = sorted((x["origin"], x["target"], x["sequence"]) for x in store.links.values())
    sent = {
        route: sum(after[route].values()) - sum(before.get(route, {}).values()) for route in after
    }
    expected = sorted((*triple(i), r["sequence"]) for i, r in enumerate(rows))
    lines = (folder / "results.jsonl").read_bytes().splitlines()
    statuses = [orjson.loads(line)["status"] for line in lines]
    return {
        "links": count,
        "exit_code": done.returncode,
        "list_pages": sent.get("GET /api/links", 0),
        "writes": sum(n for route, n in sent.items() if route.split(" ")[0] != "GET"),
        "changed": len(changed),
        "skipped": statuses.count("skipped"),
        "succeeded": statuses.count("succeeded"),
        "target_matches_input": held == expected,
        "elapsed_s": round(elapsed, 1),
        "listed_per_s": round(count / elapsed),
        "peak_rss_mb": round(int(peak_file.read_text()) / 1024, 1) if peak_file.exists() else 0,
    }


async def run(sizes: list[int]) -> int:
    ok = True
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bulksync-full-") as tmp:
            figure = await measure(size, Path(tmp))
        print(orjson.dumps(figure).decode(), flush=True)
        ok = ok and figure["exit_code"] == 0 and figure["target_matches_input"] is True
        ok = ok and figure["writes"] == 2 * size // 100
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    args = parser.parse_args()
    return anyio.run(run, args.sizes)


if __name__ == "__main__":
    sys.exit(main())
