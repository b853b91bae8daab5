"""OCAPI as a sandbox vendor: the Account Manager token routes, the Data API and its batch."""

from __future__ import annotations

from aiohttp import web

from bulksync.sandbox._vendor import SandboxVendor
from bulksync.sandbox.ocapi._auth import TOKEN_PATHS, check
from bulksync.sandbox.ocapi._auth import add_routes as token_routes
from bulksync.sandbox.ocapi._batch import OCAPI_BATCH
from bulksync.sandbox.ocapi._batch import add_routes as batch_routes
from bulksync.sandbox.ocapi._errors import ERRORS
from bulksync.sandbox.ocapi._routes import add_routes as data_routes
from bulksync.sandbox.ocapi._seed import seed
from bulksync.sandbox.ocapi._settings import OcapiSettings
from bulksync.sandbox.ocapi._store import OcapiStore


def _owns(path: str) -> bool:
    return path.startswith(("/s/-/dw/", "/dw/", "/dwsso/"))


def _add_routes(app: web.Application) -> None:
    for add in (token_routes, data_routes, batch_routes):
        add(app)


VENDOR = SandboxVendor(
    name="ocapi",
    title="OCAPI",
    settings=OcapiSettings,
    new_store=OcapiStore,
    seed=seed,
    owns=_owns,
    add_routes=_add_routes,
    authenticate=check,
    errors=ERRORS,
    public_paths=frozenset(TOKEN_PATHS),
    # The batch API answers an oversized body with its own 400.
    own_body_limit=frozenset({OCAPI_BATCH}),
    file_knobs=("catalogs_file",),
)
