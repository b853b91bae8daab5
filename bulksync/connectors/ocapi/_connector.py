"""Salesforce B2C Commerce OCAPI (Data API) as a target: category links, single or batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import Field

from bulksync.spi import (
    AssetRecord,
    BaseConnector,
    BaseStage,
    BenchRead,
    Capabilities,
    Client,
    ConfigError,
    Credentials,
    ErrorInfo,
    Failed,
    HttpRequest,
    HttpResponse,
    Job,
    Kind,
    LinkRecord,
    Options,
    Outcome,
    RemoteLister,
    Site,
    Stage,
    TargetSpec,
    check_base_url,
    json_object_404,
    refuse_userinfo,
    split_url,
)

from ._auth import DEFAULT_TOKEN_URL, OcapiClientCredentials
from ._batch import MAX_PARTS, BatchLinkStage
from ._delete import DeleteLinkStage
from ._links import CategoryLinkStage, category_link
from ._listing import MAX_COUNT, OcapiLister
from ._requests import OcapiRequests
from ._shape import OCAPI_SHAPE

# The catalog and category of the preflight's read: no real one is known before the input.
PREFLIGHT_ID = "bulksync-preflight"


class OcapiOptions(Options):
    """The [ocapi] table of a job config."""

    table: ClassVar[str] = "ocapi"

    # Absolute, or relative to [target] base_url (the sandbox serves it on its own host).
    token_url: str = DEFAULT_TOKEN_URL
    data_path: str = "s/-/dw/data/v23_2"  # the Data API base, below base_url
    batch: bool = False  # send links through the batch API instead of one PUT each
    # Sub-requests per batch: the batch API takes at most 50.
    batch_size: Annotated[int, Field(ge=1, le=MAX_PARTS)] = MAX_PARTS
    batch_path: str = "s/-/dw/batch"
    # --full lists each category's links in pages of this many.
    list_page_size: Annotated[int, Field(ge=1, le=MAX_COUNT)] = MAX_COUNT

    def model_post_init(self, context: Any, /) -> None:
        for name in ("token_url", "data_path", "batch_path"):
            if not getattr(self, name).strip("/ "):
                raise ConfigError(f"[ocapi] {name} must be a non-empty string")
        # Stored without slashes at either end: request paths are joined to base_url, and the
        # batch's x-dw-resource-path is built from data_path.
        self.data_path = self.data_path.strip("/")
        self.batch_path = self.batch_path.strip("/")


class AssetsUnsupportedStage(BaseStage):
    """OCAPI has no asset push here: each asset line gets a clear failure, not a request."""

    name = "asset"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        message = "the OCAPI connector carries category links only; assets are not supported"
        return [Failed(ErrorInfo("Unsupported", message)) for _ in jobs]


# Category links only: put, deleted (seed 003) and listed per category.
_LINKS: frozenset[Kind] = frozenset({"link"})
CAPABILITIES = Capabilities(kinds=_LINKS, prune=_LINKS, listing=_LINKS)


class OcapiConnector(BaseConnector):
    name = "ocapi"
    lister: RemoteLister | None = None
    capabilities = CAPABILITIES

    def __init__(self, options: OcapiOptions | None = None) -> None:
        self.options = options or OcapiOptions()
        self.lister = OcapiLister(self.options.data_path, self.options.list_page_size)
        if self.options.batch:
            self.capabilities = replace(OcapiConnector.capabilities, batch=True)

    def stages(self, kind: Kind) -> Sequence[Stage]:
        if kind == "asset":
            return [AssetsUnsupportedStage()]
        options = self.options
        if options.batch:
            return [BatchLinkStage(options.data_path, options.batch_path, options.batch_size)]
        return [CategoryLinkStage(options.data_path)]

    def refuse(self, record: AssetRecord | LinkRecord) -> str | None:
        """Why OCAPI cannot take this line (a negative sequence, a bad endpoint or type),
        found at read time: the line is reported invalid and costs no request."""
        if not isinstance(record, LinkRecord):
            return None  # assets fail in their own stage, with their own message
        link = category_link(Job(record))
        return link.error.message if isinstance(link, Failed) else None

    def preflight_request(self) -> HttpRequest:
        """Seed 003's ``GET .../category_links`` (``count`` 1) of a catalog no job uses: the
        catalogs are only known once the input is read. Its documented answer, 404
        CatalogNotFoundException, proves the route, the token and the client's permission on
        the resource it will write, and reads nothing."""
        where = f"{self.options.data_path}/catalogs/{PREFLIGHT_ID}/categories/{PREFLIGHT_ID}"
        return HttpRequest("GET", f"{where}/category_links", params={"count": "1"})

    def no_route(self, response: HttpResponse) -> bool:
        """A fault of type ResourcePathNotFoundException is the Data API's "no such path"
        (a wrong base_url or data_path); CatalogNotFound and the like are one object missing."""
        if response.status != 404:
            return False
        if json_object_404(response):
            return True
        try:
            fault = orjson.loads(response.body).get("fault")
        except (orjson.JSONDecodeError, AttributeError):
            return True
        kind = fault.get("type") if isinstance(fault, dict) else None
        return kind is None or kind == "ResourcePathNotFoundException"

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        # Seed 003: DELETE answers 204, or 404 CategoryLinkNotFoundException when gone.
        if kind != "link":
            raise ConfigError("the OCAPI connector carries category links only")
        return [DeleteLinkStage(self.options.data_path)]


def _check(options: OcapiOptions, site: Site) -> None:
    refuse_userinfo(options.token_url, "[ocapi] token_url")
    if split_url(options.token_url, "[ocapi] token_url").scheme:
        # The secret travels to this URL in the Basic header: same rule as base_url.
        check_base_url(options.token_url, site.allow_http, "[ocapi] token_url")


def _login(credentials: Credentials, options: OcapiOptions, site: Site) -> OcapiClientCredentials:
    assert credentials.client_id is not None and credentials.client_secret is not None
    return OcapiClientCredentials(
        credentials.client_id, credentials.client_secret, options.token_url
    )


def _bench_read(options: OcapiOptions) -> BenchRead:
    """The preflight's read: seed 003's category links of a catalog no job uses, documented
    to answer 404 CatalogNotFoundException (served: it went through routing, the token and
    the client's resource permissions). No --writes: a category link needs two real
    categories of a real catalog."""
    return BenchRead(OcapiConnector(options).preflight_request(), frozenset({200, 404}))


def _requests(options: OcapiOptions) -> OcapiRequests:
    return OcapiRequests(options.batch, options.batch_size)


SPEC = TargetSpec(
    name="ocapi",
    title="OCAPI",
    description="Salesforce B2C Commerce OCAPI: category links by PUT or the batch API",
    options=OcapiOptions,
    connector=OcapiConnector,
    capabilities=CAPABILITIES,
    # REFERENCE.md: "No documented request rate for OCAPI" -- no windows unless configured;
    # the budget still slows down on 429 and honours Retry-After.
    credentials=("client_credentials",),
    missing_credentials=(
        "OCAPI needs [target] client_id_env and client_secret_env "
        "(the API client's id and secret, for OAuth client credentials)"
    ),
    check=_check,
    login=_login,
    input_shape=OCAPI_SHAPE,
    bench_read=_bench_read,
    requests=_requests,
)
