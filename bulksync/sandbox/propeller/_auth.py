"""Propeller's authentication: the bearer check, and ``POST /oauth2/token`` at the host root,
outside ``/v2`` (form ``client_id``, ``client_secret``, ``grant_type=client_credentials``); the
current documented answer (``expires_in`` a number, ``token_type`` ``Bearer``) or, by the
``token_answer`` knob, the old Apigee one (``expires_in`` a string, ``token_type``
``BearerToken``).
"""

from __future__ import annotations

import time

from aiohttp import web

from bulksync.sandbox._errors import json_response
from bulksync.sandbox._http import bearer_token, parse_form, read_body
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox._tokens import random_token
from bulksync.sandbox.propeller._errors import propeller_unauthorized
from bulksync.sandbox.propeller._settings import PropellerSettings

PROPELLER_TOKEN = "/oauth2/token"


def check(state: SandboxState, request: web.Request, is_write: bool) -> web.Response | None:
    """None when the request may proceed, else Propeller's 401."""
    token = bearer_token(request)
    knobs = state.settings.of(PropellerSettings)
    verdict = state.tokens.check("propeller", token, knobs.tokens) if token else "invalid"
    if verdict == "ok":
        return None
    return propeller_unauthorized(verdict == "expired", knobs.auth_error_shape)


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
    knobs = state.settings.of(PropellerSettings)
    if client_id is None:
        return _apigee_token_error(401, "invalid_client", "Client identifier is required")
    if client_id != knobs.client_id or secret != knobs.client_secret:
        state.stats.auth_failures["propeller"] += 1
        return _apigee_token_error(401, "invalid_client", "ClientId is Invalid")
    grant = state.tokens.issue("propeller", random_token(28), knobs.token_lifetime_s)
    if knobs.token_answer == "current":
        # docs.propeller-commerce.com/integrations/integration-patterns/authentication-and-security
        return json_response(
            200,
            {
                "access_token": grant.access_token,
                "expires_in": grant.expires_in,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile",
            },
        )
    # docs.propeller-commerce.com/rest-sonar/get-access-token
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


def add_routes(app: web.Application) -> None:
    app.router.add_post(PROPELLER_TOKEN, propeller_token)
