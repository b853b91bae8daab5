"""Quable as a target: its stages, its documented limits, its two ways to authenticate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from bulksync.spi import (
    BOTH_KINDS,
    BaseConnector,
    BenchRead,
    BenchWrite,
    Capabilities,
    Credentials,
    HttpRequest,
    HttpResponse,
    Kind,
    Options,
    RemoteLister,
    Site,
    Stage,
    TargetSpec,
    json_object_404,
    path_segment,
)

from ._assets import CreateStage, DeleteStage, UploadStage
from ._auth import QuableLogin
from ._links import V4LinkStage, V5LinkStage, find_removed_link
from ._listing import QuableLister
from ._requests import QuableRequests
from ._shape import QUABLE_SHAPE
from ._v4links import V4PruneStage

# Documented per instance: 6,000 requests per sliding 10 minutes and 300,000 per 24 hours.
QUABLE_WINDOWS = ((6000, 600.0), (300000, 86400.0))


class QuableOptions(Options):
    """The [quable] table of a job config."""

    table: ClassVar[str] = "quable"

    links_api: Literal["v5", "v4"] = "v5"  # v5: a POST /api/links per link; v4: grouped links
    v4_batch: Annotated[int, Field(ge=1, le=10_000)] = 200  # links per v4 request
    file_type: str = "asset"  # fileType of POST /api/files
    # --full lists assets and links in pages of this many; 30 is API Platform's default, and
    # Quable documents no maximum.
    list_page_size: Annotated[int, Field(ge=1, le=1000)] = 30
    # Ask the login for a remember-me token (signin.remember) and refresh with it; off, as in
    # the documented example, a session nearing its end is replaced by a new login.
    remember_me: bool = False


# Assets and links, both deletable and both listed; v4 sends a group of links per call.
CAPABILITIES = Capabilities(kinds=BOTH_KINDS, prune=BOTH_KINDS, listing=BOTH_KINDS)


class QuableConnector(BaseConnector):
    name = "quable"
    lister: RemoteLister | None = None
    capabilities = CAPABILITIES

    def __init__(self, options: QuableOptions | None = None) -> None:
        self.options = options or QuableOptions()
        self.lister = QuableLister(self.options.list_page_size, self.options.links_api)
        if self.options.links_api == "v4":
            self.capabilities = replace(QuableConnector.capabilities, batch=True)

    def stages(self, kind: Kind) -> Sequence[Stage]:
        if kind == "asset":
            return [UploadStage(self.options.file_type), CreateStage()]
        if self.options.links_api == "v4":
            return [V4LinkStage(self.options.v4_batch)]
        return [V5LinkStage()]

    def preflight_request(self) -> HttpRequest:
        """Seed 001 / REFERENCE: the v5 assets collection, one item (``limit``)."""
        return HttpRequest("GET", "api/assets", params={"limit": "1"})

    def no_route(self, response: HttpResponse) -> bool:
        """API Platform (Symfony) answers an unknown path 404 'No route found for "GET
        /..."'; a missing asset is 404 'Asset "x" not found.' [guess, the sandbox's shape]."""
        return response.status == 404 and (
            b"No route found" in response.body or json_object_404(response)
        )

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        if kind == "asset":
            return [DeleteStage("api/assets/{key}")]
        if self.options.links_api == "v4":
            # v4 links have no id: a group is set again without them (mode replace).
            return [V4PruneStage(self.options.v4_batch)]
        return [DeleteStage("api/links/{remote_id}", find_removed_link)]


def _login(credentials: Credentials, options: QuableOptions, site: Site) -> QuableLogin:
    assert credentials.user is not None and credentials.password is not None
    return QuableLogin(credentials.user, credentials.password, remember=options.remember_me)


def _bench_read(options: QuableOptions) -> BenchRead:
    """The preflight's read: seed 001's assets collection, one item."""
    return BenchRead(QuableConnector(options).preflight_request())


def _bench_write(options: QuableOptions) -> BenchWrite:
    """Seed 001: a remotePath asset (one call, no file), fetched and deleted (204) by id. The
    URL is never fetched by the sandbox; whether the PIM fetches it is undocumented, so it
    names a reserved domain (RFC 2606). An instance that requires a classification refuses
    the create (400): the bench then reports every write as an error."""

    def create(ident: str) -> HttpRequest:
        body = {"id": ident, "remotePath": f"https://example.com/{path_segment(ident)}.png"}
        return HttpRequest("POST", "api/assets", json=body)

    def at(method: str) -> Callable[[str], HttpRequest]:
        return lambda ident: HttpRequest(method, f"api/assets/{path_segment(ident)}")

    return BenchWrite(create=create, delete=at("DELETE"), lookup=at("GET"))


def _requests(options: QuableOptions) -> QuableRequests:
    return QuableRequests(options.links_api, options.v4_batch)


SPEC = TargetSpec(
    name="quable",
    title="Quable",
    description="Quable PIM: v5 assets (two steps or remotePath), v5 or v4 links, sessions",
    options=QuableOptions,
    connector=QuableConnector,
    capabilities=CAPABILITIES,
    rate_windows=QUABLE_WINDOWS,
    credentials=("token", "login"),
    missing_credentials=(
        "Quable needs [target] token_env (an API token) or user_env and password_env (a login)"
    ),
    login=_login,
    input_shape=QUABLE_SHAPE,
    bench_read=_bench_read,
    bench_write=_bench_write,
    requests=_requests,
)
