"""Quable v4 document links as whole groups: list a group, then set it with mode `replace`.

v4 `mode: update` only adds links: an existing link keeps its sequence (seed 000: "If one or
both of these links already exists, nothing is changed"). The only documented way to move or
remove a v4 link is `mode: replace`, which makes the links of one (document, link type)
exactly the items sent, so it is a read-modify-write of the whole group: list the group with
the documented v5 filters, change what this batch changes, send the result back.

A read-modify-write computed from a stale read would undo another batch's work (drop a link
it just added), and the engine may run several batches of one group at once. So each stage
declares ``serial_groups``: the engine then runs one batch per group at a time.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from bulksync.spi import (
    BaseStage,
    Client,
    Done,
    ErrorInfo,
    Failed,
    HttpRequest,
    Job,
    Outcome,
    Removal,
    json_object,
    json_or_empty,
    link_key,
    path_segment,
)

from ._errors import quable_error
from ._listing import relation_id

PAGE_SIZE = 100  # API Platform's usual maximum; a larger limit would be clamped anyway
# 1,000 pages of 100 links: far past any real group, and a stop for a listing that never ends.
MAX_PAGES = 1000


class BadListing(Exception):
    """The group listing could not be read or trusted: no replace may be computed from it."""


def fill_gaps(decided: Sequence[Outcome | None], rest: Iterable[Outcome]) -> list[Outcome]:
    """The outcomes decided before the request, with the next of ``rest`` in each gap."""
    remaining = iter(rest)
    return [outcome if outcome is not None else next(remaining) for outcome in decided]


def group_path(document: str, link_type: str) -> str:
    return f"api_1.php/documents/{path_segment(document)}/links/{path_segment(link_type)}"


def ordered_items(links: Mapping[str, int]) -> list[dict[str, Any]]:
    """{target: sequence} as v4 items, in sequence order (stable for equal sequences)."""
    ordered = sorted(links.items(), key=lambda pair: pair[1])
    return [{"target_code": target, "sequence": sequence} for target, sequence in ordered]


async def post_group(
    client: Client, document: str, link_type: str, mode: str, items: list[dict[str, Any]]
) -> None:
    """`POST api_1.php/documents/{doc}/links/{type}` with `mode` and `items`; errors raise.

    `update` adds links (re-adding one changes nothing) and `replace` sets the whole group,
    so repeating either after an ambiguous answer is safe. The success body is not
    documented: nothing is read from it, but an answer that is not JSON at all is not taken
    as the API's.
    """
    what = f"links of document {document} ({link_type})"
    body = {"mode": mode, "items": items}
    response = await client.send(HttpRequest("POST", group_path(document, link_type), json=body))
    if not response.ok:
        raise quable_error(response, what, write=True)
    json_or_empty(response, what, write=True)


async def group_links(client: Client, document: str, link_type: str) -> dict[str, int]:
    """The current links of one group as {target code: sequence}, every page of it.

    `GET api/links?origin.id=&linkType.id=` (the documented v5 filters), following
    `hydra:next` (a relative path). HTTP errors raise a classified RequestFailed (the engine
    retries what can be retried); an unreadable or endless listing raises :class:`BadListing`.
    """
    what = f"links of document {document} ({link_type})"
    params = {"origin.id": document, "linkType.id": link_type, "limit": str(PAGE_SIZE)}
    request = HttpRequest("GET", "api/links", params=params)
    links: dict[str, int] = {}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        response = await client.send(request)
        if not response.ok:
            raise quable_error(response, f"listing of {what}")
        # An unreadable page is retried like a failed request; a readable one of the wrong
        # shape is not a listing this group's replace can be built from.
        body = json_object(response, f"listing of {what}", write=False)
        if not isinstance(body.get("hydra:member", []), list):
            raise BadListing(f"listing of {what}: the answer is not a hydra collection")
        for member in body.get("hydra:member") or []:
            target, sequence = _read_member(member, document, link_type, what)
            links.setdefault(target, sequence)
        view = body.get("hydra:view")
        following = view.get("hydra:next") if isinstance(view, dict) else None
        if not following:
            return links
        if not isinstance(following, str) or following in seen:
            # A server that sends the same next page again would loop for ever.
            raise BadListing(f"listing of {what}: hydra:next repeats {following!r}")
        seen.add(following)
        request = HttpRequest("GET", following)
    raise BadListing(f"listing of {what}: more than {MAX_PAGES} pages of {PAGE_SIZE}")


def _read_member(member: Any, document: str, link_type: str, what: str) -> tuple[str, int]:
    if not isinstance(member, dict):
        raise BadListing(f"listing of {what}: a member is not an object")
    # A server that ignored the filters would list other groups' links, and a replace built
    # from that listing would copy them into this group: refuse rather than guess.
    origin, kind = relation_id(member.get("origin")), relation_id(member.get("linkType"))
    if (origin is not None and origin != document) or (kind is not None and kind != link_type):
        raise BadListing(f"listing of {what}: it holds a link of {origin} ({kind})")
    target = relation_id(member.get("target"))
    if target is None:
        raise BadListing(f"listing of {what}: a link has no target")
    sequence = member.get("sequence")
    # v4 items need an integer: a link listed without one is sent back at 0, where v5 puts it.
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        sequence = 0
    return target, sequence


def parse_key(key: str) -> tuple[str, str, str] | None:
    """`from->to:type` back into its codes, only when that reading is unambiguous."""
    ends, _, link_type = key.rpartition(":")
    origin, _, target = ends.partition("->")
    if not (origin and target and link_type) or link_key(origin, target, link_type) != key:
        return None
    if "->" in target or ":" in origin + target:
        return None
    return origin, target, link_type


class V4PruneStage(BaseStage):
    """Prune of v4 links, one replace per group: the group's links minus the doomed ones.

    v4 gives links no id to delete; the documented delete is `mode: replace` with what should
    remain (an empty `items` when nothing should). Links in the group that no run pushed are
    listed and sent back, so they stay.
    """

    name = "delete"
    grouped = True
    serial_groups = True  # a replace computed from a stale listing would undo a write

    def __init__(self, batch_size: int = 200) -> None:
        self.batch_size = batch_size

    def group_key(self, job: Job) -> Hashable:
        record = job.record
        assert isinstance(record, Removal)
        parts = parse_key(record.key)
        # An unreadable key is a group of its own, failed alone by `run`.
        return ("invalid", record.key) if parts is None else (parts[0], parts[2])

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = []
        doomed: list[str] = []
        document = link_type = ""
        for job in jobs:
            record = job.record
            assert isinstance(record, Removal)
            parts = parse_key(record.key)
            if parts is None:
                message = f"cannot read the link's codes back from its key {record.key!r}"
                outcomes.append(Failed(ErrorInfo("InvalidKey", message)))
                continue
            document, target, link_type = parts
            doomed.append(target)
            outcomes.append(None)
        if not doomed:
            return [outcome or Done() for outcome in outcomes]
        try:
            current = await group_links(client, document, link_type)
        except BadListing as exc:
            failed = Failed(ErrorInfo("BadListing", str(exc)))
            return [outcome or failed for outcome in outcomes]
        present = set(doomed) & current.keys()
        if present:  # nothing of ours is left in the group: no write at all
            remaining = {t: s for t, s in current.items() if t not in present}
            await post_group(client, document, link_type, "replace", ordered_items(remaining))
        return fill_gaps(
            outcomes,
            (Done(action="deleted" if t in present else "gone") for t in doomed),
        )
