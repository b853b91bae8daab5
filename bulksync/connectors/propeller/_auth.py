"""Propeller OAuth2 client credentials: `POST https://api.helice.cloud/oauth2/token`, a form.

The token endpoint sits at the host root, outside the `/v2` the REST resources live under, so
its URL is derived from the base URL's origin rather than joined to the base URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bulksync.spi import (
    AuthError,
    ConfigError,
    HttpRequest,
    HttpResponse,
    Token,
    check_base_url,
    register_secret,
    split_url,
)

TOKEN_PATH = "/oauth2/token"
# The lifetime the docs give ("valid for 30 minutes") when an answer carries none.
DEFAULT_LIFETIME_S = 1800.0
# "Build a renewal buffer of about 5 minutes into your integration."
RENEWAL_MARGIN_S = 300.0


def resolve_token_url(base_url: str, token_url: str | None, allow_http: bool = False) -> str:
    """The absolute token URL: ``token_url`` as given when absolute, else a path on the base
    URL's origin (``/oauth2/token`` by default)."""
    if token_url and (
        split_url(token_url, "[propeller] token_url").scheme or token_url.startswith("//")
    ):
        try:
            # The client secret travels to this URL: the same rule as for base_url.
            check_base_url(token_url, allow_http)
        except ConfigError as exc:
            raise ConfigError(f"[propeller] token_url: {exc}") from None
        return token_url
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(f"[propeller] token_url: no origin in base_url '{base_url}'")
    path = token_url or TOKEN_PATH
    return f"{parts.scheme}://{parts.netloc}/{path.lstrip('/')}"


class PropellerLogin:
    def __init__(self, client_id: str, client_secret: str, token_url: str) -> None:
        register_secret(client_secret)
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_url = token_url

    def login_request(self) -> HttpRequest:
        # In the order the docs show: client_id=…&client_secret=…&grant_type=client_credentials
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        return HttpRequest("POST", self._token_url, form=form, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        return None  # "There are no refresh tokens": a new token is simply asked for again

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        try:
            body = response.json()
            access = body["access_token"]
            expires_in = _seconds(body.get("expires_in"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthError("the Propeller token answer has no usable access_token") from None
        if not isinstance(access, str) or not access:
            raise AuthError("the Propeller token answer has no usable access_token")
        return Token(access, now + expires_in)

    def auth_headers(self, token: Token) -> dict[str, str]:
        # token_type is "Bearer" today and was "BearerToken" once; the scheme is "Bearer".
        return {"Authorization": f"Bearer {token.value}"}


def _seconds(value: Any) -> float:
    """`expires_in` is a number in the current docs (1800) and a string in the old ones
    ("1899"); both read the same."""
    if value is None:
        return DEFAULT_LIFETIME_S
    if isinstance(value, bool):
        raise TypeError("expires_in is a boolean")
    return float(value)
