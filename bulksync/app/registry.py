"""The target kinds installed: every ``bulksync.targets`` entry point names a TargetSpec.

Built-in targets register the way a third-party package does (pyproject.toml), so adding one
edits no core file. A spec is loaded only when its kind is asked for: a broken plug-in fails
the jobs that use it, with one line, and no other.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from bulksync.spi._connector import Capabilities
from bulksync.spi._errors import ConfigError
from bulksync.spi._spec import TargetSpec

GROUP = "bulksync.targets"


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=GROUP)}


def kinds() -> list[str]:
    """The installed target kinds, sorted."""
    return sorted(_entry_points())


def known(kind: str) -> bool:
    return kind in _entry_points()


def unknown_kind(kind: str) -> ConfigError:
    available = ", ".join(kinds()) or f"none: no package registers a {GROUP} entry point"
    return ConfigError(f"unknown target kind '{kind}' (available: {available})")


@cache
def target_spec(kind: str) -> TargetSpec:
    """The spec of ``kind``; :class:`ConfigError` (one line) when none is installed or it does
    not load."""
    point = _entry_points().get(kind)
    if point is None:
        raise unknown_kind(kind)
    try:
        spec = point.load()
    except Exception as exc:  # any failure of a plug-in's import is that plug-in's, not ours
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"target kind '{kind}' could not be loaded from {point.value}: {detail}"
        ) from None
    if not isinstance(spec, TargetSpec) or spec.name != kind:
        raise ConfigError(f"target kind '{kind}': {point.value} is not a TargetSpec named '{kind}'")
    if not isinstance(spec.capabilities, Capabilities):
        raise ConfigError(f"target kind '{kind}': the spec's capabilities is no Capabilities")
    if not (isinstance(spec.options, type) and issubclass(spec.options, BaseModel)):
        raise ConfigError(f"target kind '{kind}': the spec's options is no pydantic model")
    if not spec.credentials:
        raise ConfigError(
            f"target kind '{kind}': the spec accepts no credentials (\"none\" for none)"
        )
    if not callable(spec.connector):
        raise ConfigError(f"target kind '{kind}': the spec's connector cannot be called")
    return spec
