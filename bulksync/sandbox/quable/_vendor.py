"""Quable as a sandbox vendor: which paths are its, its auth, error shapes and digest header."""

from __future__ import annotations

import hashlib

from aiohttp import web

from bulksync.sandbox._vendor import SandboxVendor
from bulksync.sandbox.quable._assets import add_routes as asset_routes
from bulksync.sandbox.quable._auth import QUABLE_SESSIONS, check
from bulksync.sandbox.quable._auth import add_routes as session_routes
from bulksync.sandbox.quable._documents import add_routes as document_routes
from bulksync.sandbox.quable._errors import ERRORS
from bulksync.sandbox.quable._links import add_routes as link_routes
from bulksync.sandbox.quable._seed import seed
from bulksync.sandbox.quable._sessions import QuableSessions
from bulksync.sandbox.quable._settings import QuableSettings
from bulksync.sandbox.quable._store import QuableStore
from bulksync.sandbox.quable._v4 import add_routes as v4_routes


def _owns(path: str) -> bool:
    return path.startswith(("/api/", "/api_1.php/")) or path == "/api"


def _add_routes(app: web.Application) -> None:
    for add in (session_routes, asset_routes, document_routes, link_routes, v4_routes):
        add(app)


def _digest(response: web.StreamResponse) -> None:
    # Every Quable answer carries the SHA-256 of its body.
    body = response.body if isinstance(response, web.Response) else None
    digest = hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
    response.headers["Quable-Digest"] = digest


VENDOR = SandboxVendor(
    name="quable",
    title="Quable",
    settings=QuableSettings,
    new_store=QuableStore,
    seed=seed,
    owns=_owns,
    add_routes=_add_routes,
    authenticate=check,
    errors=ERRORS,
    public_paths=frozenset({QUABLE_SESSIONS}),
    file_knobs=("documents_file",),
    new_sessions=QuableSessions,
    finish=_digest,
)
