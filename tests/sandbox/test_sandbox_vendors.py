"""Vendors: the one list, and a plug-in's own emulated API found through the
``bulksync.sandboxes`` entry point with no edit to the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bulksync.sandbox import ENTRY_POINT_GROUP, SandboxSettings, vendors
from bulksync.sandbox._settings import knobs
from bulksync.sandbox._vendors import vendor_of

PLUGIN = """
from dataclasses import dataclass, field

from aiohttp import web

from bulksync.sandbox import (
    STATE,
    ErrorShapes,
    LatencySettings,
    RateLimitSettings,
    SandboxVendor,
    bearer_token,
    json_response,
    knob,
)


@dataclass(frozen=True, slots=True)
class EchoSettings:
    token: str = knob("echo-token", "the one accepted bearer token")
    seed_notes: int = knob(2, "notes created at start")
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    max_body_bytes: int = knob(1000, "larger bodies get 413")


@dataclass
class EchoStore:
    notes: dict[str, str] = field(default_factory=dict)

    def export(self):
        return {"notes": dict(self.notes)}

    def sizes(self):
        return {"notes": len(self.notes)}


def seed(store, knobs):
    for i in range(1, knobs.seed_notes + 1):
        store.notes[f"n{i}"] = f"note {i}"


async def put_note(request):
    state = request.app[STATE]
    state.store.of(EchoStore).notes[request.match_info["id"]] = (await request.text())
    state.stats.write("echo")
    return json_response(201, {"id": request.match_info["id"]})


def add_routes(app):
    app.router.add_put("/echo/notes/{id}", put_note)


def check(state, request, is_write):
    if bearer_token(request) == state.settings.of(EchoSettings).token:
        return None
    return json_response(401, {"error": "unauthorized"})


def shape(status, *_):
    return json_response(status, {"error": status})


VENDOR = SandboxVendor(
    name="echo",
    title="Echo",
    settings=EchoSettings,
    new_store=EchoStore,
    seed=seed,
    owns=lambda path: path.startswith("/echo/"),
    add_routes=add_routes,
    authenticate=check,
    errors=ErrorShapes(
        error=shape,
        too_many_requests=lambda: shape(429),
        too_large=lambda limit: shape(413),
        injected=shape,
        no_route=lambda method, path, status: shape(status),
    ),
)
"""

CLIENT = """
import asyncio, aiohttp
from bulksync.sandbox import SandboxSettings, running_sandbox, vendors

async def main():
    assert [v.name for v in vendors()] == ["quable", "propeller", "ocapi", "echo"]
    settings = SandboxSettings().with_overrides({"echo.seed_notes": "3"})
    assert settings.echo.seed_notes == 3 and "echo" in settings.faults.apis
    async with running_sandbox(settings) as sandbox, aiohttp.ClientSession(sandbox.url) as http:
        async with http.put("/echo/notes/x", data="hi") as r:
            print("anonymous", r.status)
        headers = {"Authorization": "Bearer echo-token"}
        async with http.put("/echo/notes/x", data="hi", headers=headers) as r:
            print("with token", r.status)
        async with http.put("/echo/notes/y", data="x" * 2000, headers=headers) as r:
            print("too large", r.status)
        async with http.get("/_sandbox/export") as r:
            print("export", (await r.json())["echo"])
        stats = sandbox.state.stats
        print("stats", stats.auth_failures["echo"], stats.writes["echo"])

asyncio.run(main())
"""


def _install_plugin(root: Path) -> None:
    """What ``pip install`` leaves on sys.path: the module and a dist-info naming the entry
    point, read by importlib.metadata like any installed package's."""
    (root / "sandbox_echo.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    info = root / "sandbox_echo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sandbox-echo\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = sandbox_echo:VENDOR\n", encoding="utf-8"
    )


def test_the_builtin_vendors_are_listed_once_and_own_their_paths():
    assert [v.name for v in vendors()][:3] == ["quable", "propeller", "ocapi"]
    assert vendor_of("/api/documents").name == "quable"
    assert vendor_of("/v2/links/search").name == "propeller"
    assert vendor_of("/oauth2/token").name == "propeller"
    assert vendor_of("/s/-/dw/batch").name == "ocapi"
    assert vendor_of("/_sandbox/stats") is None
    tables = {k.path.partition(".")[0] for k in knobs() if "." in k.path}
    assert {"quable", "propeller", "ocapi", "faults"} <= tables
    assert SandboxSettings().faults.apis[:3] == ("quable", "propeller", "ocapi")


def test_a_plugin_vendor_is_served_with_its_knobs_auth_store_and_limits(tmp_path: Path):
    _install_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", CLIENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "anonymous 401",
        "with token 201",
        "too large 413",
        "export {'notes': {'n1': 'note 1', 'n2': 'note 2', 'n3': 'note 3', 'x': 'hi'}}",
        "stats 1 1",
    ]


def test_a_plugin_flag_appears_in_the_command_line(tmp_path: Path):
    _install_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "bulksync.sandbox", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--echo-seed-notes" in done.stdout
    assert "Quable, Propeller, OCAPI and Echo APIs" in " ".join(done.stdout.split())
