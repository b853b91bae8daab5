"""One ``Job.stream()`` run for ``benchmarks.memory_stream``: N dict links from a generator
through the fake target, each result taken by the consumer; prints one JSON line.

    python -m benchmarks._stream_child COUNT CONCURRENCY FOLDER
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

import bulksync


async def stream(count: int, concurrency: int, folder: Path) -> dict[str, object]:
    pulled = 0

    def links() -> Iterator[dict[str, str]]:
        nonlocal pulled
        for i in range(count):
            pulled += 1
            yield {"from": f"doc-{i // 10}", "to": f"doc-{i}", "type": "ref_refCol"}

    job = bulksync.Job(
        target={"kind": "fake"},
        limits={"concurrency": concurrency},
        output={"results": str(folder / "results.jsonl"), "progress": False},
        fake={"track_keys": False},
    )
    taken = succeeded = gap = 0
    started = time.monotonic()
    async with job.stream(links=links()) as results:
        async for result in results:
            taken += 1
            succeeded += result.status == "succeeded"
            gap = max(gap, pulled - taken)  # rows pulled but not yet answered to the consumer
    elapsed = time.monotonic() - started
    report = results.report
    return {
        "links": count,
        "results_taken": taken,
        "succeeded": succeeded,
        "exit_code": None if report is None else report.exit_code,
        "window": results.window,
        "max_pulled_ahead": gap,
        "elapsed_s": round(elapsed, 1),
        "items_per_s": round(count / elapsed),
    }


def main() -> None:
    count, concurrency, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    print(orjson.dumps(asyncio.run(stream(count, concurrency, folder))).decode(), flush=True)


if __name__ == "__main__":
    main()
