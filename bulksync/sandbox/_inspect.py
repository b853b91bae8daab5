"""Inspection routes, outside every emulated API and needing no auth:
``GET /_sandbox/stats``, ``GET /_sandbox/export`` and ``POST /_sandbox/reset``."""

from __future__ import annotations

from aiohttp import web

from bulksync.sandbox._errors import json_response
from bulksync.sandbox._state import STATE


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    snapshot = state.stats.snapshot()
    snapshot["store"] = state.store.sizes()
    snapshot["rate_windows"] = {api: lim.usage() for api, lim in state.limiters.items()}
    snapshot["fault_counter"] = state.faults.counter
    snapshot["time_scale"] = state.settings.time_scale
    return json_response(200, snapshot)


async def export(request: web.Request) -> web.Response:
    return json_response(200, request.app[STATE].store.export())


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset()
    return json_response(200, {"reset": True, "store": state.store.sizes()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sandbox/stats", stats)
    app.router.add_get("/_sandbox/export", export)
    app.router.add_post("/_sandbox/reset", reset)
