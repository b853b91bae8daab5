"""Propeller as a target: bulk link chunks, OAuth client credentials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import orjson
from pydantic import Field

from bulksync.spi import (
    AssetRecord,
    BaseConnector,
    BenchRead,
    Capabilities,
    ConfigError,
    Credentials,
    HttpRequest,
    HttpResponse,
    Kind,
    LinkRecord,
    Options,
    RemoteLister,
    Site,
    Stage,
    TargetSpec,
    endpoint_text,
    json_object_404,
)

from ._auth import RENEWAL_MARGIN_S, PropellerLogin, resolve_token_url
from ._links import BulkLinkStage, link_refusal
from ._requests import PropellerRequests
from ._shape import PROPELLER_SHAPE


class PropellerOptions(Options):
    """The [propeller] table of a job config."""

    table: ClassVar[str] = "propeller"

    # Links per bulk call (newer Propeller endpoints cap at 100).
    chunk: Annotated[int, Field(ge=1, le=1000)] = 100
    subtype: str | None = None  # for links whose input has none (the field is required)
    # Absolute, or a path on the base URL's origin; None: {origin}/oauth2/token, outside /v2.
    token_url: str | None = None


# Links only, in bulk chunks; no documented delete or listing of links.
CAPABILITIES = Capabilities(kinds=frozenset({"link"}), batch=True)


class PropellerConnector(BaseConnector):
    name = "propeller"
    # The seeds document no way to list links: --full upserts every item again.
    lister: RemoteLister | None = None
    capabilities = CAPABILITIES

    def __init__(self, options: PropellerOptions | None = None) -> None:
        self.options = options or PropellerOptions()

    def stages(self, kind: Kind) -> Sequence[Stage]:
        if kind != "link":
            raise ConfigError("the Propeller connector takes links only (no [inputs] assets)")
        return [BulkLinkStage(self.options.chunk, self.options.subtype)]

    def preflight_request(self) -> HttpRequest:
        """``GET /v2/links/{id}`` of an id no link has: REFERENCE lists 18003 LinkNotFound (404)
        as its documented answer, which proves the route, the token and read access without
        reading anything."""
        return HttpRequest("GET", "links/0")

    def no_route(self, response: HttpResponse) -> bool:
        """REFERENCE: 10008 NotFound is the error envelope of a path with no resource; 18003
        LinkNotFound is one link missing."""
        if response.status != 404:
            return False
        if json_object_404(response):
            return True
        try:
            error = orjson.loads(response.body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            return True
        return not isinstance(error, dict) or str(error.get("code")) == "10008"

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        raise ConfigError("--prune is not supported for Propeller yet")

    def refuse(self, record: AssetRecord | LinkRecord) -> str | None:
        """A link Propeller's documents rule out (a type not in the list, mismatched
        endpoints, no subtype): invalid at read time, so a dry run counts it as invalid and
        a run spends no request on it."""
        if not isinstance(record, LinkRecord):
            return None  # refused for the whole run by the capabilities
        return link_refusal(record, self.options.subtype)

    def identity(self, record: AssetRecord | LinkRecord) -> str:
        """Seed 002: the bulk endpoint creates a link "if a link for resources with such id
        doesn't already exist" and updates it otherwise: a link is its from/to pair, so two
        input links of one pair with different types would overwrite each other."""
        if isinstance(record, LinkRecord):
            return f"{endpoint_text(record.from_)} -> {endpoint_text(record.to)}"
        return record.key


def _login(credentials: Credentials, options: PropellerOptions, site: Site) -> PropellerLogin:
    assert credentials.client_id is not None and credentials.client_secret is not None
    token_url = resolve_token_url(site.base_url, options.token_url, site.allow_http)
    return PropellerLogin(credentials.client_id, credentials.client_secret, token_url)


def _bench_read(options: PropellerOptions) -> BenchRead:
    """The preflight's read: a link no id has, documented to answer 404 LinkNotFound (served:
    the route, the token and the lookup all worked). No --writes: a link needs real products
    at both ends, and the connector deletes nothing yet."""
    return BenchRead(PropellerConnector(options).preflight_request(), frozenset({200, 404}))


def _requests(options: PropellerOptions) -> PropellerRequests:
    return PropellerRequests(options.chunk)


SPEC = TargetSpec(
    name="propeller",
    title="Propeller",
    description="Propeller: bulk links by lookup key, with per-item results, and OAuth",
    options=PropellerOptions,
    connector=PropellerConnector,
    capabilities=CAPABILITIES,
    # Propeller documents no request rate: none unless the job sets one.
    credentials=("client_credentials",),
    login=_login,
    session_margin_s=RENEWAL_MARGIN_S,
    input_shape=PROPELLER_SHAPE,
    bench_read=_bench_read,
    requests=_requests,
)
