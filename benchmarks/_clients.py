"""The measured clients, each run in a fresh process: ``python -m benchmarks._clients NAME JSON``.

- ``bulksync``: the real job runner (``run_job_async``) with a Config built in code; Quable
  unless ``kind`` names another target (``propeller``, ``ocapi``: OAuth client credentials).
- ``raw_pool``: the ceiling baseline, N aiohttp workers on one session, no results, no retries.
- ``gather``: what a user writes first, one unbounded ``asyncio.gather`` over every item.
- ``sequential``: the vendor docs' style, one ``requests.post`` after the other.
- ``raw_upload``: the large files' baseline, N aiohttp workers streaming multipart uploads.

Each prints one JSON line: items, elapsed seconds, CPU seconds of the process during the timed
part, peak RSS of the process, and what the server answered. Every loop is bounded in count
(the input) and in time (``max_s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._peak import peak_rss_kib

TOKEN_ENV = "BULKSYNC_BENCH_QUABLE_TOKEN"
TOKEN = "sandbox-token"
CLIENT_ID_ENV, CLIENT_SECRET_ENV = "BULKSYNC_BENCH_CLIENT_ID", "BULKSYNC_BENCH_CLIENT_SECRET"
SANDBOX_CREDENTIALS = "sandbox"  # the sandbox's default client id and secret


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return round(peak_rss_kib() / 1024, 1)


def link_body(link: dict[str, Any]) -> dict[str, Any]:
    """The v5 ``POST /api/links`` body for one input link, as bulksync's connector builds it."""
    body: dict[str, Any] = {
        "origin": {"id": link["from"]},
        "target": {"id": link["to"]},
        "linkType": {"id": link["type"]},
        "attributes": [],
    }
    if link.get("sequence") is not None:
        body["sequence"] = link["sequence"]
    return body


def _loop_factory(args: dict[str, Any]) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``loop``: "asyncio" (the default install's loop) or "uvloop" (``bulksync[fast]``); the
    raw pool and bulksync run on the same one in a comparison."""
    if args.get("loop", "asyncio") == "asyncio":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _links(path: str) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _report(items: int, started: float, cpu_started: float, **extra: Any) -> dict[str, Any]:
    elapsed = time.perf_counter() - started
    cpu = _cpu() - cpu_started
    return {
        "items": items,
        "elapsed_s": round(elapsed, 4),
        "items_per_s": round(items / elapsed, 2) if elapsed > 0 else None,
        "cpu_s": round(cpu, 4),
        "cpu_us_per_item": round(cpu / items * 1e6, 1) if items else None,
        "peak_rss_mb": _peak_rss_mb(),
        **extra,
    }


# -- bulksync -------------------------------------------------------------------------------


def bulksync(args: dict[str, Any]) -> dict[str, Any]:
    import anyio

    from bulksync.app import _loop
    from bulksync.app.config import (
        BudgetConfig,
        Config,
        InputsConfig,
        LimitsConfig,
        OutputConfig,
        StateConfig,
        TargetConfig,
    )
    from bulksync.app.runner import RunReport, run_job_async

    kind = str(args.get("kind", "quable"))
    if kind == "quable":
        os.environ[TOKEN_ENV] = TOKEN
        target = TargetConfig(
            kind=kind,
            base_url=args["url"],
            token_env=TOKEN_ENV,
            timeout_s=float(args.get("timeout_s", 60.0)),
        )
    else:
        os.environ[CLIENT_ID_ENV] = os.environ[CLIENT_SECRET_ENV] = SANDBOX_CREDENTIALS
        target = TargetConfig(
            kind=kind,
            base_url=args["url"],
            client_id_env=CLIENT_ID_ENV,
            client_secret_env=CLIENT_SECRET_ENV,
        )
    folder = Path(args["folder"])
    config = Config(
        target=target,
        inputs=InputsConfig(
            assets=Path(args["assets"]) if args.get("assets") else None,
            links=Path(args["links"]) if args.get("links") else None,
        ),
        limits=LimitsConfig(
            rate=[(int(n), float(s)) for n, s in args.get("rate", [])],
            pace=args.get("pace"),
            concurrency=int(args.get("concurrency", 16)),
            stage_concurrency=dict(args.get("stage_concurrency", {})),
            max_elapsed_s=float(args.get("max_elapsed_s", 300.0)),
        ),
        output=OutputConfig(results=folder / f"results-{args['tag']}.jsonl", progress=False),
        sections={kind: dict(args.get(kind, {}))},
        budget=BudgetConfig(**args.get("budget", {})),
    )
    if args.get("state_path"):  # processes running at once: one state each
        config.state = StateConfig(path=Path(args["state_path"]))
    max_s = float(args.get("max_s", 600.0))
    outcome: dict[str, RunReport] = {}

    async def main() -> None:
        with anyio.move_on_after(max_s):
            outcome["report"] = await run_job_async(config, True)

    _loop.choose(str(args.get("loop", "asyncio")))
    cpu_started, started, wall_started = _cpu(), time.perf_counter(), time.time()
    _loop.run(main)
    wall_ended = time.time()
    report = outcome.get("report")
    summary = report.summary if report else {}
    total = int(summary.get("total", 0))
    return _report(
        total,
        started,
        cpu_started,
        exit_code=report.exit_code if report else None,
        timed_out=report is None,
        succeeded=summary.get("succeeded"),
        failed=summary.get("failed"),
        requests=summary.get("requests"),
        retries=summary.get("retries"),
        throttled=summary.get("throttled"),
        engine_elapsed_s=summary.get("elapsed_s"),
        loop=_loop.loop_name(),
        wall_started=wall_started,
        wall_ended=wall_ended,
    )


# -- raw aiohttp worker pool -------------------------------------------------------------------


def raw_pool(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    bodies = [link_body(link) for link in _links(args["links"])]
    workers, max_s = int(args["concurrency"]), float(args.get("max_s", 600.0))
    statuses: dict[str, int] = {}
    errors = 0

    async def main() -> tuple[float, float]:
        nonlocal errors
        headers = {"Authorization": f"Bearer {TOKEN}"}
        connector = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(args["url"], connector=connector, headers=headers) as s:
            items = iter(bodies)
            deadline = time.monotonic() + max_s

            async def worker() -> None:
                nonlocal errors
                for body in items:  # the shared iterator hands each body to one worker
                    if time.monotonic() > deadline:
                        return
                    try:
                        async with s.post("/api/links", json=body) as response:
                            await response.read()
                            key = str(response.status)
                            statuses[key] = statuses.get(key, 0) + 1
                    except aiohttp.ClientError:
                        errors += 1

            cpu_started, started = _cpu(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(workers)))
            return cpu_started, started

    with asyncio.Runner(loop_factory=_loop_factory(args)) as runner:
        cpu_started, started = runner.run(main())
    done = sum(statuses.values()) + errors
    return _report(done, started, cpu_started, statuses=statuses, errors=errors)


# -- naive: one unbounded gather ---------------------------------------------------------------


def gather(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    max_s = float(args.get("max_s", 600.0))
    statuses: dict[str, int] = {}
    errors = 0
    cpu_started, started = _cpu(), time.perf_counter()

    async def post(session: aiohttp.ClientSession, link: dict[str, Any]) -> None:
        nonlocal errors
        try:
            async with session.post("/api/links", json=link_body(link)) as response:
                await response.read()
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        except aiohttp.ClientError:
            errors += 1

    async def main() -> None:
        # As written by hand: every item read into memory, one task each, aiohttp's defaults.
        links = list(_links(args["links"]))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(args["url"], headers=headers) as session:
            await asyncio.wait_for(asyncio.gather(*(post(session, x) for x in links)), max_s)

    asyncio.run(main())
    done = sum(statuses.values()) + errors
    return _report(done, started, cpu_started, statuses=statuses, errors=errors)


# -- naive: sequential requests ----------------------------------------------------------------


def sequential(args: dict[str, Any]) -> dict[str, Any]:
    import requests

    url = args["url"] + "/api/links"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limit, max_s = int(args["count"]), float(args.get("max_s", 60.0))
    statuses: dict[str, int] = {}
    cpu_started, started = _cpu(), time.perf_counter()
    deadline = time.monotonic() + max_s
    done = 0
    # As in the vendor docs' examples: one requests.post per item, no session, no concurrency.
    for link in _links(args["links"]):
        if done >= limit or time.monotonic() > deadline:
            break
        response = requests.post(url, json=link_body(link), headers=headers, timeout=30)
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        done += 1
    return _report(done, started, cpu_started, statuses=statuses)


# -- the shared budget's cost per acquire --------------------------------------------------------


def acquire(args: dict[str, Any]) -> dict[str, Any]:
    """``count`` acquires of an unpaced budget, in memory then on Redis: the time of each, and
    Redis's round trips (script calls) per grant."""
    import anyio

    from bulksync.engine._redis_budget import RedisBudget
    from bulksync.engine.budget import RateBudget

    count, url = int(args["count"]), str(args["url"])
    windows = [(10**9, 600.0), (10**9, 86400.0)]  # Quable's two windows, never full here
    timings: dict[str, float] = {}

    async def main() -> int:
        memory = RateBudget(windows, pace=1e9)
        shared = RedisBudget(windows, url=url, shown=url, key=str(args["key"]), pace=1e9)
        await shared.open()
        for name, budget in (("memory", memory), ("redis", shared)):
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                await budget.acquire()
            timings[name] = (time.perf_counter() - started) / count * 1e6
            # This process's own CPU: what the wall time is, less the waits for a core.
            timings[f"{name}_cpu"] = (time.process_time() - cpu) / count * 1e6
        # The floor the machine sets: a bare PING on the same connection pool.
        started = time.perf_counter()
        for _ in range(count):
            await shared._client.ping()
        timings["ping"] = (time.perf_counter() - started) / count * 1e6
        await shared.aclose()
        return shared.round_trips - 1  # the open()

    cpu_started, started = _cpu(), time.perf_counter()
    trips = anyio.run(main)
    return _report(
        count,
        started,
        cpu_started,
        memory_us=round(timings["memory"], 1),
        redis_us=round(timings["redis"], 1),
        ping_us=round(timings["ping"], 1),
        memory_cpu_us=round(timings["memory_cpu"], 1),
        redis_cpu_us=round(timings["redis_cpu"], 1),
        round_trips_per_acquire=round(trips / count, 3),
    )


# -- raw aiohttp streaming upload --------------------------------------------------------------


def raw_upload(args: dict[str, Any]) -> dict[str, Any]:
    """The uploads' baseline: N workers on one aiohttp session, each file streamed from disk as
    a multipart ``POST /api/files`` (``fileType``, ``file``), nothing else done with it."""
    import aiohttp

    files = [Path(f) for f in args["files"]]
    workers, max_s = int(args["concurrency"]), float(args.get("max_s", 600.0))
    statuses: dict[str, int] = {}
    errors = 0

    async def main() -> tuple[float, float]:
        nonlocal errors
        headers = {"Authorization": f"Bearer {TOKEN}"}
        timeout = aiohttp.ClientTimeout(total=max_s)
        async with aiohttp.ClientSession(args["url"], headers=headers, timeout=timeout) as s:
            queue = iter(files)

            async def worker() -> None:
                nonlocal errors
                for path in queue:  # the shared iterator hands each file to one worker
                    with open(path, "rb") as handle:  # noqa: ASYNC230 - aiohttp reads it off-loop
                        form = aiohttp.FormData()
                        form.add_field("fileType", "asset")
                        form.add_field(
                            "file", handle, filename=path.name,
                            content_type="application/octet-stream",
                        )  # fmt: skip
                        try:
                            async with s.post("/api/files", data=form) as response:
                                await response.read()
                                key = str(response.status)
                                statuses[key] = statuses.get(key, 0) + 1
                        except aiohttp.ClientError:
                            errors += 1

            cpu_started, started = _cpu(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(workers)))
            return cpu_started, started

    cpu_started, started = asyncio.run(main())
    done = sum(statuses.values()) + errors
    return _report(done, started, cpu_started, statuses=statuses, errors=errors)


CLIENTS = {
    "bulksync": bulksync,
    "raw_pool": raw_pool,
    "gather": gather,
    "sequential": sequential,
    "acquire": acquire,
    "raw_upload": raw_upload,
}


def main(argv: list[str]) -> int:
    name, args = argv[0], json.loads(argv[1])
    report = CLIENTS[name](args)
    print(json.dumps({"client": name, **report}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
