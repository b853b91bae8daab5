"""OCAPI's authentication: the bearer check of the Data API and the batch endpoint, and the
token routes: ``POST /dwsso/oauth2/access_token``, the Account Manager path of the current
docs, and the older ``POST /dw/oauth2/access_token`` still in the Data API spec (Basic client
credentials, form ``grant_type``).
"""

from __future__ import annotations

import base64
import binascii
import uuid

from aiohttp import web

from bulksync.sandbox._errors import json_response
from bulksync.sandbox._http import bearer_token, parse_form, read_body
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox.ocapi._errors import ocapi_fault
from bulksync.sandbox.ocapi._settings import OcapiSettings

TOKEN_PATHS = ("/dwsso/oauth2/access_token", "/dw/oauth2/access_token")


def check(state: SandboxState, request: web.Request, is_write: bool) -> web.Response | None:
    """None when the request may proceed. The same 401s on the Data API and on the batch
    endpoint: an invalid or expired token is ``InvalidAccessTokenException``, as REFERENCE.md
    documents for OCAPI."""
    token = bearer_token(request)
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
    if state.tokens.check("ocapi", token, state.settings.of(OcapiSettings).tokens) == "ok":
        return None
    return ocapi_fault(
        401,
        "InvalidAccessTokenException",
        "The OAuth access token sent via Authorization: Bearer header is invalid.",
        {"accessToken": token},
    )


async def ocapi_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request, "ocapi")
    credentials = _basic(request)
    knobs = state.settings.of(OcapiSettings)
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
    grant = state.tokens.issue("ocapi", str(uuid.uuid4()), knobs.token_lifetime_s)
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
    for path in TOKEN_PATHS:
        app.router.add_post(path, ocapi_token)
