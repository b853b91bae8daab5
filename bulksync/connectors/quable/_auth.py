"""Quable login: `POST /sessions`, refreshed with the `quable-remember-me` cookie."""

from __future__ import annotations

from ...auth import Token
from ...errors import AuthError
from ...http import HttpRequest, HttpResponse
from ...redact import register_secret


class QuableLogin:
    """The connector's half of a Quable session (the engine's SessionAuth runs it).

    One login serves the whole job: a new login invalidates the user's previous token.
    """

    def __init__(self, username: str, password: str) -> None:
        register_secret(password)
        self._username = username
        self._password = password

    def login_request(self) -> HttpRequest:
        form = {
            "signin[username]": self._username,
            "signin[password]": self._password,
            "signin[remember]": "true",
        }
        return HttpRequest("POST", "sessions", form=form, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        if not token.refresh_value:
            return None
        cookie = {"Cookie": f"quable-remember-me={token.refresh_value}"}
        return HttpRequest("GET", "sessions", headers=cookie, authenticated=False)

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        try:
            body = response.json()
            access = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise AuthError("the Quable login answer has no access_token") from None
        return Token(access, now + expires_in, body.get("refresh_token"))

    def auth_headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.value}"}
