"""The one middleware every API request goes through, in this order:

0. a request on a connection marked by ``close_after_response`` is dropped unanswered;
1. fault decision, drawn at arrival so it depends on the request's rank only;
2. latency (fixed plus seeded jitter, plus the load's share past ``degrade_above_rps``);
3. body size and the API's sliding rate windows (429);
4. the fault itself: error status, redirect, unanswered close or a garbage 200 before
   any work; otherwise
5. authentication and the route handler, then a slow answer, a write-then-drop, a
   write-then-5xx, a garbage 200 in place of the real answer, or a mark on the
   connection to close it after this answer;
6. the vendor's last touch on its answers (Quable's digest header), and the per-route
   counters.

``close_after_response`` closes lazily, when the next request arrives on the connection: the
client then meets what it meets when a server's keep-alive close crosses its next request,
every time. Closing at once would let a client see the close before reusing the connection,
or have its next request reset by the kernel unseen, which would make the server's count of
requests racy; this way every request a client sends is counted here.

A single middleware (rather than a chain) keeps the per-request overhead low enough for the
throughput benchmark, and makes the order above explicit.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bulksync.sandbox._errors import Reply
from bulksync.sandbox._faults import garbage_response
from bulksync.sandbox._http import WRITE_METHODS, route_of
from bulksync.sandbox._ratelimit import retry_after_header
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox._vendor import SandboxVendor
from bulksync.sandbox._vendors import vendor_of

log = logging.getLogger("bulksync.sandbox")


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    vendor = vendor_of(request.path)
    route = route_of(request)
    if state.faults.closing(request.transport):
        state.stats.request(route, "closed")
        return _hang_up(request)
    if vendor is None:
        plain = await _plain(request, handler)
        state.stats.request(route, str(plain.status))
        return plain

    api = vendor.name
    errors = vendor.errors
    is_write = request.method in WRITE_METHODS
    knobs = state.settings.api(api)
    decision = state.faults.decide(
        is_write, state.faults.applies_to(api), jitter=knobs.latency.jitter_ms > 0
    )
    # A login answered with garbage would stop the run before any item: spared.
    garbage = decision.fault == "garbage" and request.path not in vendor.public_paths
    delay = decision.delay_seconds(knobs.latency)
    if knobs.latency.degrade_above_rps > 0:
        rate = state.load[api].arrive(state.clock())
        delay += knobs.latency.degraded_seconds(rate)
    if delay > 0:
        await asyncio.sleep(delay)

    limit = knobs.max_body_bytes
    if (
        request.content_length is not None
        and request.content_length > limit
        and request.path not in vendor.own_body_limit  # e.g. a batch API's own 400
    ):
        response: web.StreamResponse = errors.too_large(limit)
    elif (wait := state.limiters[api].acquire(state.clock())) is not None:
        state.stats.rate_limited[api] += 1
        retry = retry_after_header(wait) if knobs.rate_limit.retry_after else None
        response = errors.too_many_requests()
        if retry is not None:
            response.headers["Retry-After"] = str(retry)
    elif decision.fault == "error":
        assert decision.status is not None
        state.stats.fault(decision.number, route, "error", decision.status)
        response = errors.injected(decision.status)
    elif decision.fault == "redirect":
        state.stats.fault(decision.number, route, "redirect", 307)
        response = _redirect(request, state.settings.faults.redirect_location)
    elif decision.fault == "disconnect":
        state.stats.fault(decision.number, route, "disconnect", None)
        state.stats.request(route, "disconnect")
        return _hang_up(request)
    elif garbage and not (is_write and state.settings.faults.garbage_applies_writes):
        # Answered in the server's place (a proxy's page): nothing is done.
        state.stats.fault(decision.number, route, "garbage", 200)
        response = garbage_response(decision.garbage, None)
    else:
        response = await _guarded(request, handler, vendor, state, is_write)
        if decision.fault == "slow":
            # Slow after the work is done: a client that times out has still written.
            state.stats.fault(decision.number, route, "slow", None)
            await asyncio.sleep(state.settings.faults.slow_seconds)
        elif decision.fault == "drop_after_write":
            state.stats.fault(decision.number, route, "drop_after_write", response.status)
            state.stats.request(route, f"dropped:{response.status}")
            return _hang_up(request)
        elif decision.fault == "close_after_response":
            state.stats.fault(decision.number, route, "close_after_response", response.status)
            state.faults.close_after(request.transport)
        elif decision.fault == "applied_error":
            assert decision.status is not None
            state.stats.fault(decision.number, route, "applied_error", decision.status)
            response = errors.injected(decision.status)
        elif garbage:
            state.stats.fault(decision.number, route, "garbage", 200)
            response = garbage_response(decision.garbage, response)

    if vendor.finish is not None:
        vendor.finish(response)
    state.stats.request(route, str(response.status))
    return response


async def _guarded(
    request: web.Request,
    handler: Handler,
    vendor: SandboxVendor,
    state: SandboxState,
    is_write: bool,
) -> web.StreamResponse:
    if request.path not in vendor.public_paths:
        refusal = vendor.authenticate(state, request, is_write)
        if refusal is not None:
            state.stats.auth_failures[vendor.name] += 1
            return refusal
    try:
        return await handler(request)
    except Reply as reply:
        return reply.response
    except web.HTTPException as exc:
        return _reshape(vendor, request, exc)
    except ConnectionResetError:  # the client left while we read its body: nobody to answer
        return web.Response(status=499)
    except Exception:
        log.exception("sandbox bug while serving %s %s", request.method, request.path)
        return vendor.errors.injected(500)


async def _plain(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Reply as reply:
        return reply.response
    except web.HTTPException as exc:
        return exc


def _reshape(vendor: SandboxVendor, request: web.Request, exc: web.HTTPException) -> web.Response:
    """Router and framework errors, re-dressed in the API's own error shape."""
    status = exc.status
    if status in (404, 405):
        return vendor.errors.no_route(request.method, request.path, status)
    if status == 413:
        limit = request.app[STATE].settings.api(vendor.name).max_body_bytes
        return vendor.errors.too_large(limit)
    return vendor.errors.error(status)


def _hang_up(request: web.Request) -> web.Response:
    """Close the connection without a byte of answer; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)


def _redirect(request: web.Request, location: str) -> web.Response:
    """A 307 to another origin: a client that follows it sends the request (and its body and
    credentials) there."""
    target = location.rstrip("/") + request.rel_url.raw_path_qs
    return web.Response(status=307, headers={"Location": target})
