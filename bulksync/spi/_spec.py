"""A target's spec: what the core needs to know of a connector before it builds one.

A connector package exposes one :class:`TargetSpec` through the ``bulksync.targets`` entry
point group; the core finds it by name (``[target] kind``), validates the ``[name]`` table
with ``options``, wires secrets, authentication, transport and budget itself, and checks a
job against ``capabilities`` before the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bulksync.spi._auth import TokenSource
from bulksync.spi._bench import BenchRead, BenchWrite
from bulksync.spi._connector import Capabilities, Connector
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._options import Options
from bulksync.spi._requests import RequestModel
from bulksync.spi._shapes import InputShape

# The forms of secrets a target can take, each read from the environment variables [target]
# names: none; token_env; user_env and password_env; client_id_env and client_secret_env.
CredentialKind = Literal["none", "token", "login", "client_credentials"]

# Which [target] keys name each form's environment variables, in the order they are read.
CREDENTIAL_ENV: Mapping[CredentialKind, tuple[str, ...]] = {
    "none": (),
    "token": ("token_env",),
    "login": ("user_env", "password_env"),
    "client_credentials": ("client_id_env", "client_secret_env"),
}


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


class Transport(Protocol):
    """An in-process stand-in for the network (the fake target's server)."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One target kind. Only ``name``, ``options``, ``connector`` and ``capabilities`` are
    required; the defaults describe a target with no authentication and no request limits."""

    name: str  # the [target] kind, and the name of the target's own options table
    options: type[Options]  # the model of the [name] table
    connector: Callable[[Any], Connector]  # options -> connector; no secrets, no I/O
    # What --prune, --full and the inputs are checked against before the first request.
    capabilities: Capabilities
    title: str = ""  # the target's name in messages ("OCAPI"); empty: ``name``
    description: str = ""
    # The documented request limits, (requests, seconds) windows; [limits] rate overrides.
    rate_windows: tuple[tuple[int, float], ...] = ()
    # The accepted forms, in order of preference: the first whose [target] keys are all set
    # is read. "none" always matches (a target that may run without secrets).
    credentials: tuple[CredentialKind, ...] = ("none",)
    # The message when no accepted form is configured; None: the last form is read, and the
    # first missing key is named ("... no environment variable is configured for it").
    missing_credentials: str | None = None
    # A secret's name in messages, by [target] key; default "<title> API token", "<title>
    # user", "<title> password", "<title> client id", "<title> client secret".
    secret_labels: Mapping[str, str] = field(default_factory=dict)
    # Checks of the options against the site that must fail before any secret is read.
    check: Callable[[Any, Site], None] | None = None
    # The connector's half of a session, from the secrets (kind "token" never gets here: it
    # is sent as it is, Authorization: Bearer). None, or a None answer: no authentication.
    login: Callable[[Credentials, Any, Site], TokenSource | None] | None = None
    session_margin_s: float | None = None  # renew a session this long before it ends
    # An in-process transport built from the options (the fake); None: the network.
    transport: Callable[[Any], Transport] | None = None
    # Whether [target] base_url must be an http(s) URL (the fake sends nothing anywhere).
    needs_base_url: bool = True
    input_shape: InputShape = field(default_factory=InputShape)
    # `bulksync bench`: the documented read it repeats, and the synthetic create-then-delete
    # of --writes under an id prefix, both from the options. None: not benchmarkable that way.
    bench_read: Callable[[Any], BenchRead] | None = None
    bench_write: Callable[[Any], BenchWrite] | None = None
    # What each item costs in requests, from the options (bulksync.spi._requests): the plan
    # of --dry-run and of a run's first line. None: the plan counts items only.
    requests: Callable[[Any], RequestModel] | None = None

    def label(self, key: str) -> str:
        """What a secret is called in a message, from the [target] key naming its variable."""
        if key in self.secret_labels:
            return self.secret_labels[key]
        what = {
            "token_env": "API token",
            "user_env": "user",
            "password_env": "password",
            "client_id_env": "client id",
            "client_secret_env": "client secret",
        }[key]
        return f"{self.title or self.name} {what}"
