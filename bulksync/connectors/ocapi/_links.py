"""OCAPI category links (seed 003, CategoryLinks resource): one upserting ``PUT`` per link.

``PUT /catalogs/{catalog_id}/categories/{category_id}/category_links/{target_catalog_id}/
{target_category_id}/{type}`` "creates a category link using the information provided. If a
category link with the same unique identifier [exists], it will be updated with the new
position." Being an upsert, the same PUT is safe to send again after a lost answer: there is
nothing to look up first, unlike a create.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bulksync.spi import (
    BaseStage,
    Client,
    Done,
    ErrorInfo,
    Failed,
    HttpRequest,
    HttpResponse,
    Job,
    LinkRecord,
    Outcome,
    endpoint_text,
    json_object,
    path_segment,
    read_object,
)

from ._errors import CATEGORY_LINK_NOT_FOUND, RESOURCE_STATE_CONFLICT, ocapi_error, read_fault

# Seed 003: "type Enum {other, accessories, cross_selling, up_selling, spare_parts}".
LINK_TYPES = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
_ENDPOINT_KEYS = frozenset({"catalog", "category"})


@dataclass(frozen=True, slots=True)
class CategoryLink:
    """One link, checked and ready to send: the five path ids and the position."""

    catalog_id: str
    category_id: str
    target_catalog_id: str
    target_category_id: str
    type: str
    position: float | None

    def path_extension(self) -> str:
        """The resource path below the Data API base, each id URL-quoted as one segment."""
        ids = (
            self.catalog_id,
            self.category_id,
            self.target_catalog_id,
            self.target_category_id,
            self.type,
        )
        c, k, tc, tk, t = (path_segment(part) for part in ids)
        return f"catalogs/{c}/categories/{k}/category_links/{tc}/{tk}/{t}"

    def document(self, resource_state: str | None = None) -> dict[str, Any]:
        """The CategoryLink request document of seed 003's PUT sample.

        The sample also carries ``_v``, ``_type``, ``last_modified`` and the display names; the
        names and the date are server data we do not have, and ``_v`` must equal the URL's
        version (which is configurable), so only the ids, the type and the position are sent.
        """
        body: dict[str, Any] = {}
        if resource_state is not None:
            # REFERENCE.md: "send _resource_state (body) or x-dw-resource-state (header,
            # body-less requests)"; a PUT has a body.
            body["_resource_state"] = resource_state
        if self.position is not None:
            body["position"] = self.position
        body.update(
            source_catalog_id=self.catalog_id,
            source_category_id=self.category_id,
            target_catalog_id=self.target_catalog_id,
            target_category_id=self.target_category_id,
            type=self.type,
        )
        return body

    def describe(self) -> str:
        return (
            f"category link {self.catalog_id}/{self.category_id} -> "
            f"{self.target_catalog_id}/{self.target_category_id} ({self.type})"
        )


def category_link(job: Job) -> CategoryLink | Failed:
    """The link an input record asks for, or why it cannot be sent (no request is made)."""
    record = job.record
    if not isinstance(record, LinkRecord):
        return _invalid("the OCAPI connector carries category links only, not assets")
    source = _endpoint(record.from_, "from")
    if isinstance(source, Failed):
        return source
    target = _endpoint(record.to, "to")
    if isinstance(target, Failed):
        return target
    if record.type not in LINK_TYPES:
        return _invalid(
            f"link type '{record.type}' is not an OCAPI category link type "
            f"(one of: {', '.join(LINK_TYPES)})"
        )
    # OCAPI's position is a number (the samples show 1.0); the input's sequence fills it.
    if record.sequence is not None and record.sequence < 0:
        # The CategoryLink document gives position a minimum of 0: refused before any request.
        return _invalid(
            f"'sequence' must be 0 or more for an OCAPI category link "
            f"(its position has a minimum of 0), got {record.sequence}"
        )
    position = None if record.sequence is None else float(record.sequence)
    return CategoryLink(*source, *target, record.type, position)


def _endpoint(value: str | Mapping[str, Any], name: str) -> tuple[str, str] | Failed:
    if (
        isinstance(value, Mapping)
        and frozenset(value) == _ENDPOINT_KEYS
        and all(isinstance(value[key], str) and value[key] for key in _ENDPOINT_KEYS)
    ):
        return value["catalog"], value["category"]
    return _invalid(
        f'\'{name}\' must be an object {{"catalog": ..., "category": ...}} with non-empty '
        f"string ids for an OCAPI category link, got {endpoint_text(value)}"
    )


def _invalid(message: str) -> Failed:
    return Failed(ErrorInfo("InvalidInput", message))


def put_outcome(status: int, body: bytes, exists: bool | None = None) -> Done:
    """A successful PUT. The remote id is the link's own URL, the only identifier OCAPI gives it.

    The Data API spec lists only 200 for this PUT (only the HTML sample shows 201), so a 200
    says nothing about whether the link was there. 201 is the server's own word for created;
    otherwise ``exists`` is what was known before sending (True: the state or the --full
    listing has it; False: the --full listing lacks it; or what a re-read after a conflict
    found): True updated, False created, None (no evidence) upserted.
    """
    if status == 201 or exists is False:
        action = "created"
    elif exists:
        action = "updated"
    else:
        action = "upserted"
    return Done(remote_id=_link_url(body), action=action)


def known_existence(job: Job) -> bool | None:
    """What the engine learned before sending (``Job.exists``): True, False or unknown."""
    return job.exists


def _link_url(body: bytes) -> str | None:
    # Seed 003 answers the CategoryLink document. A body that is not one (a proxy's page, an
    # empty or cut answer) is no evidence the link was written: the PUT fails, retryable, and
    # being an upsert it is simply sent again.
    document = read_object(body, "PUT of the category link", write=True)
    link = document.get("link")
    return link if isinstance(link, str) else None


def is_conflict(status: int, body: bytes) -> bool:
    fault = read_fault(body)
    return status == 409 and fault is not None and fault.type == RESOURCE_STATE_CONFLICT


def put_request(
    data_path: str, link: CategoryLink, resource_state: str | None = None
) -> HttpRequest:
    url = f"{data_path}/{link.path_extension()}"
    return HttpRequest("PUT", url, json=link.document(resource_state))


async def resolve_conflict(client: Client, data_path: str, link: CategoryLink) -> Done:
    """After a 409 ResourceStateConflictException: re-read the link, then PUT once more with
    the state just read. A second conflict fails the item (raised, classified as an item
    error): someone else keeps changing that link and a blind loop would fight them."""
    current = await client.send(HttpRequest("GET", f"{data_path}/{link.path_extension()}"))
    state: str | None = None
    # The re-read is fresher evidence than anything known before the first PUT.
    exists = current.ok
    if current.ok:
        state = _resource_state(current)
    else:
        fault = read_fault(current.body)
        # Gone since: a plain upsert recreates it. Anything else is this item's error.
        if current.status != 404 or fault is None or fault.type != CATEGORY_LINK_NOT_FOUND:
            raise ocapi_error(current, f"re-read of {link.describe()}")
    response = await client.send(put_request(data_path, link, state))
    if not response.ok:
        raise ocapi_error(response, link.describe())
    return put_outcome(response.status, response.body, exists)


def _resource_state(response: HttpResponse) -> str | None:
    # Seed 003's samples carry the state in the x-dw-resource-state header; some documents
    # also hold it as _resource_state in the body.
    header = response.header("x-dw-resource-state")
    if header:
        return header
    document = json_object(response, "re-read of the category link", write=False)
    state = document.get("_resource_state")
    return state if isinstance(state, str) and state else None


class CategoryLinkStage(BaseStage):
    """One ``PUT`` per link, answered by its own status and fault document."""

    name = "link"

    def __init__(self, data_path: str) -> None:
        self._data_path = data_path

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        link = category_link(jobs[0])
        if isinstance(link, Failed):
            return [link]
        response = await client.send(put_request(self._data_path, link))
        if is_conflict(response.status, response.body):
            return [await resolve_conflict(client, self._data_path, link)]
        if not response.ok:
            raise ocapi_error(response, link.describe())
        json_object(response, link.describe(), write=True)  # no document, no evidence
        return [put_outcome(response.status, response.body, known_existence(jobs[0]))]
