"""App factory, in-process start/stop, and the ``bulksync sandbox`` entry point."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from aiohttp import web

from bulksync.sandbox._cli import Options, parse
from bulksync.sandbox._inspect import add_routes as inspect_routes
from bulksync.sandbox._middleware import pipeline
from bulksync.sandbox._settings import SandboxSettings, SettingsError
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox._vendors import by_name

# Connections still busy after this long at shutdown are cut: SIGTERM must end us within 2 s.
SHUTDOWN_TIMEOUT = 1.0


def build_app(settings: SandboxSettings | None = None) -> web.Application:
    """A ready aiohttp application with a freshly seeded store."""
    settings = settings or SandboxSettings()
    # aiohttp's own cap only guards against unbounded bodies; each API's limit is checked
    # by the middleware and the body readers, so that the 413 comes in the API's own shape.
    state = SandboxState(settings)
    largest = max(settings.api(v.name).max_body_bytes for v in state.vendors)
    app = web.Application(middlewares=[pipeline], client_max_size=largest + 1)
    app[STATE] = state
    for vendor in state.vendors:
        vendor.add_routes(app)
    inspect_routes(app)
    return app


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A running sandbox: its base URL and its live state (store, stats, tokens)."""

    url: str
    host: str
    port: int
    state: SandboxState
    app: web.Application

    def base_url(self, vendor: str) -> str:
        """Where the resources of API ``vendor`` start (its ``base_path`` below ``url``)."""
        return self.url + by_name()[vendor].base_path

    @property
    def propeller_url(self) -> str:
        """The Propeller base URL, like ``https://api.helice.cloud/v2``; the token endpoint
        is at the root of ``url``."""
        return self.base_url("propeller")

    def reset(self) -> None:
        self.state.reset()


@asynccontextmanager
async def running_sandbox(
    settings: SandboxSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Serve a sandbox on ``host:port`` (0 = any free port) for the duration of the block."""
    app = build_app(settings)
    state = app[STATE]
    access_log = logging.getLogger("aiohttp.access") if state.settings.log_requests else None
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        shown = f"[{host}]" if ":" in host else host
        yield Sandbox(f"http://{shown}:{bound_port}", host, bound_port, state, app)
    finally:
        await runner.cleanup()


async def _serve(options: Options) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not possible outside the main thread; Ctrl-C then still ends asyncio.run().
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with running_sandbox(options.settings, options.host, options.port) as sandbox:
            print(f"sandbox listening on {sandbox.url}", flush=True)
            await stop.wait()
    except OSError as exc:
        print(
            f"bulksync sandbox: cannot listen on {options.host}:{options.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``bulksync sandbox [--host H] [--port P] [--config FILE] [knobs...]``; returns the exit
    code: 0 after SIGINT/SIGTERM, 1 if the address cannot be bound, 2 for bad settings."""
    try:
        options = parse(argv)
    except SettingsError as exc:
        print(f"bulksync sandbox: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    if options.settings.log_requests:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    return asyncio.run(_serve(options))
