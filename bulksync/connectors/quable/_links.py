"""Quable links: v5 `POST /api/links` one by one, or v4 document links grouped per request.

v5 gives each link its own answer; v4 sends all the links of one (document, link type) in one
request with mode `update`, which adds them and leaves existing links alone, so sending a
link again is harmless. A changed v4 link needs the group sent again with mode `replace`
(`_v4links`). Each link still gets its own result line either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any
from urllib.parse import quote

from ...connector import ABSENT_ON_TARGET, BaseStage, Client, Done, Failed, Job, Outcome
from ...http import HttpRequest
from ...records import LinkRecord
from ...results import ErrorInfo
from ._errors import quable_error
from ._v4links import (
    BadListing,
    GroupLocks,
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


class V5LinkStage(BaseStage):
    """`POST /api/links` with `origin`, `target`, `linkType`, `sequence`, `attributes`."""

    name = "link"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        job = jobs[0]
        codes = _codes(job)
        if isinstance(codes, Failed):
            return [codes]
        record, origin, target = codes
        if job.state.get("exists") and job.remote_id and not job.state.get("old_link_deleted"):
            # Changed since its last push (a new sequence or attributes). v5 documents no PUT
            # for links, so the old link goes and the new one is created.
            await self._delete(client, job.remote_id, f"{origin} -> {target}")
            job.state["old_link_deleted"] = True
            job.state[ABSENT_ON_TARGET] = True  # until the new one is created
        if job.maybe_applied:
            # The last create may have happened with its answer lost: look before creating.
            existing = await find_link(client, origin, target, record.type)
            if existing is not None:
                action = "updated" if job.state.get("old_link_deleted") else "created"
                return [Done(remote_id=existing, extra={"action": action})]
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
                return [Done(remote_id=existing, extra={"action": "exists"})]
        if not response.ok:
            raise quable_error(response, f"link {origin} -> {target} ({record.type})")
        link_id = response.json().get("id") if response.body else None
        action = "updated" if job.state.get("old_link_deleted") else "created"
        return [Done(remote_id=None if link_id is None else str(link_id), extra={"action": action})]

    async def _delete(self, client: Client, link_id: str, what: str) -> None:
        response = await client.send(HttpRequest("DELETE", f"api/links/{quote(link_id, safe='')}"))
        if not response.ok and response.status != 404:  # gone already is what we want
            raise quable_error(response, f"replacing link {what}")


class V4LinkStage(BaseStage):
    """`POST /api_1.php/documents/{code}/links/{type}`, one request per group of links.

    New links go with mode `update` (one request, nothing read). A batch holding a link
    changed since its last push sends the group again with mode `replace`, since `update`
    leaves an existing link's sequence alone: the current links are listed first so the
    replace keeps them (see `_v4links`).
    """

    name = "link"
    grouped = True

    def __init__(self, batch_size: int = 200) -> None:
        self.batch_size = batch_size
        self._locks = GroupLocks()

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
        changed = any(job.state.get("exists") for job, _, _ in wanted)
        # Both paths take the group's lock: an update landing between a replace's listing
        # and its write would be undone by that replace.
        async with self._locks.hold((document, link_type)):
            if changed:
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
            (
                Done(extra={"action": "updated" if job.state.get("exists") else "linked"})
                for job, _, _ in wanted
            ),
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


async def find_link(client: Client, origin: str, target: str, link_type: str) -> str | None:
    params = {"origin.id": origin, "target.id": target, "linkType.id": link_type}
    response = await client.send(HttpRequest("GET", "api/links", params=params))
    if not response.ok:
        raise quable_error(response, f"lookup of link {origin} -> {target}")
    members = response.json().get("hydra:member") or []
    if not members or not isinstance(members[0], dict):
        return None
    found = members[0].get("id")
    return None if found is None else str(found)
