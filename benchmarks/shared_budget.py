"""The shared budget on Redis (issue 19): N bulksync processes, one window, and the cost of it.

A redis-server of its own (a unix socket in the scratch folder, nothing saved, stopped by its
PID) and a sandbox whose time-scaled 10-minute window is the limit every client is told. For
N = 1, 2, 4 and 8 processes started together, each with 1/N of the links: what the sandbox
accepted over the group's wall time, as a share of the limit, and the 429s it sent. Then, in a
fresh process, the time of one acquire in memory and on Redis: the overhead per request, and
Redis's round trips per grant (the runs' script calls ÷ their requests too).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ._harness import Figure, pinning, route_counts, run_client
from .scenarios import LINKS_ROUTE, SEED_DOCUMENTS, Context, write_links

PROCESSES = (1, 2, 4, 8)
SCALE = 20.0  # Quable's 10 minutes last 30 real seconds
LIMIT = 3000  # per 10 minutes: 100 requests/s for all the processes together
WINDOW_S = 600.0 / SCALE
LATENCY_MS = 20.0
ACQUIRES = {False: 5000, True: 300}  # full, smoke


class RedisServer:
    """redis-server on a unix socket in ``folder``, pinned beside the sandbox."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.socket = folder / "redis.sock"
        self.url = f"unix://{self.socket}"
        server_prefix, _ = pinning()
        options = ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        self.process = subprocess.Popen(
            [*server_prefix, binary, "--port", "0", "--unixsocket", str(self.socket), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        self.client = redis.Redis(unix_socket_path=str(self.socket))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer within 10 s")

    def script_calls(self) -> int:
        stats = self.client.info("commandstats")
        return sum(
            int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
        )

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _group(ctx: Context, redis: RedisServer, processes: int) -> dict[str, Any]:
    per_s = LIMIT / WINDOW_S
    per_process = round(per_s * ctx.sizes.budget_s / processes)
    tag = ctx.tag(f"shared{processes}")
    with ctx.sandbox(
        "--time-scale", f"{SCALE:g}",
        "--quable-latency-fixed-ms", str(LATENCY_MS),
        "--quable-rate-limit-windows", f"{LIMIT}/600",
        "--quable-seed-documents", str(SEED_DOCUMENTS),
    ) as sandbox:  # fmt: skip
        jobs = []
        for n in range(processes):
            links = write_links(ctx.folder / f"links-{tag}-{n}.jsonl", per_process, f"{tag}-{n}")
            jobs.append(
                {
                    "url": sandbox.url,
                    "folder": str(ctx.folder),
                    "links": str(links),
                    "tag": f"{tag}-{n}",
                    "concurrency": 8,
                    "rate": [[LIMIT, WINDOW_S]],
                    "budget": {"backend": "redis", "url": redis.url, "key": tag},
                    "state_path": str(ctx.folder / f"state-{tag}-{n}.sqlite"),
                    "max_s": ctx.sizes.budget_s * 3 + 20,
                }
            )
        before, calls_before = sandbox.stats(), redis.script_calls()
        timeout = ctx.sizes.budget_s * 4 + 60
        with ThreadPoolExecutor(processes + 1) as pool:
            done = pool.map(lambda job: run_client("bulksync", job, timeout), jobs)
            first, last, accepted = _watch(sandbox, before, processes * per_process, timeout)
            reports = list(done)
        after, calls = sandbox.stats(), redis.script_calls() - calls_before
    links = route_counts(before, after, LINKS_ROUTE)
    accepted = int(links.get("201", 0))
    wall = max(r["wall_ended"] for r in reports) - min(r["wall_started"] for r in reports)
    requests = sum(int(r.get("requests") or 0) for r in reports)
    # The sandbox's own view: links accepted after the first one, over the time since it.
    sending = last - first
    return {
        "processes": processes,
        "accepted": accepted,
        "refused": int(after["rate_limited"]["total"]) - int(before["rate_limited"]["total"]),
        "sending_s": round(sending, 3),
        "achieved_ratio": round((accepted - 1) / sending / per_s, 3) if sending > 0 else None,
        "wall_s": round(wall, 3),
        "wall_ratio": round(accepted / wall / per_s, 3),
        "requests": requests,
        "round_trips_per_request": round(calls / max(1, requests), 3),
        "exit_codes": sorted({r.get("exit_code") for r in reports}, key=str),
    }


POLL_S = 0.05


def _watch(
    sandbox: Any, before: dict[str, Any], total: int, limit_s: float
) -> tuple[float, float, int]:
    """When the sandbox accepted its first link and its last (polled every POLL_S, bounded
    by ``limit_s``), and how many it accepted by then."""
    first = last = 0.0
    accepted = 0
    deadline = time.monotonic() + limit_s
    while accepted < total and time.monotonic() < deadline:
        now = time.monotonic()
        accepted = int(route_counts(before, sandbox.stats(), LINKS_ROUTE).get("201", 0))
        if accepted and not first:
            first = now
        last = now
        time.sleep(POLL_S)
    return first, last, accepted


def shared_budget(ctx: Context) -> list[Figure]:
    s = "shared_budget"
    figures: list[Figure] = []
    folder = ctx.folder / "redis"
    folder.mkdir(exist_ok=True)
    redis = RedisServer(folder)
    try:
        groups = [_group(ctx, redis, n) for n in PROCESSES]
        cost = run_client(
            "acquire",
            {"url": redis.url, "key": ctx.tag("acquire"), "count": ACQUIRES[ctx.smoke]},
            300,
        )
    finally:
        redis.stop()
    for group in groups:
        n = group["processes"]
        figures.append(
            Figure(
                s, f"n{n}_achieved_ratio", group["achieved_ratio"], "of limit", ">= 0.98",
                detail={"limit": f"{LIMIT} per 10 min at time scale {SCALE:g}", **group},
            )
        )  # fmt: skip
        figures.append(Figure(s, f"n{n}_429s", group["refused"], "429s", "== 0"))
    trips = max(g["round_trips_per_request"] for g in groups)
    figures += [
        Figure(s, "round_trips_per_request", trips, "round trips", detail={"most of N": groups}),
        Figure(s, "acquire_us_memory", cost["memory_us"], "µs"),
        Figure(s, "acquire_us_redis", cost["redis_us"], "µs", "<= 1000", detail=cost),
        Figure(s, "overhead_us_per_acquire", round(cost["redis_us"] - cost["memory_us"], 1), "µs",
               "<= 1000"),
        Figure(s, "round_trips_per_acquire", cost["round_trips_per_acquire"], "round trips"),
        Figure(s, "redis_ping_us", cost["ping_us"], "µs"),
        Figure(s, "acquire_cpu_us_redis", cost["redis_cpu_us"], "µs", "<= 1000"),
        Figure(s, "acquire_cpu_us_memory", cost["memory_cpu_us"], "µs"),
    ]  # fmt: skip
    return figures


SCENARIOS = {"shared_budget": shared_budget}
METRICS = {
    "shared_budget": (
        *(f"n{n}_{m}" for n in PROCESSES for m in ("achieved_ratio", "429s")),
        "round_trips_per_request", "acquire_us_memory", "acquire_us_redis",
        "overhead_us_per_acquire", "round_trips_per_acquire", "redis_ping_us",
        "acquire_cpu_us_redis", "acquire_cpu_us_memory",
    ),
}  # fmt: skip
DESCRIPTIONS: dict[tuple[str, str], str] = {
    **{
        ("shared_budget", f"n{n}_achieved_ratio"): f"{n} process(es), one Redis budget: "
        "accepted ÷ limit"
        for n in PROCESSES
    },
    **{("shared_budget", f"n{n}_429s"): f"429s, {n} process(es)" for n in PROCESSES},
    ("shared_budget", "round_trips_per_request"): "Redis script calls ÷ requests (worst N)",
    ("shared_budget", "acquire_us_memory"): "one acquire, in-memory budget (unpaced)",
    ("shared_budget", "acquire_us_redis"): "one acquire, Redis budget (loopback socket)",
    ("shared_budget", "overhead_us_per_acquire"): "Redis minus memory, per acquire",
    ("shared_budget", "round_trips_per_acquire"): "round trips per acquire (unpaced)",
    ("shared_budget", "redis_ping_us"): "a bare Redis PING, same process: the machine's floor",
    ("shared_budget", "acquire_cpu_us_redis"): "client CPU per acquire, Redis budget",
    ("shared_budget", "acquire_cpu_us_memory"): "client CPU per acquire, in-memory budget",
}
NOTES = """
9. **shared_budget**: a redis-server of its own on a unix socket and a sandbox whose 10-minute
   window is {limit:,} requests, time-scaled {scale:g} times (30 real seconds, 100 requests/s);
   N = 1, 2, 4, 8 bulksync processes started together, each told the same window and given 1/N
   of {links:,} links, share one `[budget] backend = "redis"` key. The ratio is the sandbox's
   view: the links it accepted after the first one, over the time from the first to the last
   (polled every 50 ms), ÷ 100/s; the group's wall time, start-up and the run records
   included, is in the detail (`wall_ratio`). The acquire figures are {acquires:,} acquires of
   an unpaced budget in a fresh process, in memory and then through the Lua script, and as
   many bare PINGs (what one round trip costs on the machine at that moment); the CPU figures
   are the client process's own CPU time per acquire, which waits for a core do not inflate. Round
   trips per request are Redis's script calls ÷ the requests the runs made: a slot within 2 s
   is reserved in the call that asks for it, and only a pause or a longer wait costs another.
"""


def notes(smoke: bool, budget_s: float) -> str:
    return NOTES.format(
        limit=LIMIT, scale=SCALE, links=round(LIMIT / WINDOW_S * budget_s), acquires=ACQUIRES[smoke]
    )
