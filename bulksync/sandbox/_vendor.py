"""What one emulated API brings to the sandbox: the :class:`SandboxVendor` interface.

The shared core (server, middleware, faults, rate windows, stats, settings loading, tokens)
knows no vendor by name. Everything that differs between APIs is one field here, filled in by
the vendor's sub-package (``bulksync/sandbox/quable/`` ...) or by a plug-in; the list of
vendors is in :mod:`bulksync.sandbox._vendors`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

if TYPE_CHECKING:
    from bulksync.sandbox._settings import LatencySettings, RateLimitSettings, SandboxSettings
    from bulksync.sandbox._state import SandboxState


class ApiSettings(Protocol):
    """What the core reads in every vendor's settings table (a frozen dataclass of knobs)."""

    @property
    def latency(self) -> LatencySettings: ...

    @property
    def rate_limit(self) -> RateLimitSettings: ...

    @property
    def max_body_bytes(self) -> int: ...


class VendorStore(Protocol):
    """A vendor's in-memory records: ``GET /_sandbox/export`` and the sizes in the stats."""

    def export(self) -> Any: ...

    def sizes(self) -> dict[str, int]: ...


class Resettable(Protocol):
    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ErrorShapes:
    """The same situation in the API's own words; the core picks the situation, the vendor
    the body (each returns a ready response)."""

    error: Callable[[int], web.Response]  # a framework error with the status' reason phrase
    too_many_requests: Callable[[], web.Response]  # the core adds Retry-After
    too_large: Callable[[int], web.Response]  # the body limit, in bytes
    injected: Callable[[int], web.Response]  # a fault-injected status: a gateway's answer
    no_route: Callable[[str, str, int], web.Response]  # method, path, 404 or 405


Authenticate = Callable[["SandboxState", web.Request, bool], "web.Response | None"]
"""``(state, request, is_write)``: None when the request may proceed, else the refusal."""


@dataclass(frozen=True, slots=True)
class SandboxVendor:
    """One emulated API.

    ``name`` is its settings table (``[name]`` in TOML, ``--name-...`` flags), its key in the
    store, the stats, the rate windows and ``faults.apis``. ``settings`` is a frozen dataclass
    of knobs built like the core's (``latency``, ``rate_limit`` and ``max_body_bytes`` are
    required, see :class:`ApiSettings`); ``new_store``/``seed`` give the records a fresh or
    reset sandbox starts with; ``owns`` says which request paths are this API's;
    ``add_routes`` adds its handlers to the app.
    """

    name: str
    title: str
    settings: type[Any]
    new_store: Callable[[], VendorStore]
    seed: Callable[[Any, Any], None]  # (the vendor's store, its settings table)
    owns: Callable[[str], bool]
    add_routes: Callable[[web.Application], None]
    authenticate: Authenticate
    errors: ErrorShapes
    # Routes that hand out tokens cannot demand one; a garbage fault spares them too.
    public_paths: frozenset[str] = frozenset()
    # Paths that answer an oversized body in their own way (OCAPI's batch: a 400).
    own_body_limit: frozenset[str] = frozenset()
    # String knobs naming files, resolved against the directory of the TOML file.
    file_knobs: tuple[str, ...] = ()
    # The base of its resources below the sandbox URL (Propeller's "/v2").
    base_path: str = ""
    # Per-run login state (sessions) kept outside the store, reset with it.
    new_sessions: Callable[[SandboxSettings, Callable[[], float]], Resettable] | None = None
    # A last touch on every answer of this API (Quable's digest header).
    finish: Callable[[web.StreamResponse], None] | None = None
