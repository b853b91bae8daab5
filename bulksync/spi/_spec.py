"""A target's spec: what the core needs to know of a connector before it builds one.

A connector package exposes one :class:`TargetSpec` through the ``bulksync.targets`` entry
point group; the core finds it by name (``[target] kind``), validates the ``[name]`` table
with ``options``, wires secrets, authentication, transport and budget itself, and checks a
job against ``capabilities`` before the first request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bulksync.spi._auth import TokenSource
from bulksync.spi._connector import Capabilities, Connector
from bulksync.spi._shapes import InputShape

# The secrets a target can take, each read from the environment variables [target] names:
# token_env; user_env and password_env; client_id_env and client_secret_env.
CredentialKind = Literal["token", "login", "client_credentials"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """The secrets the core read for one run; never logged (each is registered for redaction)."""

    kind: CredentialKind
    token: str | None = field(default=None, repr=False)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Site:
    """Where the run goes, for a login that needs a URL of its own (an OAuth token URL)."""

    base_url: str
    allow_http: bool


@dataclass(frozen=True, slots=True)
class TargetSpec:
    name: str  # the [target] kind, and the name of the target's own options table
    options: type[Any]  # a pydantic model (subclass of bulksync.spi.Options) for [name]
    connector: Callable[[Any], Connector]  # options -> connector; no secrets, no I/O
    capabilities: Capabilities
    description: str = ""
    # The documented request limits, (requests, seconds) windows; [limits] rate overrides.
    rate_windows: tuple[tuple[int, float], ...] = ()
    credentials: tuple[CredentialKind, ...] = ()  # accepted forms; empty: no authentication
    # Builds the connector's half of a login from the secrets; None: a "token" credential is
    # sent as it is (Authorization: Bearer) and other kinds are refused.
    login: Callable[[Credentials, Any, Site], TokenSource | None] | None = None
    session_margin_s: float | None = None  # renew a session this long before it ends
    input_shape: InputShape = field(default_factory=InputShape)
