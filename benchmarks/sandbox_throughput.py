"""Requests per second the sandbox serves on loopback, so it is never our benchmarks' bottleneck.

    python -m benchmarks.sandbox_throughput                      # 20,000 requests per route
    python -m benchmarks.sandbox_throughput --requests 5000 --concurrency 32 --seconds 10

Starts ``python -m bulksync.sandbox`` in its own process on 127.0.0.1 with no latency, no rate
limits and no faults, drives two simple routes with a pool of aiohttp clients (spread over
``--clients`` processes, so the client is not what is measured), prints one JSON line and stops
the server. Routes: ``POST /api/links`` (each a new link) and ``GET /api/assets/{id}``.
The issue asks for at least 2,000 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks._harness import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
TOKEN = {"Authorization": "Bearer sandbox-token"}
JSON_BODY = {"Content-Type": "application/json"}
DOCUMENTS = 2000
ASSET = "bench-asset"


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable, "-m", "bulksync.sandbox", "--host", "127.0.0.1", "--port", "0",
        "--quable-rate-limit-windows", "off", "--quable-seed-documents", str(DOCUMENTS),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=15):
            process.kill()
            raise SystemExit("sandbox did not start within 15 s")
    line = process.stdout.readline().decode().strip()
    prefix = "sandbox listening on "
    if not line.startswith(prefix):
        process.kill()
        raise SystemExit(f"unexpected first line from the sandbox: {line!r}")
    return process, line[len(prefix) :]


def stop_server(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return time.monotonic() - started


def _request(route: str, n: int) -> tuple[str, str, bytes | None]:
    if route == "links":
        # A distinct (origin, target) pair per request: every call is a real create.
        body = {
            "origin": {"id": f"doc-{n % DOCUMENTS + 1:05d}"},
            "target": {"id": f"doc-{(n // DOCUMENTS) % DOCUMENTS + 1:05d}"},
            "linkType": {"id": "bench"},
            "sequence": n,
        }
        return "POST", "/api/links", orjson.dumps(body)
    return "GET", f"/api/assets/{ASSET}", None


async def _drive(
    url: str, route: str, first: int, count: int, concurrency: int, seconds: float
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    statuses: dict[int, int] = {}
    errors = 0
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(url, connector=connector, headers=TOKEN) as session:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            n = offset
            while n < count and time.monotonic() < deadline:
                method, path, body = _request(route, first + n)
                try:
                    headers = JSON_BODY if body is not None else None
                    async with session.request(
                        method, path, data=body, headers=headers
                    ) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except aiohttp.ClientError:
                    errors += 1
                done += 1
                n += concurrency

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"done": done, "elapsed": elapsed, "statuses": statuses, "errors": errors}


def _client(args: tuple[str, str, int, int, int, float]) -> dict[str, Any]:
    return asyncio.run(_drive(*args))


def run_route(
    url: str,
    route: str,
    requests: int,
    concurrency: int,
    clients: int,
    seconds: float,
    server_pid: int,
) -> dict[str, Any]:
    share = requests // clients
    jobs = [(url, route, i * share, share, concurrency, seconds) for i in range(clients)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        pool.map(_client, [(url, route, -1, 0, 1, 1.0)] * clients)  # import everything first
        cpu_before = cpu_seconds(server_pid)
        started = time.monotonic()
        parts = pool.map(_client, jobs)
        wall = time.monotonic() - started
        cpu_after = cpu_seconds(server_pid)
    done = sum(p["done"] for p in parts)
    busy = max(p["elapsed"] for p in parts)
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "requests": done,
        "seconds": round(busy, 3),
        "requests_per_second": round(done / busy) if busy else 0,
        "statuses": statuses,
        "client_errors": sum(p["errors"] for p in parts),
        "wall_seconds": round(wall, 3),
        # What one server core could serve if the clients did not share the machine's CPUs.
        "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
        "server_capacity_rps": round(done / server_cpu) if server_cpu else None,
    }


async def _prepare(url: str) -> None:
    async with aiohttp.ClientSession(url, headers=TOKEN) as session:
        body = {"id": ASSET, "remotePath": "https://example.invalid/bench.png"}
        async with session.post("/api/assets", json=body) as response:
            if response.status != 201:
                raise SystemExit(f"could not create the benchmark asset: {response.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per route")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap per route")
    parser.add_argument("--concurrency", type=int, default=64, help="connections per client")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--routes", default="links,get", help="comma list of links, get")
    args = parser.parse_args(argv)
    process, url = start_server()
    try:
        asyncio.run(_prepare(url))
        results = {
            route: run_route(
                url, route, args.requests, args.concurrency, args.clients, args.seconds, process.pid
            )
            for route in args.routes.split(",")
        }
    finally:
        stop_seconds = stop_server(process)
    total = sum(r["requests"] for r in results.values())
    busy = sum(r["seconds"] for r in results.values())
    summary = {
        "benchmark": "sandbox_throughput",
        "requests_per_second": round(total / busy) if busy else 0,
        "requests": total,
        "routes": results,
        "concurrency": args.concurrency,
        "clients": args.clients,
        "server_stop_seconds": round(stop_seconds, 3),
        "cpus": os.cpu_count(),
    }
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
