"""A login's half that belongs to the connector: the token and how to get one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._redact import register_secret


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float | None = None  # time.monotonic() deadline; None never expires
    refresh_value: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.value)
        register_secret(self.refresh_value)


class TokenSource(Protocol):
    """The connector's half of a login: build the requests, read the answers."""

    def login_request(self) -> HttpRequest: ...

    def refresh_request(self, token: Token) -> HttpRequest | None: ...

    def parse_token(self, response: HttpResponse, now: float) -> Token: ...

    def auth_headers(self, token: Token) -> dict[str, str]: ...
