"""The sandbox: a local emulator of the Quable PIM, Propeller and SFCC OCAPI APIs.

It is the default target of ``bulksync demo``, the server of the integration tests and
benchmarks, and a way to rehearse a migration against the vendors' real limits. It behaves as
the vendor documents describe (shapes, status codes, field and header names, limits); where they
are silent the behaviour is a knob of :class:`SandboxSettings`.

Default credentials
-------------------
- Quable: bearer token ``sandbox-token`` (static, never expires), or log in with user
  ``sandbox`` / password ``sandbox`` via ``POST /api_1.php/sessions``.
- Propeller: client id ``sandbox``, secret ``sandbox`` (``POST /oauth2/token``); the REST API
  under ``/v2`` (``sandbox.propeller_url``), as ``https://api.helice.cloud/v2``.
- OCAPI: client id ``sandbox``, secret ``sandbox`` (``POST /dwsso/oauth2/access_token``).

Use
---
From the shell::

    bulksync sandbox --port 8080 [--config sandbox.toml] [--quable-latency-fixed-ms 50 ...]
    python -m bulksync.sandbox --port 0     # prints "sandbox listening on http://HOST:PORT"

From Python (tests, the demo)::

    async with running_sandbox(SandboxSettings(time_scale=100)) as sandbox:
        ...  # talk to sandbox.url; inspect sandbox.state.store / sandbox.state.stats

Inspection needs no auth: ``GET /_sandbox/stats``, ``GET /_sandbox/export``,
``POST /_sandbox/reset``.

Layout
------
A shared core (``_server``, ``_middleware``, ``_faults``, ``_ratelimit``, ``_stats``,
``_store``, ``_tokens``, ``_seed``, ``_settings``/``_knobs``, ``_http``, ``_errors``,
``_inspect``, ``_cli``) that names no vendor, and one sub-package per emulated API
(``quable/``, ``propeller/``, ``ocapi/``). Each sub-package exports a :class:`SandboxVendor`
as ``VENDOR``: its name (the ``[name]`` settings table), settings dataclass, store, seed,
which paths are its, routes, bearer check, error shapes and a few optional hooks. The list is
``_vendors.BUILTIN``; a plug-in package adds its own under the ``bulksync.sandboxes``
entry-point group (``name = "module:VENDOR"``) and edits nothing here; what a vendor's
code needs (``knob``, ``STATE``, ``Reply``, ``json_response``, ``read_body``,
``bearer_token``, the shared tables) is exported here.
"""

from bulksync.sandbox._errors import Reply, json_response
from bulksync.sandbox._http import bearer_token, read_body
from bulksync.sandbox._knobs import knob
from bulksync.sandbox._server import Sandbox, build_app, main, running_sandbox
from bulksync.sandbox._settings import (
    FaultSettings,
    LatencySettings,
    RateLimitSettings,
    RateWindow,
    SandboxSettings,
    SettingsError,
)
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox._vendor import ErrorShapes, SandboxVendor
from bulksync.sandbox._vendors import ENTRY_POINT_GROUP, vendors
from bulksync.sandbox.ocapi import OcapiSettings
from bulksync.sandbox.propeller import PropellerSettings
from bulksync.sandbox.quable import QuableSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "STATE",
    "ErrorShapes",
    "FaultSettings",
    "LatencySettings",
    "OcapiSettings",
    "PropellerSettings",
    "QuableSettings",
    "RateLimitSettings",
    "RateWindow",
    "Reply",
    "Sandbox",
    "SandboxSettings",
    "SandboxState",
    "SandboxVendor",
    "SettingsError",
    "bearer_token",
    "build_app",
    "json_response",
    "knob",
    "main",
    "read_body",
    "running_sandbox",
    "vendors",
]
