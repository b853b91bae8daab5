"""Which event loop a run uses: uvloop when it is installed (``bulksync[fast]``), else asyncio.

The client's CPU per request is mostly the event loop and the HTTP path, and uvloop's loop
is cheaper per callback and per socket read than asyncio's. It is optional: the default install
runs on asyncio, and ``--loop asyncio`` (or ``BULKSYNC_LOOP=asyncio``) turns uvloop off where
it is installed, to rule it out while chasing a problem.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack

import anyio

from bulksync.spi._errors import ConfigError

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOPS: tuple[LoopChoice, ...] = ("auto", "uvloop", "asyncio")
ENV = "BULKSYNC_LOOP"

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_chosen: LoopChoice | None = None  # set by the command line's --loop; else the env var


def choose(choice: str | None) -> None:
    """What ``--loop`` said (None: not given, the env var or ``auto`` decides)."""
    global _chosen
    _chosen = None if choice is None else _checked(choice, "--loop")


def _checked(choice: str, where: str) -> LoopChoice:
    for known in LOOPS:
        if choice == known:
            return known
    raise ConfigError(f"{where} must be one of {', '.join(LOOPS)}, got '{choice}'")


def choice() -> LoopChoice:
    if _chosen is not None:
        return _chosen
    value = os.environ.get(ENV, "").strip().lower()
    return _checked(value, ENV) if value else "auto"


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(wanted: LoopChoice | None = None) -> LoopFactory | None:
    """uvloop's loop factory when it should be used, None for asyncio's own loop."""
    wanted = wanted or choice()
    if wanted == "asyncio":
        return None
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if wanted == "uvloop":
            raise ConfigError(
                "--loop uvloop: uvloop is not installed (pip install 'bulksync[fast]')"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(wanted: LoopChoice | None = None) -> str:
    """The loop a run started now would use: "uvloop" or "asyncio"."""
    return "asyncio" if loop_factory(wanted) is None else "uvloop"


def run(func: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """``anyio.run`` on the chosen loop."""
    options: dict[str, Any] = {}
    factory = loop_factory()
    if factory is not None:
        options["loop_factory"] = factory
    return anyio.run(func, *args, backend_options=options)
