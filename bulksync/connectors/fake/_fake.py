"""A fault-injecting in-memory target that drives the real engine without any network.

``FakeServer`` plays a small API (token, files, assets, links) behind the :class:`Transport`
seam, with seeded latency and faults; ``FakeConnector`` is a connector for it written the way
real connectors are. Tests and benchmarks use the pair to exercise retries, pacing, auth
refresh and the per-item bookkeeping of the engine, and read the server's counters to prove
that nothing was lost or written twice.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import anyio
import orjson
from pydantic import Field

from bulksync.spi import (
    BOTH_KINDS,
    AssetRecord,
    BaseConnector,
    BaseRequestModel,
    BaseStage,
    BenchRead,
    BenchWrite,
    Capabilities,
    Client,
    ConfigError,
    CredentialKind,
    Credentials,
    Done,
    ErrorInfo,
    Failed,
    FilePart,
    HttpRequest,
    HttpResponse,
    ItemCost,
    Job,
    Kind,
    Options,
    Outcome,
    PlannedItem,
    RemoteLister,
    Seconds,
    Site,
    Stage,
    TargetSpec,
    Token,
    TransportError,
    bad_response,
    json_object,
    response_error,
)

from ._shape import FAKE_SHAPE

Share = Annotated[float, Field(ge=0, le=1)]


class FakeSettings(Options):
    """The [fake] table of a job config."""

    table: ClassVar[str] = "fake"
    latency_s: Seconds = 0.0
    jitter_s: Seconds = 0.0
    transient_rate: Share = 0.0  # share of requests that fail in a retryable way
    permanent_rate: Share = 0.0  # share of items the server always rejects (by key)
    seed: int = 0
    token_lifetime_s: float | None = None  # None: the fake needs no token at all
    retry_after_s: float | None = 0.05  # sent with the fake's 429s; None: no header
    static_token: str | None = None  # a fixed bearer token the fake accepts
    echo_auth: bool = False  # echo the Authorization header in error bodies, as careless APIs do
    track_keys: bool = True  # keep per-key counters (off for memory benchmarks)


@dataclass(slots=True)
class FakeCounters:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)  # writes applied per item key
    acknowledged: set[str] = field(default_factory=set)  # keys whose success was delivered
    sent_after_success: int = 0  # requests for a key whose success was already delivered
    logins: int = 0
    expired_tokens_seen: int = 0
    deleted: list[str] = field(default_factory=list)


class FakeServer:
    """The in-memory API. Implements the Transport protocol."""

    _FAULTS = ("503", "500", "429", "drop", "applied-then-drop")

    def __init__(self, settings: FakeSettings | None = None) -> None:
        self.settings = settings or FakeSettings()
        self.counters = FakeCounters()
        self._rng = random.Random(self.settings.seed)
        self._ids = itertools.count(1)
        self._files: dict[str, int] = {}
        self._tokens: dict[str, float] = {}

    async def send(self, request: HttpRequest) -> HttpResponse:
        settings = self.settings
        self.counters.requests += 1
        delay = settings.latency_s + self._rng.uniform(0.0, settings.jitter_s)
        fault = self._draw_fault()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()
        path = request.url.split("://", 1)[-1].split("/", 1)[-1]
        if path == "token":
            return self._login()
        if not self._token_valid(request):
            return self._error(401, "invalid or expired token", request)
        if fault == "drop":
            raise TransportError("connection reset by fake server", maybe_applied=True)
        if fault in ("503", "500"):
            return self._error(int(fault), "fake transient failure", request)
        if fault == "429":
            headers = {}
            if settings.retry_after_s is not None:
                headers["retry-after"] = f"{settings.retry_after_s:g}"
            return _json(429, {"error": "too many requests"}, headers)
        response = self._apply(path, request)
        if fault == "applied-then-drop":
            raise TransportError("response lost after the write was applied", maybe_applied=True)
        body = request.json if isinstance(request.json, dict) else {}
        if response.ok and settings.track_keys and "key" in body:
            self.counters.acknowledged.add(body["key"])
        return response

    async def aclose(self) -> None:
        return None

    def _draw_fault(self) -> str | None:
        if self._rng.random() >= self.settings.transient_rate:
            return None
        fault = self._rng.choice(self._FAULTS)
        self.counters.faults[fault] = self.counters.faults.get(fault, 0) + 1
        return fault

    def _login(self) -> HttpResponse:
        self.counters.logins += 1
        token = f"fake-token-{next(self._ids)}"
        lifetime = self.settings.token_lifetime_s or 3600.0
        self._tokens[token] = anyio.current_time() + lifetime
        return _json(200, {"access_token": token, "expires_in": lifetime})

    def _error(self, status: int, message: str, request: HttpRequest) -> HttpResponse:
        if self.settings.echo_auth:
            message += f" (Authorization: {request.headers.get('Authorization')})"
        return _json(status, {"error": message})

    def _token_valid(self, request: HttpRequest) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.settings.static_token is not None:
            return token == self.settings.static_token
        if self.settings.token_lifetime_s is None:
            return True
        expiry = self._tokens.get(token)
        if expiry is not None and expiry <= anyio.current_time():
            self.counters.expired_tokens_seen += 1
            return False
        return expiry is not None

    def rejects(self, key: str) -> bool:
        """Whether this key is one of the permanently rejected items (stable across runs)."""
        digest = hashlib.sha256(f"{self.settings.seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.settings.permanent_rate

    def _apply(self, path: str, request: HttpRequest) -> HttpResponse:
        if path == "status":  # the bench's read: answers what a health check would
            return _json(200, {"ok": True})
        if path == "files":
            file_id = f"file-{next(self._ids)}"
            if self.settings.track_keys:
                self._files[file_id] = request.files[0].path.stat().st_size if request.files else 0
            return _json(201, {"id": file_id})
        body = request.json if isinstance(request.json, dict) else {}
        key = body.get("key")
        if path == "deletions" and isinstance(key, str):
            self.counters.deleted.append(key)
            return _json(204, None)
        if path not in ("assets", "links") or not isinstance(key, str):
            return self._error(400, f"bad request to {path}", request)
        if key in self.counters.acknowledged:
            self.counters.sent_after_success += 1
        if self.rejects(key):
            return self._error(422, f"item {key} rejected by the fake server", request)
        known_file = not self.settings.track_keys or body.get("fileId") in self._files
        if path == "assets" and "fileId" in body and not known_file:
            return self._error(400, f"unknown file id {body['fileId']}", request)
        if self.settings.track_keys:
            self.counters.applied[key] = self.counters.applied.get(key, 0) + 1
        return _json(201, {"id": hashlib.sha1(key.encode()).hexdigest()[:12]})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    all_headers = {"content-type": "application/json", **(headers or {})}
    return HttpResponse(status, all_headers, orjson.dumps(body))


class FakeTokenSource:
    """The fake's login, built like a real connector's token source."""

    def login_request(self) -> HttpRequest:
        form = {"grant_type": "client_credentials"}
        return HttpRequest("POST", "token", form=form, authenticated=False)

    def refresh_request(self, token: Token) -> HttpRequest | None:
        return None

    def parse_token(self, response: HttpResponse, now: float) -> Token:
        body = response.json()
        return Token(body["access_token"], now + float(body["expires_in"]))

    def auth_headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.value}"}


class _WriteStage(BaseStage):
    """POST one item by key; shared by the link and asset-create stages."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self._path = path

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        body: dict[str, Any] = {"key": job.record.key}
        if job.file_id is not None:
            body["fileId"] = job.file_id
        response = await client.send(HttpRequest("POST", self._path, json=body))
        if not response.ok:
            raise response_error(response, write=True)
        if response.status == 204:  # a deletion answers nothing
            return [Done()]
        ident = json_object(response, f"{self.name} of {job.record.key}", write=True).get("id")
        return [Done(remote_id=None if ident is None else str(ident))]


class _UploadStage(BaseStage):
    name = "upload"

    def applies(self, job: Job) -> bool:
        return isinstance(job.record, AssetRecord) and job.record.file is not None

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        assert isinstance(job.record, AssetRecord) and job.record.file is not None
        path = job.record.file
        if not path.is_file():
            return [Failed(ErrorInfo("MissingFile", f"media file not found: {path}"))]
        request = HttpRequest("POST", "files", files=[FilePart("file", path, path.name)])
        response = await client.send(request)
        if not response.ok:
            raise response_error(response, write=True)
        file_id = json_object(response, f"upload of {path.name}", write=True).get("id")
        if not isinstance(file_id, str):
            raise bad_response(f"upload of {path.name}", "no file id", response.status, True)
        job.file_id = file_id
        return [Done()]


CAPABILITIES = Capabilities(kinds=BOTH_KINDS, prune=BOTH_KINDS)


class FakeConnector(BaseConnector):
    name = "fake"
    lister: RemoteLister | None = None
    capabilities = CAPABILITIES

    def stages(self, kind: Kind) -> Sequence[Stage]:
        if kind == "link":
            return [_WriteStage("link", "links")]
        if kind == "asset":
            return [_UploadStage(), _WriteStage("create", "assets")]
        raise ConfigError(f"the fake target does not take {kind} records")

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        return [_WriteStage("delete", "deletions")]


def _connector(settings: FakeSettings) -> FakeConnector:
    return FakeConnector()


def _login(credentials: Credentials, settings: FakeSettings, site: Site) -> FakeTokenSource | None:
    # No token configured: a session only when the fake is told its tokens expire.
    return FakeTokenSource() if settings.token_lifetime_s is not None else None


def _bench_read(settings: FakeSettings) -> BenchRead:
    return BenchRead(HttpRequest("GET", "status"))


def _bench_write(settings: FakeSettings) -> BenchWrite:
    """An asset by key, deleted through the fake's deletions (no lookup: deletes are resent)."""
    return BenchWrite(
        create=lambda key: HttpRequest("POST", "assets", json={"key": key}),
        delete=lambda key: HttpRequest("POST", "deletions", json={"key": key}),
    )


class FakeRequests(BaseRequestModel):
    """An upload and a create per file asset, one request per other item (delete too)."""

    def __init__(self, settings: FakeSettings) -> None:
        self._session = settings.token_lifetime_s is not None

    def cost(self, item: PlannedItem) -> ItemCost:
        record = item.record
        has_file = isinstance(record, AssetRecord) and record.file is not None
        return ItemCost(2 if has_file and item.action != "delete" else 1)

    def logins(self, credentials: CredentialKind) -> int:
        return 1 if self._session and credentials != "token" else 0


SPEC = TargetSpec(
    name="fake",
    title="fake target",
    description="the in-process fake target of the tests and the quick examples",
    options=FakeSettings,
    connector=_connector,
    capabilities=CAPABILITIES,
    credentials=("token", "none"),
    secret_labels={"token_env": "fake target token"},
    login=_login,
    transport=FakeServer,  # in-process: nothing is sent over the network
    needs_base_url=False,
    input_shape=FAKE_SHAPE,
    bench_read=_bench_read,
    bench_write=_bench_write,
    requests=FakeRequests,
)
