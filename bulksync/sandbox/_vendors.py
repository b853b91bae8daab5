"""The one list of sandbox vendors: the built-in ones, then plug-ins found by entry point.

A plug-in package registers its own emulated API the way the built-ins are listed here, in
its ``pyproject.toml``::

    [project.entry-points."bulksync.sandboxes"]
    myapi = "my_package.sandbox:VENDOR"      # a bulksync.sandbox.SandboxVendor

Its knobs then appear as the ``[myapi]`` table and ``--myapi-...`` flags, its routes in every
sandbox, its records in ``/_sandbox/export``. Vendors are loaded by name (importlib), so that
the core never imports a vendor module and a vendor may import any of the core.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from bulksync.sandbox._vendor import SandboxVendor

ENTRY_POINT_GROUP = "bulksync.sandboxes"
BUILTIN = (
    "bulksync.sandbox.quable:VENDOR",
    "bulksync.sandbox.propeller:VENDOR",
    "bulksync.sandbox.ocapi:VENDOR",
)
# Names the settings tree already uses at its top level.
RESERVED = frozenset({"time_scale", "log_requests", "faults"})


class VendorError(RuntimeError):
    """A vendor entry is not a SandboxVendor, or its name is taken."""


def _load(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@cache
def vendors() -> tuple[SandboxVendor, ...]:
    """Every vendor, built-ins first (in the order above), then plug-ins by entry-point name."""
    found: list[tuple[str, object]] = [(ref, _load(ref)) for ref in BUILTIN]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.append((f"entry point {ep.name} = {ep.value}", ep.load()))
    result: dict[str, SandboxVendor] = {}
    for origin, vendor in found:
        if not isinstance(vendor, SandboxVendor):
            raise VendorError(f"{origin}: not a SandboxVendor")
        if vendor.name in result or vendor.name in RESERVED or not vendor.name.isidentifier():
            raise VendorError(f"{origin}: vendor name {vendor.name!r} is taken or not a name")
        result[vendor.name] = vendor
    return tuple(result.values())


def vendor_names() -> tuple[str, ...]:
    return tuple(v.name for v in vendors())


@cache
def by_name() -> dict[str, SandboxVendor]:
    return {v.name: v for v in vendors()}


def vendor_of(path: str) -> SandboxVendor | None:
    """The vendor whose API serves ``path``; None for the sandbox's own routes."""
    for vendor in vendors():
        if vendor.owns(path):
            return vendor
    return None
