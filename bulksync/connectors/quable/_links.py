"""Quable links: v5 `POST /api/links` one by one, or v4 document links grouped per request.

v5 gives each link its own answer; v4 sends all the links of one (document, link type) in one
request with mode `update`, which adds them and leaves existing links alone, so sending a
link again is harmless. Each link still gets its own result line either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any
from urllib.parse import quote

from ...connector import BaseStage, Client, Done, Failed, Job, Outcome
from ...http import HttpRequest
from ...records import LinkRecord, Removal, link_key
from ...results import ErrorInfo
from ._errors import quable_error


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
        elif job.maybe_applied:
            # The last create may have happened with its answer lost: look before creating.
            existing = await find_link(client, origin, target, record.type)
            if existing is not None:
                return [Done(remote_id=existing, extra={"action": "created"})]
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
    """`POST /api_1.php/documents/{code}/links/{type}` with mode update, one per group."""

    name = "link"
    grouped = True

    def __init__(self, batch_size: int = 200) -> None:
        self.batch_size = batch_size

    def group_key(self, job: Job) -> Hashable:
        record = job.record
        assert isinstance(record, LinkRecord)
        return (str(record.from_), record.type)

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = []
        items: list[dict[str, Any]] = []
        document = link_type = ""
        for job in jobs:
            codes = _codes(job)
            if isinstance(codes, Failed):
                outcomes.append(codes)
                continue
            record, document, target = codes
            link_type = record.type
            sequence = record.sequence if record.sequence is not None else len(items) + 1
            items.append({"target_code": target, "sequence": sequence})
            outcomes.append(None)
        if items:
            path = (
                f"api_1.php/documents/{quote(document, safe='')}/links/{quote(link_type, safe='')}"
            )
            body = {"mode": "update", "items": items}
            response = await client.send(HttpRequest("POST", path, json=body))
            if not response.ok:
                raise quable_error(response, f"links of document {document} ({link_type})")
        return [outcome or Done(extra={"action": "linked"}) for outcome in outcomes]


class LookupDeleteStage(BaseStage):
    """Prune of links pushed through v4, which gives them no id: look each one up with the
    documented v5 filters, then `DELETE /api/links/{id}` (gone already is done)."""

    name = "delete"

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        record = jobs[0].record
        assert isinstance(record, Removal)
        parts = _parse_key(record.key)
        if parts is None:
            message = f"cannot read the link's codes back from its key {record.key!r}"
            return [Failed(ErrorInfo("InvalidKey", message))]
        origin, target, link_type = parts
        link_id = await find_link(client, origin, target, link_type)
        if link_id is None:
            return [Done(extra={"action": "gone"})]
        response = await client.send(HttpRequest("DELETE", f"api/links/{quote(link_id, safe='')}"))
        if not response.ok and response.status != 404:
            raise quable_error(response, f"delete of link {origin} -> {target}")
        return [Done(remote_id=link_id, extra={"action": "deleted"})]


def _parse_key(key: str) -> tuple[str, str, str] | None:
    """`from->to:type` back into its codes, only when that reading is unambiguous."""
    ends, _, link_type = key.rpartition(":")
    origin, _, target = ends.partition("->")
    if not (origin and target and link_type) or link_key(origin, target, link_type) != key:
        return None
    if "->" in target or ":" in origin + target:
        return None
    return origin, target, link_type


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
