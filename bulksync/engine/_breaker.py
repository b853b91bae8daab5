"""The run's circuit breaker and stall watch: a dead target stops the run, not item by item.

Per-item retries are right for a target that stumbles; against a target that is gone (a
closed port, a host that does not resolve, a base URL with no API behind it) they turn one
problem into hours of identical failures. The breaker counts consecutive requests that failed
in one and the same target-wide way, and any answer that shows the API is there (a success, or
an error the API itself gave, such as "asset not found") starts the count again. A legit
per-item 404 is such an answer: only a 404 the connector reads as "no such route" counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import anyio

from bulksync.spi._connector import Connector, json_object_404
from bulksync.spi._errors import DNS, REFUSED, TLS, TargetUnreachable, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse

log = logging.getLogger("bulksync.breaker")

NO_ROUTE = "no route"
DEFAULT_UNREACHABLE_AFTER = 20

NoRoute = Callable[[HttpResponse], bool]


def no_route_of(connector: Connector) -> NoRoute:
    """The connector's ``no_route(response)`` (BaseConnector's: :func:`json_object_404`)."""
    return connector.no_route


def what_to_check(cause: str, host: str) -> str:
    """One line naming the cause and what the operator should look at."""
    if cause == REFUSED:
        return (
            f"cannot connect to {host} (connection refused): is the target running, "
            "is base_url right?"
        )
    if cause == DNS:
        name = host.rsplit(":", 1)[0]
        return f"cannot resolve host {name} (DNS failure): is base_url right, is the network up?"
    if cause == TLS:
        name = host.rsplit(":", 1)[0]
        return (
            f"TLS certificate of host {name} not trusted: TLS verification stays on; install "
            "the CA in the system store or set SSL_CERT_FILE"
        )
    return cause


class CircuitBreaker:
    """Fed every request's outcome by the client; raises :class:`TargetUnreachable` when
    ``threshold`` requests in a row failed the same target-wide way, or at once for a TLS
    verification failure (a certificate does not fix itself)."""

    def __init__(
        self, threshold: int = DEFAULT_UNREACHABLE_AFTER, no_route: NoRoute | None = None
    ) -> None:
        self.threshold = max(1, threshold)
        self.no_route = no_route or json_object_404
        self._cause: str | None = None
        self._count = 0
        self.tripped: TargetUnreachable | None = None
        # For the stall watch: requests on the wire, and when anything last came back.
        self.in_flight = 0
        self.last_answer = time.monotonic()
        self._timed_out = False  # the last request out of flight timed out: silence goes on

    def check(self) -> None:
        """Once tripped, every further request fails at once, before it is sent."""
        if self.tripped is not None:
            raise self.tripped

    def sent(self) -> None:
        if self.in_flight == 0 and not self._timed_out:
            # Idle after an answer (a budget wait, a Retry-After pause) is no silence: it
            # counts from this request. After a timeout the silence goes on across retries.
            self.last_answer = time.monotonic()
        self.in_flight += 1

    def answered(self, request: HttpRequest, response: HttpResponse) -> None:
        self.in_flight -= 1
        self.last_answer = time.monotonic()
        self._timed_out = False
        if response.status == 404 and self.no_route(response):
            path = urlsplit(request.url).path or request.url
            line = f"base_url path looks wrong: {request.method} {path} answered 404 (no route)"
            self._failed(NO_ROUTE, line)
        else:
            self._reset()

    def failed(self, error: TransportError) -> None:
        self.in_flight -= 1
        self._timed_out = error.timeout
        if not error.timeout:
            self.last_answer = time.monotonic()  # refused or reset is an answer of a kind
        if error.cause is None:
            return  # a reset or a timeout: neither evidence that the target is gone, nor not
        line = what_to_check(error.cause, error.host)
        if error.cause == TLS:
            self._trip(line)
        self._failed(error.cause, line)

    def cancelled(self) -> None:
        self.in_flight -= 1

    def _reset(self) -> None:
        if self._count:
            # The breaker closes again: the target answered, the run goes on as before.
            log.info(
                "target answering again after %d request(s) in a row failed (%s): breaker closed",
                self._count,
                self._cause,
                extra={"event": "breaker_closed", "cause": self._cause, "count": self._count},
            )
        self._cause, self._count = None, 0

    def _failed(self, cause: str, line: str) -> None:
        if cause != self._cause:
            self._reset()
            self._cause = cause
            # Half open: one more failure of this kind in a row counts towards stopping the run.
            log.info(
                "a request failed target-wide (%s): the run stops after %d in a row",
                line,
                self.threshold,
                extra={"event": "breaker_counting", "cause": cause, "threshold": self.threshold},
            )
        self._count += 1
        if self._count >= self.threshold:
            self._trip(f"{line} ({self._count} requests in a row)")

    def _trip(self, line: str) -> None:
        self.tripped = TargetUnreachable(line)
        log.info(
            "circuit breaker open, stopping the run: %s", line, extra={"event": "breaker_open"}
        )
        raise self.tripped

    async def watch_stall(self, stall_s: float, poll_s: float = 1.0) -> None:
        """Stop the run when requests are in flight and nothing at all came back for
        ``stall_s``: a server that accepts connections and never answers."""
        while True:
            await anyio.sleep(min(poll_s, stall_s / 4))
            quiet = time.monotonic() - self.last_answer
            if self.in_flight > 0 and quiet >= stall_s:
                self._trip(
                    f"no answer of any kind from the target for {quiet:.0f} s with "
                    f"{self.in_flight} request(s) in flight: is the target up and answering?"
                )
