"""Propeller OAuth2 client credentials: `POST /oauth2/token`, form-encoded."""

from __future__ import annotations

from ...auth import Token
from ...errors import AuthError
from ...http import HttpRequest, HttpResponse
from ...redact import register_secret


class PropellerLogin:
    def __init__(
        self, client_id: str, client_secret: str, token_path: str = "oauth2/token"
    ) -> None:
        register_secret(client_secret)
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_path = token_path

    def login_request(self) -> HttpRequest:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        return HttpRequest("POST", self._token_path, form=form, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        return None  # client credentials: a new token is simply asked for again

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        try:
            body = response.json()
            access = str(body["access_token"])
            # Documented as a string ("1899"); a number is read the same way.
            expires_in = float(body.get("expires_in") or 1800)
        except (ValueError, KeyError, TypeError):
            raise AuthError("the Propeller token answer has no usable access_token") from None
        return Token(access, now + expires_in)

    def auth_headers(self, token: Token) -> dict[str, str]:
        # token_type is "BearerToken", but the header scheme is the standard "Bearer".
        return {"Authorization": f"Bearer {token.value}"}
