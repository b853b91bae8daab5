"""Quable login as its pages document it (docs.quable.com/reference/api-authentication-token).

``POST /api_1.php/sessions`` with ``Content-Type: application/json`` and ``{"signin":
{"username": ..., "password": ...}}``; "If successful, the response http header will be 201"
and the token is at ``oauth.access_token``. The remember-me refresh, ``GET /api_1.php/sessions``
with the cookie ``quable-remember-me=TOKEN``, answers the same ``{"oauth": {...}}`` shape.
"""

from __future__ import annotations

from typing import Any

from bulksync.spi import AuthError, HttpRequest, HttpResponse, Token, register_secret

SESSIONS_PATH = "api_1.php/sessions"  # v4 paths are below /api_1.php, not at the host root
DOCUMENTED_LIFETIME_S = 3600.0


class QuableLogin:
    """The connector's half of a Quable session (the engine's SessionAuth runs it).

    One login serves the whole job: a new login invalidates the user's previous token. The
    documented answer carries ``"refresh_token": null``; the engine then logs in again when
    the token nears its end, which is safe because no other token of this job is still alive.
    """

    def __init__(self, username: str, password: str, *, remember: bool = False) -> None:
        register_secret(password)
        self._username = username
        self._password = password
        self._remember = remember

    def login_request(self) -> HttpRequest:
        signin: dict[str, Any] = {"username": self._username, "password": self._password}
        if self._remember:
            # A documented field (signin[remember]): asks for a remember-me refresh token.
            signin["remember"] = True
        return HttpRequest("POST", SESSIONS_PATH, json={"signin": signin}, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        if not token.refresh_value:
            return None
        cookie = {"Cookie": f"quable-remember-me={token.refresh_value}"}
        return HttpRequest("GET", SESSIONS_PATH, headers=cookie, authenticated=False)

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        try:
            body = response.json()
        except ValueError:
            body = None
        oauth = body.get("oauth") if isinstance(body, dict) else None
        access = oauth.get("access_token") if isinstance(oauth, dict) else None
        if not isinstance(oauth, dict) or not isinstance(access, str) or not access:
            raise AuthError(
                f"the Quable login answer (HTTP {response.status}) has no oauth.access_token"
            )
        refresh = oauth.get("refresh_token")
        return Token(
            access,
            now + _lifetime(oauth.get("expires_in")),
            refresh if isinstance(refresh, str) and refresh else None,
        )

    def auth_headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.value}"}


def _lifetime(raw: Any) -> float:
    if isinstance(raw, bool):
        return DOCUMENTED_LIFETIME_S
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return DOCUMENTED_LIFETIME_S
    # NaN, zero or negative would renew before every request: fall back to the documented hour.
    return seconds if seconds > 0 else DOCUMENTED_LIFETIME_S
