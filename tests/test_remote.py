"""--full building blocks: the on-disk listing index, the paging loop, the judge, prune scope."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import anyio
import orjson
import pytest

from bulksync.app.prune import doomed_items, scope_size
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import EngineClient, Target
from bulksync.engine.listing import list_remote
from bulksync.engine.retry import RetryPolicy
from bulksync.spi._connector import RemoteItem, RemotePage, response_error
from bulksync.spi._errors import AuthError, FatalTargetError, TransportError
from bulksync.spi._http import HttpRequest, HttpResponse
from bulksync.spi._records import AssetRecord, Kind, LinkRecord, Origin, Record
from bulksync.store.remote import RemoteIndex
from bulksync.store.results import RunStats
from bulksync.store.state import StateStore, content_hash
from bulksync.store.verdict import Judge

BASE = "https://api.example.com"
FAST = RetryPolicy(max_attempts=4, max_elapsed_s=10.0, base_s=0.001, cap_s=0.002)


def item(key: str, seq: int = 1, kind: Kind = "link") -> RemoteItem:
    return RemoteItem(kind, key, f"id-{key}", {"sequence": seq})


def link(frm: str, to: str, seq: int | None = 1) -> LinkRecord:
    return LinkRecord(Origin("links.jsonl", 1), frm, to, "t", sequence=seq)


@pytest.fixture
def index(tmp_path: Path) -> Iterable[RemoteIndex]:
    idx = RemoteIndex(tmp_path)
    yield idx
    idx.close()


def test_index_keeps_items_by_kind_and_key_and_reports_unseen(index: RemoteIndex) -> None:
    index.add([item("a"), item("b", 2), item("c")])
    index.add([item("a", 9)])  # listed twice while pages shifted: the first copy stays
    index.add([RemoteItem("asset", "a", "A", {})])
    assert index.count("link") == 3 and index.count("asset") == 1
    found = index.lookup("link", "b")
    assert found is not None and found.remote_id == "id-b" and found.fields == {"sequence": 2}
    assert index.lookup("link", "a") == item("a")
    assert index.lookup("link", "zz") is None
    index.saw("link", "b")
    assert [i.key for i in index.unseen("link")] == ["a", "c"]
    assert [i.key for i in index.unseen("asset")] == ["a"]
    assert index.has("link", "c") and not index.has("asset", "c")


def test_index_directory_is_removed_on_close(tmp_path: Path) -> None:
    idx = RemoteIndex(tmp_path)
    idx.add([item("a")])
    assert any(tmp_path.iterdir())
    idx.close()
    assert not any(tmp_path.iterdir())


class PagedLister:
    """Pages are `page/N`; each holds two items; the last page has no next."""

    def __init__(self, pages: int, loop: bool = False) -> None:
        self.pages = pages
        self.loop = loop

    def listing_requests(self, kind: Kind, records: Iterable[Record]) -> Sequence[HttpRequest]:
        return [HttpRequest("GET", "page/1")]

    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        if not response.ok:
            raise response_error(response)
        number = int(request.url.rsplit("/", 1)[1])
        items = [item(key) for key in orjson.loads(response.body)]
        if self.loop:
            return RemotePage(items, HttpRequest("GET", "page/1"))
        last = number >= self.pages
        return RemotePage(items, None if last else HttpRequest("GET", f"page/{number + 1}"))

    def matches(self, record: Record, remote: RemoteItem) -> bool:
        return isinstance(record, LinkRecord) and remote.fields.get("sequence") == record.sequence

    def compares_all(self, record: Record) -> bool:
        return record.key != "a->partial:t"


class PageServer:
    def __init__(self, failures: dict[int, list[HttpResponse | Exception]] | None = None) -> None:
        self.failures = failures or {}
        self.sent: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request.url)
        await anyio.lowlevel.checkpoint()
        number = int(request.url.rsplit("/", 1)[1])
        queue = self.failures.get(number)
        if queue:
            reply = queue.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        body = orjson.dumps([f"k{number}a", f"k{number}b"])
        return HttpResponse(200, {"content-type": "application/json"}, body)

    async def aclose(self) -> None:
        return None


def client_for(server: PageServer) -> EngineClient:
    return EngineClient(Target(BASE, server, RateBudget(), NoAuth()), RunStats(), FAST)


async def _list(server: PageServer, lister: PagedLister, index: RemoteIndex) -> tuple[int, int]:
    return await list_remote(
        client_for(server), lister, "link", [HttpRequest("GET", "page/1")], index
    )


@pytest.mark.anyio
async def test_listing_follows_every_page_and_retries_a_transient_failure(
    index: RemoteIndex,
) -> None:
    server = PageServer(
        {
            2: [HttpResponse(503, {}, b"busy")],
            3: [TransportError("reset", maybe_applied=False)],
        }
    )
    pages, items = await _list(server, PagedLister(4), index)
    assert (pages, items) == (4, 8)
    assert index.count("link") == 8
    assert server.sent.count(f"{BASE}/page/2") == 2 and server.sent.count(f"{BASE}/page/3") == 2


@pytest.mark.anyio
async def test_a_refused_page_stops_the_run(index: RemoteIndex) -> None:
    server = PageServer({2: [HttpResponse(404, {}, b"no such page")]})
    with pytest.raises(FatalTargetError, match="listing links failed: no such page"):
        await _list(server, PagedLister(3), index)


@pytest.mark.anyio
async def test_a_refused_token_is_an_auth_error(index: RemoteIndex) -> None:
    server = PageServer({1: [HttpResponse(403, {}, b"")]})

    class Forbidden(PagedLister):
        def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
            if response.status == 403:
                from bulksync.spi._connector import RequestFailed
                from bulksync.spi._errors import ErrorClass, ErrorInfo

                raise RequestFailed(ErrorInfo("HTTP403", "forbidden", 403), ErrorClass.AUTH)
            return super().read_page(kind, request, response)

    with pytest.raises(AuthError):
        await _list(server, Forbidden(2), index)


@pytest.mark.anyio
async def test_a_listing_that_never_ends_is_stopped(index: RemoteIndex) -> None:
    with pytest.raises(FatalTargetError, match="loops"):
        await _list(PageServer(), PagedLister(3, loop=True), index)


class CursorServer(PageServer):
    """One URL, the page in the query (``?after=N``), as many APIs page."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        after = int((request.params or {}).get("after", "0"))
        self.sent.append(f"{request.url}?after={after}")
        await anyio.lowlevel.checkpoint()
        return HttpResponse(200, {"content-type": "application/json"}, orjson.dumps([after]))


class CursorLister(PagedLister):
    def read_page(self, kind: Kind, request: HttpRequest, response: HttpResponse) -> RemotePage:
        after = int((request.params or {}).get("after", "0"))
        items = [item(f"k{key}") for key in orjson.loads(response.body)]
        last = after + 1 >= self.pages
        return RemotePage(
            items, None if last else replace(request, params={"after": str(after + 1)})
        )


@pytest.mark.anyio
async def test_a_cursor_in_the_query_is_a_new_page_not_a_loop(index: RemoteIndex) -> None:
    server = CursorServer()
    pages, _ = await list_remote(
        client_for(server), CursorLister(4), "link", [HttpRequest("GET", "pins")], index
    )
    assert pages == 4
    assert [url.rsplit("/", 1)[1] for url in server.sent] == [f"pins?after={n}" for n in range(4)]


@pytest.mark.anyio
async def test_a_page_that_keeps_failing_gives_up(index: RemoteIndex) -> None:
    server = PageServer({1: [HttpResponse(503, {}, b"busy")] * 10})
    with pytest.raises(FatalTargetError, match="after 4 attempts"):
        await _list(server, PagedLister(1), index)


def test_judge_with_full_compares_with_the_listing_and_ignores_the_state(
    index: RemoteIndex, tmp_path: Path
) -> None:
    state = StateStore(tmp_path / "state.sqlite3", "t")
    same, moved, new = link("a", "b", 1), link("a", "c", 5), link("a", "d", 1)
    # The state claims `new` was pushed unchanged: --full must not believe it.
    state.confirm("link", new.key, content_hash(new), "old")
    index.add([item(same.key, 1), item(moved.key, 2)])
    judge = Judge(state, index, PagedLister(1), full=True)
    verdicts = [judge.judge(r) for r in (same, moved, new)]
    assert [v.action for v in verdicts] == ["skip", "update", "create"]
    assert verdicts[1].remote_id == f"id-{moved.key}"
    assert [i.key for i in index.unseen("link")] == []
    state.close()


def test_judge_with_full_pushes_an_item_whose_comparison_crashes(index: RemoteIndex) -> None:
    class Broken(PagedLister):
        def matches(self, record: Record, remote: RemoteItem) -> bool:
            raise KeyError("sequence")

    record = link("a", "b")
    index.add([item(record.key)])
    assert Judge(None, index, Broken(1), full=True).judge(record).action == "update"


def test_judge_without_full_reads_the_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite3", "t")
    asset = AssetRecord(Origin("a.jsonl", 1), "A1", remote_path="https://x/a.png")
    judge = Judge(state)
    assert judge.judge(asset).action == "create"
    state.confirm("asset", "A1", content_hash(asset), "A1")
    assert judge.judge(asset).action == "skip"
    changed = AssetRecord(Origin("a.jsonl", 1), "A1", remote_path="https://x/b.png")
    verdict = judge.judge(changed)
    assert (verdict.action, verdict.remote_id) == ("update", "A1")
    state.close()


def test_prune_scope_is_the_state_and_the_listing_together(
    index: RemoteIndex, tmp_path: Path
) -> None:
    state = StateStore(tmp_path / "state.sqlite3", "t")
    for key in ("kept", "gone-both", "gone-state"):
        state.confirm("link", key, "h", f"state-{key}")
    index.add([item("kept"), item("gone-both"), item("gone-remote")])
    state.saw("link", "kept")
    index.saw("link", "kept")
    doomed = doomed_items("link", state, index)
    assert [(r.key, r.remote_id, r.origin.path) for r in doomed] == [
        ("gone-both", "id-gone-both", "target"),  # the listing's id is the current one
        ("gone-remote", "id-gone-remote", "target"),
        ("gone-state", "state-gone-state", "state"),
    ]
    assert scope_size("link", state, index) == 4
    assert scope_size("link", state, None) == 3
    assert [r.key for r in doomed_items("link", state, None)] == ["gone-both", "gone-state"]
    state.close()


def test_prune_keeps_the_state_id_when_the_listing_gave_none(
    index: RemoteIndex, tmp_path: Path
) -> None:
    state = StateStore(tmp_path / "state.sqlite3", "t")
    state.confirm("link", "k", "h", "state-id")
    index.add([RemoteItem("link", "k", None, {})])
    assert [(r.key, r.remote_id) for r in doomed_items("link", state, index)] == [("k", "state-id")]
    state.close()


@pytest.mark.anyio
async def test_listing_retries_count_in_the_run_stats_like_an_items(index: RemoteIndex) -> None:
    server = PageServer(
        {
            1: [HttpResponse(429, {"retry-after": "0"}, b"slow down")],
            2: [HttpResponse(503, {}, b"busy"), TransportError("reset", maybe_applied=False)],
        }
    )
    stats = RunStats()
    client = EngineClient(Target(BASE, server, RateBudget(), NoAuth()), stats, FAST)
    pages, _ = await list_remote(
        client, PagedLister(3), "link", [HttpRequest("GET", "page/1")], index
    )
    assert pages == 3
    # One request per page plus one per retry, and each retry counted once.
    assert stats.requests == 6
    assert stats.retries == 3
    assert stats.throttled == 1
