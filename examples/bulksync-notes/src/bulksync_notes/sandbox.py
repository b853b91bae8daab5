"""A sandbox of the notes API: pins on boards, in memory, on 127.0.0.1.

Written to the API's promises and no further: an identical create makes a second pin (no
409), pages follow an ``after`` cursor in id order, and every request needs the bearer token.
``python -m bulksync_notes.sandbox --port 8765`` serves one by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "notes-token"
MAX_PAGE = 200
_FIELDS = {"board": str, "note": str, "label": str, "position": int}


@dataclass(slots=True)
class NotesState:
    token: str = TOKEN
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> pin, in id order
    requests: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self) -> str:
        return f"pin-{next(self._ids):06d}"  # zero-padded: text order is creation order


STATE = web.AppKey("state", NotesState)


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


@web.middleware
async def _authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
    state: NotesState = request.app[STATE]
    state.requests += 1
    if request.headers.get("Authorization") != f"Bearer {state.token}":
        return _error(401, "unauthorized", "a valid bearer token is required")
    response: web.StreamResponse = await handler(request)
    return response


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "bad_json", "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "bad_json", "the body is not a JSON object")
    return body


async def create(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    pin: dict[str, Any] = {}
    for name, kind in _FIELDS.items():
        value = body.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            return _error(422, "invalid", f"'{name}' must be a non-empty {kind.__name__}")
        pin[name] = value
    state: NotesState = request.app[STATE]
    pin["id"] = state.new_id()
    state.pins[pin["id"]] = pin
    return web.json_response(pin, status=201)


async def listing(request: web.Request) -> web.Response:
    state: NotesState = request.app[STATE]
    query = request.query
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        return _error(400, "invalid", "'limit' must be a number")
    if not 1 <= limit <= MAX_PAGE:
        return _error(400, "invalid", f"'limit' must be between 1 and {MAX_PAGE}")
    wanted = {k: query[k] for k in ("board", "note", "label") if k in query}
    after = query.get("after", "")
    found = [
        pin
        for ident, pin in state.pins.items()
        if ident > after and all(pin[k] == v for k, v in wanted.items())
    ]
    page = found[:limit]
    following = page[-1]["id"] if len(found) > limit else None
    return web.json_response({"items": page, "next": following})


async def update(request: web.Request) -> web.Response:
    state: NotesState = request.app[STATE]
    pin = state.pins.get(request.match_info["pin"])
    if pin is None:
        return _error(404, "not_found", "no such pin")
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    position = body.get("position")
    if not isinstance(position, int) or isinstance(position, bool):
        return _error(422, "invalid", "'position' must be an int")
    pin["position"] = position
    return web.json_response(pin)


async def delete(request: web.Request) -> web.Response:
    state: NotesState = request.app[STATE]
    if state.pins.pop(request.match_info["pin"], None) is None:
        return _error(404, "not_found", "no such pin")
    return web.Response(status=204)


def build_app(state: NotesState | None = None) -> web.Application:
    app = web.Application(middlewares=[_authenticated])
    app[STATE] = state or NotesState()
    app.router.add_post("/v1/pins", create)
    app.router.add_get("/v1/pins", listing)
    app.router.add_put("/v1/pins/{pin}", update)
    app.router.add_delete("/v1/pins/{pin}", delete)
    return app


@dataclass(frozen=True, slots=True)
class RunningNotes:
    url: str
    state: NotesState


@asynccontextmanager
async def running_notes(
    state: NotesState | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningNotes]:
    """Serve the sandbox on ``host:port`` (0: any free port) for the duration of the block."""
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield RunningNotes(f"http://{host}:{runner.addresses[0][1]}", app[STATE])
    finally:
        await runner.cleanup()


async def _serve(port: int) -> None:
    async with running_notes(port=port) as notes:
        print(f"notes sandbox on {notes.url} (token: {notes.state.token})", flush=True)
        await asyncio.Event().wait()  # until Ctrl-C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
