"""The client the engine lends to connectors: one paced, authenticated, measured request."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from bulksync.engine._breaker import CircuitBreaker, what_to_check
from bulksync.engine.auth import Authenticator
from bulksync.engine.budget import RateBudget
from bulksync.engine.retry import Retrier, RetryPolicy, TryAgain
from bulksync.engine.transport import Transport
from bulksync.spi._connector import RETRYABLE_STATUSES, RequestFailed
from bulksync.spi._errors import (
    AuthError,
    BulksyncError,
    ErrorClass,
    ErrorInfo,
    LocalFileError,
    TargetUnreachable,
    TransportError,
)
from bulksync.spi._http import HttpRequest, HttpResponse, parse_retry_after
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import RunStats

request_log = logging.getLogger("bulksync.http")

# Requests sent by the task (and the tasks it starts) inside count_sent(): whether a stage's
# attempt that met the quota had already written something.
_sent: ContextVar[list[int] | None] = ContextVar("bulksync_sent", default=None)


class count_sent:
    """Add each request sent inside the block to ``counter[0]``.

    A class, not a @contextmanager generator: it runs once per attempt, and a generator-based
    context manager costs several times more."""

    __slots__ = ("_counter", "_token")
    _token: Token[list[int] | None]

    def __init__(self, counter: list[int]) -> None:
        self._counter = counter

    def __enter__(self) -> None:
        self._token = _sent.set(self._counter)

    def __exit__(self, *exc: object) -> None:
        _sent.reset(self._token)


@dataclass(slots=True)
class Target:
    """Everything the engine needs to reach one target."""

    base_url: str
    transport: Transport
    budget: RateBudget
    auth: Authenticator


class EngineClient:
    """Charges the budget, adds auth, refreshes once on 401, counts and times every request.

    It never retries an item: stages do, through :attr:`retrier`, the run's one retry loop. It
    only repeats a request once after a 401 with a refreshed token, and retries the login
    itself on transient errors through the same loop.
    A redirect is never followed (the transport does not either): it fails the item, or the
    login, naming where it pointed.
    """

    def __init__(
        self,
        target: Target,
        stats: RunStats,
        retry: RetryPolicy,
        breaker: CircuitBreaker | None = None,
        timeout_cap_s: float | None = None,
    ) -> None:
        self._target = target
        self._stats = stats
        # The run's one retry loop, counting into the same stats as every request.
        self.retrier = Retrier(retry, stats)
        # Shared by every request of the run: a dead target stops it (see bulksync.engine._breaker).
        self.breaker = breaker or CircuitBreaker()
        self._timeout_cap_s = timeout_cap_s  # the preflight's short leash, logins included

    @property
    def target(self) -> Target:
        return self._target

    def _url(self, request: HttpRequest) -> str:
        if request.url.startswith(("http://", "https://")):
            return request.url
        return self._target.base_url.rstrip("/") + "/" + request.url.lstrip("/")

    def _absolute(self, request: HttpRequest) -> HttpRequest:
        url = self._url(request)
        return request if url is request.url else replace(request, url=url)

    async def send(self, request: HttpRequest) -> HttpResponse:
        url = self._url(request)
        response, headers = await self._send_once(request, url)
        if response.status == 401 and request.authenticated:
            await self._target.auth.refresh(self._send_for_auth, headers)
            where = _where(replace(request, url=url))
            self.retrier.resent(where, "HTTP 401: sent again with a fresh token")
            response, _ = await self._send_once(request, url)
            if response.status == 401:
                raise AuthError(f"{request.method} refused with 401 even after a fresh login")
        if is_redirect(response):
            # The same for every connector: a connector reading a 3xx as "not 404" could take
            # it for a found object, or for a success.
            error = ErrorInfo("Redirected", redirect_message(response), response.status)
            raise RequestFailed(error, ErrorClass.ITEM)
        return response

    async def _send_once(
        self, request: HttpRequest, url: str
    ) -> tuple[HttpResponse, Mapping[str, str]]:
        await self._target.budget.acquire()
        # The token is taken after the budget wait, so a long queue cannot make it stale.
        headers: Mapping[str, str] = {}
        if request.authenticated:
            headers = await self._target.auth.headers(self._send_for_auth)
        if self._timeout_cap_s is not None:
            cap = min(request.timeout_s or self._timeout_cap_s, self._timeout_cap_s)
            request = replace(request, timeout_s=cap)
        if headers or url is not request.url:
            request = _sendable(request, url, headers)
        breaker = self.breaker
        breaker.check()
        self._stats.requests += 1
        started = time.monotonic()
        breaker.sent()
        counter = _sent.get()
        if counter is not None:
            counter[0] += 1
        self._stats.in_flight += 1
        try:
            response = await self._logged_send(request)
        except LocalFileError as exc:
            breaker.cancelled()
            if not exc.sent:  # refused before anything went on the wire
                self._stats.requests -= 1
            raise
        except TransportError as exc:
            breaker.failed(exc)  # raises TargetUnreachable when the target is gone
            raise
        except BaseException:
            breaker.cancelled()
            raise
        finally:
            self._stats.in_flight -= 1
        breaker.answered(request, response)
        self._stats.observe(time.monotonic() - started)
        if response.status == 429:
            self._stats.throttled += 1
            self._target.budget.on_throttled(parse_retry_after(response.header("retry-after")))
        return response, headers

    async def _logged_send(self, request: HttpRequest) -> HttpResponse:
        """The transport's send, each request logged at DEBUG (``-vv``) with its method, path
        (no query: it may carry a key), status and time; never its headers or body."""
        if not request_log.isEnabledFor(logging.DEBUG):
            return await self._target.transport.send(request)
        started = time.monotonic()
        try:
            response = await self._target.transport.send(request)
        except BaseException as exc:
            if not isinstance(exc, LocalFileError) or exc.sent:  # as counted in requests
                _log_request(request, type(exc).__name__, started)
            raise
        _log_request(request, response.status, started)
        return response

    async def _send_for_auth(self, request: HttpRequest) -> HttpResponse:
        """Logins are retried on transient failures: without a token nothing can move."""
        request = self._absolute(request)

        async def attempt() -> HttpResponse:
            try:
                response, _ = await self._send_once(request, request.url)
            except TransportError as exc:
                failure = str(exc) if exc.cause is None else what_to_check(exc.cause, exc.host)
                raise TryAgain(failure) from exc
            if is_redirect(response):
                raise AuthError(f"login {redirect_message(response)}")
            if response.status == 404 and self.breaker.no_route(response):
                # Nothing answers logins there: a wrong address, not wrong credentials.
                path = urlsplit(request.url).path
                raise TargetUnreachable(
                    f"login URL looks wrong: {request.method} {path} answered 404: "
                    "is base_url (or the token URL) right?"
                )
            if response.status in RETRYABLE_STATUSES:
                retry_after = parse_retry_after(response.header("retry-after"))
                raise TryAgain(f"HTTP {response.status}", retry_after)
            return response

        def give_up(attempts: int, last: TryAgain) -> BulksyncError:
            cause = last.__cause__
            if not isinstance(cause, TransportError) or (cause.cause is None and not cause.timeout):
                return AuthError(f"login failed after {attempts} attempts: {last.failure}")
            # No answer at all is no verdict on the credentials: the target is out of reach,
            # not refusing us (exit 4, not 3). what_to_check already says what to check.
            hint = ": is the target up, is base_url (or the token URL) right?"
            if cause.cause is not None:
                hint = ""
            where = f"{request.method} {urlsplit(request.url).path}"
            return TargetUnreachable(
                f"login ({where}) failed after {attempts} attempts: {last.failure}{hint}"
            )

        return await self.retrier.run(attempt, give_up, what=f"login ({_where(request)})")


def _sendable(request: HttpRequest, url: str, headers: Mapping[str, str]) -> HttpRequest:
    """The request with its absolute URL and its auth header: one copy, built directly. It
    runs once per request, and ``dataclasses.replace`` costs twice as much (it walks the
    fields first)."""
    r = request
    merged = {**r.headers, **headers} if headers else r.headers
    # Every field by name (tests/test_client.py fails when HttpRequest gains one not here).
    return HttpRequest(
        method=r.method, url=url, headers=merged, json=r.json, form=r.form, fields=r.fields,
        files=r.files, body=r.body, params=r.params, timeout_s=r.timeout_s,
        authenticated=r.authenticated,
    )  # fmt: skip


def _where(request: HttpRequest) -> str:
    """A request in a log line: method and path, never the query (it may carry a key)."""
    return f"{request.method} {urlsplit(request.url).path or '/'}"


def _log_request(request: HttpRequest, status: int | str, started: float) -> None:
    ms = round((time.monotonic() - started) * 1000, 1)
    path = urlsplit(request.url).path or "/"
    request_log.debug(
        "%s %s %s %.1f ms",
        request.method,
        path,
        status,
        ms,
        extra={
            "event": "request",
            "method": request.method,
            "path": path,
            "status": status,
            "ms": ms,
        },
    )


def is_redirect(response: HttpResponse) -> bool:
    return 300 <= response.status < 400


def redirect_message(response: HttpResponse) -> str:
    """One line naming the Location, which may carry a token in its query: redacted, cut."""
    location = response.header("location")
    if not location:
        return f"answered HTTP {response.status} without a Location; not followed"
    return f"redirected to {redacted_excerpt(location, 300)}; not followed"
