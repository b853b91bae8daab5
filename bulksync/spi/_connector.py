"""The connector seam: the small interface every target implements.

A connector builds requests, parses responses and classifies errors. It never sleeps, retries
or rate-limits: the engine owns pacing, retries and authentication refreshes, and a connector
only says, by raising :class:`RequestFailed` or returning :class:`Failed`, whether trying again
could help.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote

from bulksync.spi._errors import ConfigError, ErrorClass, ErrorInfo
from bulksync.spi._http import HttpRequest, HttpResponse, parse_retry_after
from bulksync.spi._records import AssetRecord, Kind, LinkRecord, Record
from bulksync.spi._redact import body_excerpt

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

StepData = TypeVar("StepData")


@dataclass(slots=True, eq=False)
class Job:
    """One item on its way through the stages: the contract between the engine and a stage.

    The engine sets, before a stage runs (a stage reads them):

    - ``digest``: the content digest the state store keeps for the item; ``None`` when the run
      keeps no state. The engine's, not a stage's.
    - ``exists``: whether the target holds the item already. ``True`` when the state store (or
      the ``--full`` listing) shows it there, so a stage may update rather than create;
      ``False`` only with evidence of absence (the ``--full`` listing lacks it: the state's
      silence is none); ``None`` when nothing is known. Never take ``None`` for ``False``. A
      stage that learns better (it created the item, or re-read it) may set it.
    - ``maybe_applied``: an earlier attempt's write may have landed although its answer was
      lost (or a run that stopped was pushing the item: ``resumed``). A stage that creates
      must look the object up before creating again. Sticky until the stage succeeds.
    - ``remote_id``: the id the target gave the item (from the state, or an earlier stage).

    A stage sets, for the engine:

    - ``file_id``: what an upload made that a later stage refers to. The engine makes it
      durable before the item waits for its next stage, and a rerun of the same content gets
      it back here, so the file is not uploaded twice.
    - ``absent_on_target``: the target no longer holds any version of the item (a changed
      link whose old version was deleted before the new one is created). If the item then
      fails, the state forgets the old push rather than keep claiming it is there.

    What a stage says of its success (``Done.action``, ``Done.remote_id``) it returns in its
    :class:`Done`; anything else it needs from one attempt to the next (or from one of its
    stages to another) it keeps in its own dataclass, through :meth:`step`.
    """

    record: Record
    digest: str | None = None
    exists: bool | None = None
    maybe_applied: bool = False
    # An earlier run was pushing this item when it stopped: every stage looks before creating.
    resumed: bool = False
    remote_id: str | None = None
    file_id: str | None = None
    absent_on_target: bool = False
    # The engine's own bookkeeping; a stage has no use for these.
    action: str | None = None  # the last Done.action, for the result line and the state
    attempts: int = 0  # requests attempts over all stages, for the result line
    stage_attempts: int = 0  # attempts in the current stage, for backoff
    started_at: float | None = None  # monotonic time of the first attempt
    intent: tuple[str, str | None] | None = None  # what the state holds in flight: hash, file
    stage: str | None = None  # the stage the job is in, for interrupted results
    passed: int = 0  # stages that counted the job in their progress (done, failed, n/a)
    extra: dict[str, Any] = field(default_factory=dict)  # connector fields for the result line
    _steps: dict[type[Any], Any] = field(default_factory=dict, init=False, repr=False)

    def step(self, kind: type[StepData]) -> StepData:
        """The connector's own step data of this item, an instance of ``kind`` made once (with
        no arguments) and the same on every later call: a retry of the stage, or a later stage
        of the same connector, finds what an earlier attempt left there. The engine never
        reads it, and it lives only as long as the job (a rerun starts afresh)."""
        data = self._steps.get(kind)
        if data is None:
            data = self._steps[kind] = kind()
        return cast(StepData, data)


@dataclass(frozen=True, slots=True)
class Done:
    """The stage succeeded for this item.

    ``action`` says what happened on the target ("created", "updated", "deleted", "gone"...):
    the result line's ``action`` field and the text the state keeps ("succeeded (created)").
    A later stage's action replaces an earlier one's; ``None`` leaves it as it was.
    ``extra`` holds other connector fields for the result line.
    """

    remote_id: str | None = None
    action: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failed:
    """The stage failed for this item; ``retryable`` lets the engine try it again."""

    error: ErrorInfo
    retryable: bool = False
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    isolate: bool = False  # a whole batch failed: retry it in halves to find the bad items
    maybe_applied: bool = False  # a write for this item may have happened: verify, don't repeat


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


Outcome = Done | Failed | Skipped


class RequestFailed(Exception):
    """A whole request failed; raised by a connector after classifying the response.

    ``maybe_applied`` says the failed request was a write the server may have carried out
    (its answer was a 500, 502 or 504, or an unreadable 2xx): the engine marks the items, and
    a stage that creates looks the object up on its next attempt instead of creating again.
    """

    def __init__(
        self,
        error: ErrorInfo,
        error_class: ErrorClass,
        retry_after: float | None = None,
        *,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.error_class = error_class
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


class Client(Protocol):
    """What the engine lends a stage: one paced, authenticated request, no retry."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


class Stage(Protocol):
    """One step of an item's journey (upload, create, link...), run by a pool of workers.

    ``run`` gets up to ``batch_size`` jobs and returns one outcome per job, in order; what a
    :class:`Job` carries in and out is described there. A ``grouped`` stage gets batches of
    jobs sharing one ``group_key`` (one request per group, such as Quable's v4 links of one
    document and link type). With ``serial_groups`` as well, the engine never runs two
    batches of one group at once: a read-modify-write of a whole group (list it, change it,
    send it back) cannot then undo another batch's write. A stage never locks by itself.
    """

    name: str
    batch_size: int
    grouped: bool
    serial_groups: bool

    def applies(self, job: Job) -> bool: ...

    def group_key(self, job: Job) -> Hashable: ...

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]: ...


class BaseStage:
    """Defaults for a stage: one item at a time, every item, no grouping."""

    name = "stage"
    batch_size = 1
    grouped = False
    serial_groups = False

    def applies(self, job: Job) -> bool:
        return True

    def group_key(self, job: Job) -> Hashable:
        return None


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One object the target holds, as a listing reports it (``--full`` compares with it)."""

    kind: Kind
    key: str  # the key an input record for the same object has (``Record.key``)
    remote_id: str | None = None  # what a delete of this object needs
    fields: Mapping[str, Any] = field(default_factory=dict)  # what `matches` reads; JSON-able


@dataclass(frozen=True, slots=True)
class RemotePage:
    """One page of a listing and the request for the next (``None`` on the last page)."""

    items: Sequence[RemoteItem]
    next: HttpRequest | None = None


class RemoteLister(Protocol):
    """How a connector lists the target for ``--full``: it builds page requests and reads
    pages; the engine pages through them, paces and retries."""

    def listing_requests(self, kind: Kind, records: Iterable[Record]) -> Sequence[HttpRequest]:
        """The first page of each part of the target the job's records touch (one scope each).

        ``records`` is a separate pass over the job's valid input, read only to find scopes.
        """
        ...

    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        """The items of one page and the next page's request; raises :class:`RequestFailed`
        for an error answer."""
        ...

    def matches(self, record: Record, remote: RemoteItem) -> bool:
        """Whether the target already holds what this record would push (then it is skipped)."""
        ...

    def compares_all(self, record: Record) -> bool:
        """Whether ``matches`` sees all this record would push (a file's bytes may not be in a
        listing): only then may the state take a match as a confirmed push."""
        ...


BOTH_KINDS: frozenset[Kind] = frozenset({"asset", "link"})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a target supports, declared by its connector. Runs and dry runs check the job
    against it before the first request: a job the target cannot carry out stops at once
    with one line, not after the whole sync (or item by item)."""

    kinds: frozenset[Kind] = BOTH_KINDS  # the kinds of input it takes
    prune: frozenset[Kind] = frozenset()  # the kinds --prune can delete there
    # The kinds --full can list and compare with; others are pushed again in full.
    listing: frozenset[Kind] = frozenset()
    batch: bool = False  # several items per request (informative: the stages decide)


class Connector(Protocol):
    """A target: the stages that carry each kind of record there."""

    name: str
    capabilities: Capabilities
    # ``None`` when the target documents no way to list what it holds: ``--full`` then
    # pushes every item again.
    lister: RemoteLister | None

    # Subclass BaseConnector for the defaults of every member below but ``stages``.

    def stages(self, kind: Kind) -> Sequence[Stage]: ...

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        """Stages that delete :class:`~bulksync.spi._records.Removal` records (for --prune)."""
        ...

    def identity(self, record: AssetRecord | LinkRecord) -> str:
        """What the target keys an item by (default: the record's key)."""
        ...

    def refuse(self, record: AssetRecord | LinkRecord) -> str | None:
        """Why the target cannot take a line at all (invalid at read time), or None."""
        ...

    def preflight_request(self) -> HttpRequest | None:
        """One cheap documented GET sent before the first item, or None."""
        ...

    def no_route(self, response: HttpResponse) -> bool:
        """Whether a 404 says the path has no API behind it (a wrong base_url)."""
        ...


class BaseConnector:
    """Defaults for a connector: subclass it and override what the target does differently.

    Every member the engine may call is declared here, so nothing is found by guessing.
    """

    name = "connector"
    capabilities = Capabilities()
    # ``None`` when the target documents no way to list what it holds: ``--full`` then
    # pushes every item again.
    lister: RemoteLister | None = None

    def stages(self, kind: Kind) -> Sequence[Stage]:
        raise NotImplementedError  # every connector carries at least one kind

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        """Stages that delete :class:`~bulksync.spi._records.Removal` records (for --prune)."""
        raise ConfigError(f"--prune is not supported for {self.name}")

    def identity(self, record: AssetRecord | LinkRecord) -> str:
        """What the target keys an item by, when that is not the record's key (Propeller keeps
        one link per from/to pair, whatever its type). Two input lines with one identity would
        overwrite each other: the later one fails."""
        return record.key

    def refuse(self, record: AssetRecord | LinkRecord) -> str | None:
        """Why the target cannot take a line whatever it answers (a value its documents rule
        out): the line is invalid at read time and costs no request."""
        return None

    def preflight_request(self) -> HttpRequest | None:
        """One cheap documented GET that the run sends (after the login) before the first item;
        2xx, 429 or a 404 of the API's own prove the target usable (bulksync.engine._preflight).
        None: no preflight."""
        return None

    def no_route(self, response: HttpResponse) -> bool:
        """Whether a 404 says the path has no API behind it (a wrong base_url) rather than that
        one object is missing; so many in a row stop the run (bulksync.engine._breaker)."""
        return json_object_404(response)


def classify_status(status: int) -> ErrorClass | None:
    """The default reading of an HTTP status; ``None`` means success.

    A 3xx is no success: nothing here follows redirects, so the request was not served.
    """
    if status < 300:
        return None
    if status < 400:
        return ErrorClass.ITEM
    if status == 401:
        return ErrorClass.AUTH
    if status in RETRYABLE_STATUSES:
        return ErrorClass.RETRYABLE
    return ErrorClass.ITEM


# RFC 9110 defines 408, 429 (RFC 6585) and 503 as the server not handling the request: a
# refusal before any work. 500, 502 and 504 promise nothing of the kind: the origin may have
# failed after writing, or a gateway may have lost or timed out on an answer it was owed. A
# write answered with one of these may have been applied (see the README's "Retries and
# ambiguous outcomes").
MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})


def maybe_applied(status: int, write: bool) -> bool:
    """Whether a write answered ``status`` may have been applied all the same."""
    return write and status in MAYBE_APPLIED_STATUSES


def response_error(
    response: HttpResponse, message: str | None = None, *, write: bool = False
) -> RequestFailed:
    """Turn a non-2xx response into a classified :class:`RequestFailed`.

    ``write`` tells that the request was a write, so that an ambiguous status marks it as
    maybe applied.
    """
    error_class = classify_status(response.status) or ErrorClass.ITEM
    text = message or body_excerpt(response.body) or f"HTTP {response.status}"
    return RequestFailed(
        ErrorInfo(type=f"HTTP{response.status}", message=text, http_status=response.status),
        error_class,
        retry_after=parse_retry_after(response.header("retry-after")),
        maybe_applied=maybe_applied(response.status, write),
    )


UNSAFE_SEGMENTS = frozenset({"", ".", ".."})


def path_segment(value: str) -> str:
    """Untrusted text (an input id, an id a server gave) as one percent-encoded path segment.

    "", "." and ".." are refused: a URL library drops or climbs them, so the request would go
    to another resource (``PUT /api/assets/..`` is ``PUT /api/``) and a 404 there could be read
    as "already gone". Everything else, "/", "?", "#" and "%" included, is encoded whole.
    """
    if value in UNSAFE_SEGMENTS:
        error = ErrorInfo("UnsafeId", f"'{value}' cannot be used as an id in a URL path")
        raise RequestFailed(error, ErrorClass.ITEM)
    return quote(value, safe="")


def json_object_404(response: HttpResponse) -> bool:
    """The default reading of a 404 for a connector without ``no_route``: the API answers in
    JSON, so a 404 whose body is not a JSON object came from something else (a proxy, a web
    server) that has no route there."""
    if response.status != 404:
        return False
    try:
        return not isinstance(json.loads(response.body or b"null"), dict)
    except ValueError:
        return True
