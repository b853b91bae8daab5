"""The sandbox with an extra delay on chosen routes: ``python -m benchmarks._sandbox``.

The sandbox's latency knob is per API; the two-step asset scenario needs uploads slower than
creates (50 ms against 20 ms). This serves the very same sandbox app (``build_app``) with one
more middleware in front that sleeps on the routes named by ``--route-delay-ms``:

    python -m benchmarks._sandbox --port 0 --set quable.latency.fixed_ms=20 \\
        --route-delay-ms "POST /api/files=30"

It prints ``sandbox listening on URL`` first, like ``python -m bulksync.sandbox``, and stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import suppress

from aiohttp import web
from aiohttp.typedefs import Handler

from bulksync.sandbox import SandboxSettings, build_app


def delay_middleware(delays: dict[tuple[str, str], float]) -> object:
    @web.middleware
    async def route_delay(request: web.Request, handler: Handler) -> web.StreamResponse:
        delay = delays.get((request.method, request.path))
        if delay:
            await asyncio.sleep(delay)
        return await handler(request)

    return route_delay


def parse_delays(values: list[str]) -> dict[tuple[str, str], float]:
    delays: dict[tuple[str, str], float] = {}
    for value in values:
        route, _, ms = value.rpartition("=")
        method, _, path = route.strip().partition(" ")
        delays[(method.upper(), path.strip())] = float(ms) / 1000
    return delays


async def serve(host: str, port: int, settings: SandboxSettings, delays: dict) -> None:
    app = build_app(settings)
    if delays:
        app.middlewares.insert(0, delay_middleware(delays))  # outermost: before the latency
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        print(f"sandbox listening on http://{host}:{bound}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE")
    parser.add_argument("--route-delay-ms", action="append", default=[], metavar="ROUTE=MS")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = SandboxSettings().with_overrides(overrides)
    asyncio.run(serve(args.host, args.port, settings, parse_delays(args.route_delay_ms)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
