"""The notes connector: one input link is one pin (``from`` a board, ``to`` a note, ``type`` its
label, ``sequence`` its position on the board).

The API (served by :mod:`bulksync_notes.sandbox`):

- ``POST v1/pins`` ``{"board", "note", "label", "position"}`` -> 201 ``{"id", ...}``. An
  identical create makes a second pin: the API promises no 409, so a create whose answer was
  lost is looked up before it is sent again.
- ``GET v1/pins?board=&note=&label=&limit=&after=`` -> ``{"items": [...], "next": cursor}``.
- ``PUT v1/pins/{id}`` ``{"position"}``; ``DELETE v1/pins/{id}`` -> 204, 404 once gone.
- Errors are ``{"error": code, "detail": text}``; 401 without a valid bearer token.

Like every connector it only builds requests and reads answers: it never sleeps, retries or
paces. It says whether trying again can help, and the engine does the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field

from bulksync.spi import (
    AssetRecord,
    BaseConnector,
    BaseStage,
    Capabilities,
    Client,
    Done,
    HttpRequest,
    HttpResponse,
    Job,
    Kind,
    LinkRecord,
    Options,
    Outcome,
    Record,
    RemoteItem,
    RemotePage,
    Removal,
    Stage,
    bad_response,
    json_object,
    link_key,
    path_segment,
    response_error,
)

PINS = "v1/pins"
LINKS: frozenset[Kind] = frozenset({"link"})


class NotesOptions(Options):
    """The job file's ``[notes]`` table."""

    table: ClassVar[str] = "notes"
    # --full lists a board's pins in pages of this many; the API serves at most 200.
    list_page_size: Annotated[int, Field(ge=1, le=200)] = 100


def refuse(record: LinkRecord) -> str | None:
    """Boards and notes are named by their ids: an object endpoint cannot be a pin."""
    if not isinstance(record.from_, str) or not isinstance(record.to, str):
        return "a notes pin joins a board id ('from') and a note id ('to'), both strings"
    return None


def pin_body(record: LinkRecord) -> dict[str, Any]:
    return {
        "board": record.from_,
        "note": record.to,
        "label": record.type,
        "position": record.sequence if record.sequence is not None else 0,
    }


def pin_id(body: dict[str, Any], response: HttpResponse, what: str, *, write: bool) -> str:
    ident = body.get("id")
    if not isinstance(ident, str) or not ident:
        raise bad_response(what, "no pin id in its body", response.status, write)
    return ident


async def find_pin(client: Client, record: LinkRecord) -> dict[str, Any] | None:
    """The pin this record stands for, if the board holds it (the oldest, if several)."""
    params = {"board": str(record.from_), "note": str(record.to), "label": record.type}
    what = f"lookup of pin {record.key}"
    response = await client.send(HttpRequest("GET", PINS, params={**params, "limit": "1"}))
    if not response.ok:
        raise response_error(response, what)
    items = json_object(response, what, write=False).get("items")
    if not isinstance(items, list):
        raise bad_response(what, "no items list in its body", response.status, False)
    if not items:
        return None
    first = items[0]
    if not isinstance(first, dict) or (first.get("board"), first.get("note")) != (
        record.from_,
        record.to,
    ):
        # A filter the server ignored would list other pins: that proves nothing either way.
        raise bad_response(what, "a listing of another pin", response.status, False)
    return first


class PinStage(BaseStage):
    name = "pin"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        record = job.record
        assert isinstance(record, LinkRecord)
        # The target may hold it already: an earlier push (the state or --full says so), a
        # create whose answer was lost, or a run that stopped while pushing it.
        if job.maybe_applied or job.resumed or job.exists:
            found = await find_pin(client, record)
            if found is not None:
                return [await self._update(client, record, found)]
        what = f"create of pin {record.key}"
        response = await client.send(HttpRequest("POST", PINS, json=pin_body(record)))
        if not response.ok:
            raise response_error(response, what, write=True)
        body = json_object(response, what, write=True)
        return [Done(remote_id=pin_id(body, response, what, write=True), action="created")]

    async def _update(self, client: Client, record: LinkRecord, found: dict[str, Any]) -> Done:
        ident = found.get("id")
        if not isinstance(ident, str) or not ident:
            return Done(action="exists")
        wanted = pin_body(record)["position"]
        if found.get("position") == wanted:
            return Done(remote_id=ident, action="exists")
        what = f"update of pin {record.key}"
        request = HttpRequest("PUT", f"{PINS}/{path_segment(ident)}", json={"position": wanted})
        response = await client.send(request)
        if not response.ok:
            raise response_error(response, what, write=True)
        return Done(remote_id=ident, action="updated")


class DeletePinStage(BaseStage):
    name = "delete"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        record = jobs[0].record
        assert isinstance(record, Removal)
        ident = record.remote_id
        if not ident:
            return [Done(action="gone")]  # never created: nothing to delete
        response = await client.send(HttpRequest("DELETE", f"{PINS}/{path_segment(ident)}"))
        if response.status == 404:
            return [Done(remote_id=ident, action="gone")]  # deleted already
        if not response.ok:
            raise response_error(response, f"delete of pin {record.key}", write=True)
        return [Done(remote_id=ident, action="deleted")]


class NotesLister:
    """A board's pins, page by page (``after`` is the cursor the previous page gave)."""

    def __init__(self, page_size: int) -> None:
        self._page_size = page_size

    def listing_requests(self, kind: Kind, records: Iterable[Record]) -> Sequence[HttpRequest]:
        boards = {
            r.from_ for r in records if isinstance(r, LinkRecord) and isinstance(r.from_, str)
        }
        return [self._page(board, None) for board in sorted(boards)]

    def _page(self, board: str, after: str | None) -> HttpRequest:
        params = {"board": board, "limit": str(self._page_size)}
        if after is not None:
            params["after"] = after
        # The query goes in the URL, not in ``params``: the engine tells pages apart (and
        # stops a listing that loops) by their URL.
        return HttpRequest("GET", f"{PINS}?{urlencode(params)}")

    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        if not response.ok:
            raise response_error(response, "listing pins")
        body = json_object(response, "listing pins", write=False)
        items, after = body.get("items"), body.get("next")
        if not isinstance(items, list) or not (after is None or isinstance(after, str)):
            # Never read as an empty board: --full would push it all again, prune delete wrongly.
            raise bad_response("listing pins", "a body that is not a page", response.status, False)
        listed = [item for item in map(_remote_item, items) if item is not None]
        board = dict(parse_qsl(urlsplit(request.url).query)).get("board", "")
        return RemotePage(listed, None if after is None else self._page(board, after))

    def matches(self, record: Record, remote: RemoteItem) -> bool:
        if not isinstance(record, LinkRecord):
            return False
        return bool(remote.fields.get("position") == pin_body(record)["position"])

    def compares_all(self, record: Record) -> bool:
        return True  # a pin is its four fields, all in the listing


def _remote_item(item: Any) -> RemoteItem | None:
    if not isinstance(item, dict):
        return None
    board, note, label, ident = (item.get(k) for k in ("board", "note", "label", "id"))
    if not all(isinstance(v, str) for v in (board, note, label, ident)):
        return None
    key = link_key(str(board), str(note), str(label))
    return RemoteItem("link", key, str(ident), {"position": item.get("position")})


class NotesConnector(BaseConnector):
    name = "notes"
    # Pins are links: created one by one, deletable, and listable board by board.
    capabilities = Capabilities(kinds=LINKS, prune=LINKS, listing=LINKS)

    def __init__(self, options: NotesOptions | None = None) -> None:
        self.options = options or NotesOptions()
        self.lister = NotesLister(self.options.list_page_size)

    def stages(self, kind: Kind) -> Sequence[Stage]:
        return [PinStage()] if kind == "link" else []

    def delete_stages(self, kind: Kind) -> Sequence[Stage]:
        return [DeletePinStage()] if kind == "link" else []

    def refuse(self, record: AssetRecord | LinkRecord) -> str | None:
        return refuse(record) if isinstance(record, LinkRecord) else None

    def preflight_request(self) -> HttpRequest:
        return HttpRequest("GET", PINS, params={"limit": "1"})
