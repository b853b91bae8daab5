"""OCAPI OAuth client credentials: ``POST {token_url}`` with HTTP Basic ``client_id:secret``.

The current docs (developer.salesforce.com, b2c-commerce-ocapi/oauth.html, and Salesforce's
sfcc-ci) use ``POST https://account.demandware.com/dwsso/oauth2/access_token``; Salesforce has
announced that the older ``/dw/oauth2`` path, still the Data API spec's tokenUrl, will stop
working (help article 000927357), so it is only kept as a configurable ``token_url``.
``Authorization: Basic base64(client_id:secret)``, form ``grant_type=client_credentials``; the
token lasts 30 minutes (the samples answer ``expires_in`` 1799). The engine's SessionAuth runs
it: one token for the whole job, renewed before it expires and once after a 401 (the batch doc
names the fault InvalidTokenException, "invalid or expired"). There is no refresh token in this
grant, so renewing is a new token request.
"""

from __future__ import annotations

import base64

from bulksync.spi import AuthError, HttpRequest, HttpResponse, Token, register_secret

DEFAULT_TOKEN_URL = "https://account.demandware.com/dwsso/oauth2/access_token"
DOCUMENTED_LIFETIME_S = 1799.0


class OcapiClientCredentials:
    """The connector's half of an OCAPI session (a TokenSource)."""

    def __init__(self, client_id: str, client_secret: str, token_url: str) -> None:
        register_secret(client_secret)
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        # The encoded pair is as good as the secret itself: mask it wherever it may show up.
        register_secret(basic)
        self._authorization = f"Basic {basic}"
        # Absolute (the Account Manager host) or relative to the target's base URL (the
        # sandbox serves the token route on its own host).
        self._token_url = token_url

    def login_request(self) -> HttpRequest:
        return HttpRequest(
            "POST",
            self._token_url,
            headers={"Authorization": self._authorization},
            form={"grant_type": "client_credentials"},
            authenticated=False,  # the Basic header above is the credential, not a bearer
        )

    def refresh_request(self, token: Token) -> HttpRequest | None:
        return None  # client credentials have no refresh token: log in again

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        try:
            body = response.json()
            access = body["access_token"]
            raw_expiry = body.get("expires_in")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthError("the OCAPI token answer has no access_token") from None
        if not isinstance(access, str) or not access:
            raise AuthError("the OCAPI token answer has no access_token")
        try:
            # Documented as a number; a string ("1799") is read as well rather than refused.
            expires_in = float(raw_expiry) if raw_expiry is not None else DOCUMENTED_LIFETIME_S
        except (TypeError, ValueError):
            expires_in = DOCUMENTED_LIFETIME_S
        if not expires_in > 0:  # also NaN: a token renewed before every request is a storm
            expires_in = DOCUMENTED_LIFETIME_S
        return Token(access, now + expires_in)

    def auth_headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.value}"}
