"""Seeded fault injection and latency.

Every decision for request number *n* (in arrival order, counting every request to any of the
three APIs) is derived from ``blake2b(seed, n)``, never from a shared RNG stream or the
clock. The same seed and the same request sequence therefore give the same faults and the same
jitter, whatever the timing, rate limiting or concurrency of earlier requests did.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from bulksync.sandbox._settings import FaultSettings, LatencySettings

FaultKind = Literal[
    "error",
    "disconnect",
    "drop_after_write",
    "slow",
    "close_after_response",
    "redirect",
    "applied_error",
    "garbage",
]
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: a fault (or None), its status for errors, and a jitter draw."""

    number: int
    fault: FaultKind | None
    status: int | None
    jitter: float  # uniform in [0, 1)
    garbage: str | None = None  # the kind of body of a garbage fault

    def delay_seconds(self, latency: LatencySettings) -> float:
        return (latency.fixed_ms + latency.jitter_ms * self.jitter) / 1000.0


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self._settings = settings
        self._seed = str(settings.seed).encode()
        self.counter = 0
        self.active = any(settings.rates)
        # Connections whose next request is dropped unanswered (close_after_response). Weak:
        # a connection the client closed itself leaves the set with its transport.
        self._closing: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def applies_to(self, api: str) -> bool:
        return api in self._settings.apis

    def decide(self, is_write: bool, eligible: bool = True, *, jitter: bool = True) -> Decision:
        """Draw for the next request; ``eligible`` False (API not faulted) still spends a rank.

        With no fault rates and no jitter wanted there is nothing to draw: the hash is skipped
        (it is a measurable share of a request at benchmark rates) but the rank still advances.
        """
        self.counter += 1
        number = self.counter
        if not jitter and not (self.active and eligible):
            return Decision(number, None, None, 0.0)
        digest = hashlib.blake2b(self._seed + b":" + str(number).encode(), digest_size=24).digest()
        u_fault = int.from_bytes(digest[0:8], "big") / _SCALE
        u_status = int.from_bytes(digest[8:16], "big") / _SCALE
        u_jitter = int.from_bytes(digest[16:24], "big") / _SCALE
        fault, status = (
            self._pick(u_fault, u_status, is_write) if self.active and eligible else (None, None)
        )
        garbage = None
        if fault == "garbage":
            kinds = self._settings.garbage_kinds
            garbage = kinds[min(int(u_status * len(kinds)), len(kinds) - 1)]
        return Decision(number, fault, status, u_jitter, garbage)

    def _pick(
        self, u: float, u_status: float, is_write: bool
    ) -> tuple[FaultKind | None, int | None]:
        s = self._settings
        edge = s.error_rate
        if u < edge:
            statuses = s.error_statuses
            return "error", statuses[min(int(u_status * len(statuses)), len(statuses) - 1)]
        edge += s.disconnect_rate
        if u < edge:
            return "disconnect", None
        edge += s.drop_after_write_rate
        if u < edge:
            # Reads have nothing to duplicate: the draw is spent, so later decisions don't shift.
            return ("drop_after_write", None) if is_write else (None, None)
        edge += s.slow_rate
        if u < edge:
            return "slow", None
        # Kinds added later come last, so that a seed keeps its earlier kinds' decisions.
        edge += s.close_after_response_rate
        if u < edge:
            return "close_after_response", None
        edge += s.redirect_rate
        if u < edge:
            return "redirect", 307
        edge += s.applied_error_rate
        if u < edge:
            if not is_write:  # a read has nothing to apply: the draw is spent, as above
                return None, None
            statuses = s.applied_error_statuses
            return "applied_error", statuses[min(int(u_status * len(statuses)), len(statuses) - 1)]
        edge += s.garbage_rate
        if u < edge:
            return "garbage", 200
        return None, None

    def close_after(self, transport: asyncio.BaseTransport | None) -> None:
        """Mark a connection so that the next request arriving on it is dropped unanswered."""
        if transport is not None:
            self._closing.add(transport)

    def closing(self, transport: asyncio.BaseTransport | None) -> bool:
        """Whether this connection was marked by :meth:`close_after` (the mark is spent)."""
        if transport is None or transport not in self._closing:
            return False
        self._closing.discard(transport)
        return True

    def reset(self) -> None:
        self.counter = 0
        self._closing.clear()


# What a proxy or load balancer in front of an API may answer with a 200 of its own.
_PORTAL = (
    b"<!DOCTYPE html>\n<html><head><title>Service notice</title></head>\n"
    b"<body><h1>Please wait</h1><p>Your request is being processed.</p></body></html>\n"
)


def garbage_response(kind: str | None, answer: web.StreamResponse | None) -> web.Response:
    """A 200 whose body is not the API's: ``html``, ``invalid_json`` (the real answer cut in
    half, so it cannot parse), or ``empty``."""
    if kind == "html":
        return web.Response(status=200, body=_PORTAL, content_type="text/html")
    if kind == "invalid_json":
        real = answer.body if isinstance(answer, web.Response) else None
        body = real if isinstance(real, bytes) and len(real) > 1 else b'{"id": "'
        # Any proper prefix of a JSON object or list is invalid JSON: it lacks its closing.
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return web.Response(status=200, body=body[: len(body) // 2], headers=headers)
    return web.Response(status=200, headers={"Content-Type": "application/json; charset=utf-8"})
