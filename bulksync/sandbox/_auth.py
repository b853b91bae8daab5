"""Authentication: the per-API bearer check and the routes that hand out tokens.

- Quable: ``POST /api_1.php/sessions`` (JSON ``{"signin": {"username", "password"}}`` as the
  docs show, or the form fields ``signin[username]``/``signin[password]`` their reference
  lists), answered 201 with ``{"oauth": {"access_token", "expires_in", "refresh_token"}}``;
  ``GET /api_1.php/sessions`` with the ``quable-remember-me`` cookie; static tokens too.
- Propeller: ``POST /oauth2/token`` (form ``grant_type=client_credentials``, ``client_id``,
  ``client_secret``), Apigee-shaped answer with ``expires_in`` as a string.
- OCAPI: ``POST /dwsso/oauth2/access_token``, the Account Manager path of the current docs, and
  the older ``POST /dw/oauth2/access_token`` still in the Data API spec (Basic client
  credentials, form ``grant_type``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

from aiohttp import web

from ._errors import (
    Api,
    Reply,
    json_response,
    ocapi_fault,
    propeller_unauthorized,
    quable_error,
)
from ._http import bearer_token, is_json_type, parse_form, parse_json, read_body
from ._state import STATE, SandboxState

REMEMBER_COOKIE = "quable-remember-me"
QUABLE_SESSIONS = "/api_1.php/sessions"  # below /api_1.php, never at the host root


def check(
    state: SandboxState, api: Api, request: web.Request, is_write: bool
) -> web.Response | None:
    """None when the request may proceed, else the API's own 401 (or Quable's 403)."""
    token = bearer_token(request)
    if api == "quable":
        if not token:
            return quable_error(401, "Full authentication is required to access this resource.")
        verdict = state.tokens.quable_check(token, is_write)
        if verdict == "read_only":
            if state.settings.quable.read_only_status == 405:
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
    if api == "propeller":
        verdict = state.tokens.check("propeller", token) if token else "invalid"
        if verdict == "ok":
            return None
        return propeller_unauthorized(
            verdict == "expired", state.settings.propeller.auth_error_shape
        )
    return _ocapi_check(state, token)


def _ocapi_check(state: SandboxState, token: str | None) -> web.Response | None:
    """The same 401s on the Data API and on the batch endpoint: an invalid or expired token is
    ``InvalidAccessTokenException``, as REFERENCE.md documents for OCAPI."""
    if token is None:
        return ocapi_fault(
            401, "AuthorizationHeaderMissingException", "Authorization header is missing."
        )
    if not token:
        return ocapi_fault(
            401,
            "InvalidAuthorizationHeaderException",
            "Invalid Authorization header. Value should be something like 'Bearer {access_token}'.",
        )
    if state.tokens.check("ocapi", token) == "ok":
        return None
    return ocapi_fault(
        401,
        "InvalidAccessTokenException",
        "The OAuth access token sent via Authorization: Bearer header is invalid.",
        {"accessToken": token},
    )


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
    knobs = state.settings.quable
    if not (
        secrets.compare_digest(str(username), knobs.username)
        and secrets.compare_digest(str(password), knobs.password)
    ):
        state.stats.auth_failures["quable"] += 1
        return quable_error(401, "Invalid credentials.")
    grant = state.tokens.quable_login(knobs.username)
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
    grant = state.tokens.quable_refresh(remember)
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


# -- Propeller ------------------------------------------------------------------------------


async def propeller_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request, "propeller")
    if request.content_type.lower() != "application/x-www-form-urlencoded":
        return _apigee_token_error(
            400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
        )
    try:
        form = parse_form(body)
    except ValueError as exc:
        return _apigee_token_error(400, "invalid_request", str(exc))
    grant_type = form.get("grant_type", "")
    if grant_type != "client_credentials":
        return _apigee_token_error(400, "invalid_request", f"Unsupported grant type : {grant_type}")
    # Only the documented form fields: a client sending HTTP Basic credentials instead must
    # fail here as it would against a server that follows the docs.
    client_id, secret = form.get("client_id"), form.get("client_secret")
    knobs = state.settings.propeller
    if client_id is None:
        return _apigee_token_error(401, "invalid_client", "Client identifier is required")
    if client_id != knobs.client_id or secret != knobs.client_secret:
        state.stats.auth_failures["propeller"] += 1
        return _apigee_token_error(401, "invalid_client", "ClientId is Invalid")
    grant = state.tokens.issue("propeller")
    return json_response(
        200,
        {
            "refresh_token_expires_in": "0",
            "api_product_list": "[Propeller REST APIs]",
            "api_product_list_json": ["Propeller REST APIs"],
            "organization_name": "propeller-sandbox",
            "developer.email": "sandbox@example.invalid",
            "token_type": "BearerToken",
            "issued_at": str(int(time.time() * 1000)),
            "client_id": client_id,
            "access_token": grant.access_token,
            "application_name": "bulksync-sandbox",
            "scope": "",
            "expires_in": str(grant.expires_in),
            "refresh_count": "0",
            "status": "approved",
        },
    )


def _apigee_token_error(status: int, code: str, message: str) -> web.Response:
    return json_response(status, {"ErrorCode": code, "Error": message})


# -- OCAPI ----------------------------------------------------------------------------------


async def ocapi_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request, "ocapi")
    credentials = _basic(request)
    knobs = state.settings.ocapi
    if credentials is None or credentials != (knobs.client_id, knobs.client_secret):
        state.stats.auth_failures["ocapi"] += 1
        return json_response(
            401,
            {"error": "invalid_client", "error_description": "Client authentication failed"},
            headers={"WWW-Authenticate": 'Basic realm="account.demandware.com"'},
        )
    if request.content_type.lower() != "application/x-www-form-urlencoded":
        return json_response(
            400, {"error": "invalid_request", "error_description": "Expected a form-encoded body"}
        )
    try:
        grant_type = parse_form(body).get("grant_type")
    except ValueError:
        grant_type = None
    if grant_type != "client_credentials":
        return json_response(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": f"Unsupported grant_type {grant_type!r}",
            },
        )
    grant = state.tokens.issue("ocapi")
    return json_response(
        200,
        {
            "access_token": grant.access_token,
            "scope": "mail tenantFilter profile",
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
        },
    )


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def add_routes(app: web.Application) -> None:
    app.router.add_post(QUABLE_SESSIONS, quable_login)
    app.router.add_get(QUABLE_SESSIONS, quable_refresh)
    app.router.add_post("/oauth2/token", propeller_token)
    app.router.add_post("/dwsso/oauth2/access_token", ocapi_token)
    app.router.add_post("/dw/oauth2/access_token", ocapi_token)
