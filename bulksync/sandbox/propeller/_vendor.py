"""Propeller as a sandbox vendor: its token route at the host root, its REST API under /v2."""

from __future__ import annotations

from aiohttp import web

from bulksync.sandbox._vendor import SandboxVendor
from bulksync.sandbox.propeller._auth import PROPELLER_TOKEN, check
from bulksync.sandbox.propeller._auth import add_routes as token_routes
from bulksync.sandbox.propeller._errors import ERRORS
from bulksync.sandbox.propeller._routes import PROPELLER_V2 as V2
from bulksync.sandbox.propeller._routes import add_routes as link_routes
from bulksync.sandbox.propeller._seed import seed
from bulksync.sandbox.propeller._settings import PropellerSettings
from bulksync.sandbox.propeller._store import PropellerStore


def _owns(path: str) -> bool:
    return path in (PROPELLER_TOKEN, V2) or path.startswith(V2 + "/")


def _add_routes(app: web.Application) -> None:
    token_routes(app)
    link_routes(app)


VENDOR = SandboxVendor(
    name="propeller",
    title="Propeller",
    settings=PropellerSettings,
    new_store=PropellerStore,
    seed=seed,
    owns=_owns,
    add_routes=_add_routes,
    authenticate=check,
    errors=ERRORS,
    public_paths=frozenset({PROPELLER_TOKEN}),
    file_knobs=("resources_file",),
    base_path=V2,
)
