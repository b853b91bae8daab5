"""Before the first item: log in and make one cheap documented read, so a target that cannot be
reached or used stops the run in seconds with one line, not after hours of item retries.

The request is the connector's (``preflight_request``, optional; the in-memory fake has none
and sends nothing); its outcome is judged here. It goes through the run's own client, so it is
paced by the budget, counted in ``requests``, and the session it logs in is the run's.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio

from bulksync.engine._breaker import CircuitBreaker, no_route_of, what_to_check
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.retry import RetryPolicy, count_retry
from bulksync.spi._connector import RETRYABLE_STATUSES, Connector, RequestFailed
from bulksync.spi._errors import AuthError, TargetUnreachable, TransportError
from bulksync.spi._http import HttpRequest
from bulksync.store.results import RunStats

# A never-answering server must end the run well within 30 s with the default settings:
# two tries of at most 10 s each, logins included, whatever [target] timeout_s says.
PREFLIGHT_TIMEOUT_S = 10.0
PREFLIGHT_ATTEMPTS = 2  # timeouts; an answer that is a 5xx is quick: up to PREFLIGHT_TRIES
PREFLIGHT_TRIES = 6


async def preflight(
    connector: Connector,
    target: Target,
    stats: RunStats,
    timeout_s: float,
    attempts: int = PREFLIGHT_ATTEMPTS,
) -> None:
    """Raise :class:`TargetUnreachable` (exit 4) or :class:`AuthError` (exit 3) when the
    target cannot serve this run; return when it answered like the API it should be."""
    request: HttpRequest | None = connector.preflight_request()
    if request is None:
        return
    leash = min(timeout_s, PREFLIGHT_TIMEOUT_S)
    no_route = no_route_of(connector)
    retry = RetryPolicy(max_attempts=attempts, max_elapsed_s=3 * leash, base_s=0.25, cap_s=2.0)
    # Its own breaker, which only a TLS failure trips (at once): the rest is judged below.
    breaker = CircuitBreaker(1_000_000, no_route)
    client = EngineClient(target, stats, retry, breaker, timeout_cap_s=leash)
    path = urlsplit(target.base_url.rstrip("/") + "/" + request.url.lstrip("/")).path
    failure = ""
    silent = 0
    for attempt in range(1, PREFLIGHT_TRIES + 1):
        try:
            response = await client.send(request)
        except TransportError as exc:
            if exc.cause is not None:
                raise TargetUnreachable(what_to_check(exc.cause, exc.host)) from None
            failure = "no answer" if exc.timeout else str(exc)
            silent += exc.timeout
        except RequestFailed:
            return  # a redirect: an answer; each item fails with it, naming the Location
        else:
            status = response.status
            if status in (401, 403):
                raise AuthError(
                    f"GET {path} refused with {status}: check the credentials and their rights"
                )
            if status == 404 and no_route(response):
                raise TargetUnreachable(f"base_url path looks wrong: GET {path} answered 404")
            if status == 429 or status not in RETRYABLE_STATUSES:
                # The API answered. Any other refusal (a redirect, a 400) is left to the items,
                # which report it each with its own message, without retrying it.
                return
            failure = f"HTTP {status}"
        if silent >= attempts or attempt == PREFLIGHT_TRIES:
            break
        delay = retry.delay(attempt)
        count_retry(stats, f"preflight (GET {path})", failure, delay)
        await anyio.sleep(delay)
    raise TargetUnreachable(
        f"the target did not serve GET {path} ({failure}, {attempt} tries, up to "
        f"{leash:g} s each): is it up, is base_url right?"
    )


def stall_limit(timeout_s: float, configured: float | None) -> float:
    """``[limits] stall_s`` when set, else twice the request timeout: one request may take
    the whole timeout legitimately, so only a silence past it twice is a hang."""
    return configured if configured is not None else 2 * timeout_s


__all__ = [
    "PREFLIGHT_ATTEMPTS",
    "PREFLIGHT_TIMEOUT_S",
    "PREFLIGHT_TRIES",
    "preflight",
    "stall_limit",
]
