"""Quable links: v5 `POST /api/links` one by one, or v4 document links grouped per request.

v5 gives each link its own answer; v4 sends all the links of one (document, link type) in one
request with mode `update`, which adds them and leaves existing links alone, so sending a
link again is harmless. A changed v4 link needs the group sent again with mode `replace`
(`_v4links`). Each link still gets its own result line either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from bulksync.spi import (
    BaseStage,
    Client,
    Done,
    ErrorClass,
    ErrorInfo,
    Failed,
    HttpRequest,
    HttpResponse,
    Job,
    LinkRecord,
    Outcome,
    Removal,
    RequestFailed,
    bad_response,
    json_object,
    path_segment,
)

from ._errors import quable_error
from ._listing import relation_id
from ._v4links import (
    BadListing,
    fill_gaps,
    group_links,
    ordered_items,
    post_group,
)


def _codes(job: Job) -> tuple[LinkRecord, str, str] | Failed:
    record = job.record
    assert isinstance(record, LinkRecord)
    if not isinstance(record.from_, str) or not isinstance(record.to, str):
        message = "Quable links take document or asset codes as 'from' and 'to', not objects"
        return Failed(ErrorInfo("InvalidInput", message))
    return record, record.from_, record.to


@dataclass(slots=True)
class _Replacement:
    """A changed v5 link's progress, kept across attempts: once its old version is deleted a
    retry must not delete again (it would find the new one), and its success is an update."""

    old_deleted: bool = False


class V5LinkStage(BaseStage):
    """`POST /api/links` with `origin`, `target`, `linkType`, `sequence`, `attributes`."""

    name = "link"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        codes = _codes(job)
        if isinstance(codes, Failed):
            return [codes]
        record, origin, target = codes
        replacement = job.step(_Replacement)
        if job.exists and not replacement.old_deleted:
            # Changed since its last push (a new sequence or attributes). v5 documents no PUT
            # for links, so the old link goes and the new one is created. Its id is the one
            # kept from its create, or found by the filters (a create may answer no id).
            old_id = job.remote_id or await find_link(client, origin, target, record.type)
            if old_id is not None:
                await self._delete(client, old_id, f"{origin} -> {target}")
            replacement.old_deleted = True
            job.absent_on_target = True  # until the new one is created
        if job.maybe_applied:
            # The last create may have happened with its answer lost: look before creating.
            existing = await find_link(client, origin, target, record.type)
            if existing is not None:
                action = "updated" if replacement.old_deleted else "created"
                return [Done(remote_id=existing, action=action)]
        body: dict[str, Any] = {
            "origin": {"id": origin},
            "target": {"id": target},
            "linkType": {"id": record.type},
            "attributes": dict(record.attributes) if record.attributes else [],
        }
        if record.sequence is not None:
            body["sequence"] = record.sequence
        response = await client.send(HttpRequest("POST", "api/links", json=body))
        if response.status == 409:
            # Linked already (a rerun): that is the state we want, not an error.
            existing = await find_link(client, origin, target, record.type)
            if existing is not None:
                return [Done(remote_id=existing, action="exists")]
        what = f"link {origin} -> {target} ({record.type})"
        if not response.ok:
            raise quable_error(response, what, write=True)
        link_id = _created_id(response, what)
        action = "updated" if replacement.old_deleted else "created"
        return [Done(remote_id=link_id, action=action)]

    async def _delete(self, client: Client, link_id: str, what: str) -> None:
        response = await client.send(HttpRequest("DELETE", f"api/links/{path_segment(link_id)}"))
        if not response.ok and response.status != 404:  # gone already is what we want
            raise quable_error(response, f"replacing link {what}", write=True)


class V4LinkStage(BaseStage):
    """`POST /api_1.php/documents/{code}/links/{type}`, one request per group of links.

    New links go with mode `update` (one request, nothing read). A batch holding a link
    changed since its last push sends the group again with mode `replace`, since `update`
    leaves an existing link's sequence alone: the current links are listed first so the
    replace keeps them (see `_v4links`).
    """

    name = "link"
    grouped = True
    # Both paths need it: an update landing between a replace's listing and its write would
    # be undone by that replace.
    serial_groups = True

    def __init__(self, batch_size: int = 200) -> None:
        self.batch_size = batch_size

    def group_key(self, job: Job) -> Hashable:
        record = job.record
        assert isinstance(record, LinkRecord)
        return (str(record.from_), record.type)

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = []
        wanted: list[tuple[Job, str, int | None]] = []
        document = link_type = ""
        for job in jobs:
            codes = _codes(job)
            if isinstance(codes, Failed):
                outcomes.append(codes)
                continue
            record, document, target = codes
            link_type = record.type
            wanted.append((job, target, record.sequence))
            outcomes.append(None)
        if not wanted:
            return [outcome or Done() for outcome in outcomes]
        if any(job.exists for job, _, _ in wanted):
            try:
                await self._replace(client, document, link_type, wanted)
            except BadListing as exc:
                failed = Failed(ErrorInfo("BadListing", str(exc)))
                return [outcome or failed for outcome in outcomes]
        else:
            items: list[dict[str, Any]] = []
            for _, target, sequence in wanted:
                place = sequence if sequence is not None else len(items) + 1
                items.append({"target_code": target, "sequence": place})
            await post_group(client, document, link_type, "update", items)
        return fill_gaps(
            outcomes,
            (Done(action="updated" if job.exists else "linked") for job, _, _ in wanted),
        )

    async def _replace(
        self,
        client: Client,
        document: str,
        link_type: str,
        wanted: Sequence[tuple[Job, str, int | None]],
    ) -> None:
        """The group as it is, with this batch's links laid over it, sent as the whole group."""
        links = await group_links(client, document, link_type)
        for _, target, sequence in wanted:
            if sequence is not None:
                links[target] = sequence
            elif target not in links:  # no sequence asked: a linked one keeps its place
                links[target] = max(links.values(), default=0) + 1
        await post_group(client, document, link_type, "replace", ordered_items(links))


async def find_removed_link(client: Client, removal: Removal) -> str | None:
    """The id of a link to prune whose create answered none, found by its filters. The key
    must split one way only (``from->to:type``): a wrong split would find nothing, and prune
    would call a link it never deleted gone."""
    head, colon, link_type = removal.key.rpartition(":")
    origin, arrow, target = head.partition("->")
    if not (colon and arrow and origin and target and link_type):
        raise _unsplittable(removal.key)
    if removal.key.count(":") != 1 or head.count("->") != 1:
        raise _unsplittable(removal.key)
    return await find_link(client, origin, target, link_type)


def _unsplittable(key: str) -> RequestFailed:
    message = f"no remote id was recorded for link {key}, and its key is ambiguous to look up"
    return RequestFailed(ErrorInfo("NoRemoteId", message), ErrorClass.ITEM)


async def find_link(client: Client, origin: str, target: str, link_type: str) -> str | None:
    """The id of the v5 link origin -> target of that type, ``None`` when there is none.

    "None" decides that a create is sent, so it is only answered from a readable collection
    whose members match the filters: an unreadable answer, or one listing other links (a
    server that ignored a filter), says nothing about this link and raises instead.
    """
    what = f"lookup of link {origin} -> {target} ({link_type})"
    params = {"origin.id": origin, "target.id": target, "linkType.id": link_type}
    response = await client.send(HttpRequest("GET", "api/links", params=params))
    if not response.ok:
        raise quable_error(response, what)
    members = json_object(response, what, write=False).get("hydra:member")
    if not isinstance(members, list):
        raise bad_response(what, "no hydra:member list", response.status, write=False)
    for member in members:
        if isinstance(member, dict) and _is_link(member, origin, target, link_type):
            found = _ident(member.get("id")) or relation_id(member.get("@id"))
            if found is not None:
                return found
    if members:
        message = f"{what}: the answer lists other links; the filters were not applied"
        raise RequestFailed(ErrorInfo("BadLookup", message, response.status), ErrorClass.ITEM)
    return None


def _is_link(member: dict[str, Any], origin: str, target: str, link_type: str) -> bool:
    """Whether a listed member is that link; a relation the answer leaves out is not held
    against it (the docs do not say which fields a collection embeds)."""
    wanted = (("origin", origin), ("target", target), ("linkType", link_type))
    return all(
        (listed := relation_id(member.get(name))) is None or listed == value
        for name, value in wanted
    )


def _created_id(response: HttpResponse, what: str) -> str | None:
    """The new link's id, when its answer gives one; raises when the answer proves nothing.

    The docs promise only "a 201 created code" and show no body: that status is the evidence,
    and the link has no id to keep (prune finds it by its filters). Any other answer must be
    the link itself: an empty 200, a proxy's page or a cut-off body is no evidence of a link,
    and since the POST may have created one all the same, the next attempt looks it up.
    """
    if response.status == 201 and not response.body.strip():
        return None
    return _ident(json_object(response, what, write=True).get("id"))


def _ident(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)
