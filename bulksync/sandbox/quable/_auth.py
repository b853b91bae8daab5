"""Quable's authentication: the bearer check, and the session routes that hand out tokens.

``POST /api_1.php/sessions`` (JSON ``{"signin": {"username", "password"}}`` as the docs show,
or the form fields ``signin[username]``/``signin[password]`` their reference lists), answered
201 with ``{"oauth": {"access_token", "expires_in", "refresh_token"}}``;
``GET /api_1.php/sessions`` with the ``quable-remember-me`` cookie; static tokens too.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from bulksync.sandbox._errors import Reply, json_response
from bulksync.sandbox._http import bearer_token, is_json_type, parse_form, parse_json, read_body
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox.quable._errors import quable_error
from bulksync.sandbox.quable._sessions import QuableSessions
from bulksync.sandbox.quable._settings import QuableSettings

REMEMBER_COOKIE = "quable-remember-me"
QUABLE_SESSIONS = "/api_1.php/sessions"  # below /api_1.php, never at the host root


def sessions(state: SandboxState) -> QuableSessions:
    found = state.session("quable")
    assert isinstance(found, QuableSessions)
    return found


def check(state: SandboxState, request: web.Request, is_write: bool) -> web.Response | None:
    """None when the request may proceed, else Quable's 401 (or 403 for a read-only token)."""
    token = bearer_token(request)
    if not token:
        return quable_error(401, "Full authentication is required to access this resource.")
    verdict = sessions(state).check(token, is_write)
    if verdict == "read_only":
        if state.settings.of(QuableSettings).read_only_status == 405:
            # Quable's error page: "405 Method Not Allowed - The user does not have
            # permission to access the resource".
            return quable_error(
                405,
                "The user does not have permission to access the resource.",
                "Method Not Allowed",
            )
        return quable_error(403, "Access Denied: this API token is read-only.", "Forbidden")
    if verdict == "expired":
        return quable_error(401, "Expired access token.")
    if verdict == "invalid":
        return quable_error(401, "Invalid access token.")
    return None


# -- Quable sessions ------------------------------------------------------------------------


async def quable_login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fields = await _signin_fields(request)
    username, password = fields.get("signin[username]"), fields.get("signin[password]")
    missing = [
        name
        for name, value in (("signin[username]", username), ("signin[password]", password))
        if not value
    ]
    if missing:
        return quable_error(400, "Missing required parameters: " + ", ".join(missing))
    knobs = state.settings.of(QuableSettings)
    if not (
        secrets.compare_digest(str(username), knobs.username)
        and secrets.compare_digest(str(password), knobs.password)
    ):
        state.stats.auth_failures["quable"] += 1
        return quable_error(401, "Invalid credentials.")
    grant = sessions(state).login(knobs.username)
    remember = _truthy(fields.get("signin[remember]"))
    # The documented answer to a plain login carries "refresh_token": null; only a login that
    # asks to be remembered gets a token for the remember-me refresh.
    response = _session_response(
        knobs.session_status,
        grant.access_token,
        grant.expires_in,
        grant.refresh_token if remember else None,
    )
    if remember:
        max_age = max(1, int(state.settings.scaled(knobs.remember_lifetime_s)))
        response.set_cookie(REMEMBER_COOKIE, grant.refresh_token, max_age=max_age, httponly=True)
    return response


async def quable_refresh(request: web.Request) -> web.Response:
    state = request.app[STATE]
    remember = request.cookies.get(REMEMBER_COOKIE)
    if not remember:
        return quable_error(401, f"Missing {REMEMBER_COOKIE} cookie.")
    grant = sessions(state).refresh(remember)
    if grant is None:
        state.stats.auth_failures["quable"] += 1
        return quable_error(401, f"Invalid or expired {REMEMBER_COOKIE} token.")
    return _session_response(200, grant.access_token, grant.expires_in, grant.refresh_token)


def _session_response(
    status: int, access: str, expires_in: int, refresh: str | None
) -> web.Response:
    # The docs elide the rest of the body ("...,"); the token is only ever at oauth.*.
    return json_response(
        status,
        {
            "oauth": {"access_token": access, "expires_in": expires_in, "refresh_token": refresh},
        },
    )


async def _signin_fields(request: web.Request) -> dict[str, Any]:
    body = await read_body(request, "quable")
    mime = request.content_type.lower()
    try:
        if is_json_type(mime):
            data = parse_json(body)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            nested = data.get("signin")
            if isinstance(nested, dict):
                data = {**data, **{f"signin[{k}]": v for k, v in nested.items()}}
            return data
        if mime == "application/x-www-form-urlencoded":
            return dict(parse_form(body))
        if mime == "multipart/form-data":
            form = await request.post()
            return {k: v for k, v in form.items() if isinstance(v, str)}
    except ValueError as exc:
        raise Reply(quable_error(400, f"Malformed body: {exc}")) from exc
    raise Reply(
        quable_error(415, f'The content-type "{mime}" is not supported.', "Unsupported Media Type")
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return bool(value)


def add_routes(app: web.Application) -> None:
    app.router.add_post(QUABLE_SESSIONS, quable_login)
    app.router.add_get(QUABLE_SESSIONS, quable_refresh)
