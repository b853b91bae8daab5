"""`POST /links/bulk/{id|sourceId}`: up to a chunk of links per call, one result per link.

Propeller answers 200 even when items fail, so every `data[]` entry is read and mapped back
to its input line (checked by its `from`, `to` and any echoed `type`, not by position alone). A
whole-chunk 400 `SchemaValidationException` names the bad items (`#/links/3/type`): those fail
and the rest of the chunk is sent again without them.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
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
    RequestFailed,
    bad_response,
    json_object,
)

from ._errors import envelope, propeller_error

LINK_TYPES = frozenset(
    {
        "accessories",
        "accessoryfor",
        "related",
        "relatedfor",
        "alternatives",
        "options",
        "parts",
        "partfor",
        "account",
    }
)
# The one subtype the docs give `account` links (a user or a contact that manages a company).
# Which classes a type may join is left to Propeller: the bulk page's own example sends a
# customer -> company link and gets a per-item error back.
ACCOUNT_SUBTYPE = "manage"
_ITEM_PATH = re.compile(r"#/links/(\d+)\b")


def lookup_key(endpoint: Any) -> str | None:
    """`id` for `{class, id}`, `sourceId` for `{class, source, sourceId[, language]}`."""
    if not isinstance(endpoint, Mapping) or not isinstance(endpoint.get("class"), str):
        return None
    if set(endpoint) == {"class", "id"}:
        return "id"
    if (
        {"class", "source", "sourceId"}
        <= set(endpoint)
        <= {"class", "source", "sourceId", "language"}
    ):
        return "sourceId"
    return None


def _same(a: Any, b: Any) -> bool:
    """Endpoints compared as Propeller echoes them (ids may come back as numbers or text)."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping) or set(a) != set(b):
        return False
    return all(str(a[key]) == str(b[key]) for key in a)


def subtype_of(record: LinkRecord, default_subtype: str | None) -> str | None:
    subtype = record.extra.get("subtype")
    if isinstance(subtype, str):
        return subtype
    # The configured default is meant for product links; an account link has one subtype.
    return ACCOUNT_SUBTYPE if record.type == "account" else default_subtype


def link_refusal(record: LinkRecord, default_subtype: str | None) -> str | None:
    """Why Propeller cannot take this link whatever it answers (the connector's ``refuse``,
    so runs and dry runs find it at read time; the stage checks again before sending)."""
    key = lookup_key(record.from_)
    if key is None or lookup_key(record.to) != key:
        return (
            "Propeller links need 'from' and 'to' as {class, id} or "
            "{class, source, sourceId[, language]}, both of the same kind"
        )
    if record.type not in LINK_TYPES:
        return f"type '{record.type}' is not one of {', '.join(sorted(LINK_TYPES))}"
    if subtype_of(record, default_subtype) is None:
        return "Propeller requires a 'subtype' (or set [propeller] subtype)"
    return None


class BulkLinkStage(BaseStage):
    name = "link"
    grouped = True  # one lookup key per call: links are grouped by theirs

    def __init__(self, chunk: int = 100, default_subtype: str | None = None) -> None:
        self.batch_size = chunk
        self._default_subtype = default_subtype

    def group_key(self, job: Job) -> Hashable:
        record = job.record
        assert isinstance(record, LinkRecord)
        return lookup_key(record.from_)

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = [self._check(job) for job in jobs]
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        while pending:
            key = lookup_key(jobs[pending[0]].record.from_)  # type: ignore[union-attr]
            payload = {"links": [self._link(jobs[i]) for i in pending]}
            response = await client.send(HttpRequest("POST", f"links/bulk/{key}", json=payload))
            if response.status == 400:
                failure = envelope(response)
                bad = _named_items(failure.messages, len(pending)) if failure.code == 10007 else {}
                if bad and len(bad) < len(pending):
                    for index, message in bad.items():
                        error = ErrorInfo("SchemaValidationException", message, 400)
                        outcomes[pending[index]] = Failed(
                            error, extra=self._fields(jobs[pending[index]], key)
                        )
                    pending = [p for n, p in enumerate(pending) if n not in bad]
                    continue  # the rest of the chunk, without the items the server named
            if not response.ok:
                raise propeller_error(response)
            try:
                body = bulk_answer(response, len(pending))
            except RequestFailed as exc:
                # The bulk is an upsert: links whose answer cannot be read are sent again.
                for index in pending:
                    fields = self._fields(jobs[index], key)
                    outcomes[index] = Failed(
                        exc.error, retryable=True, extra=fields, maybe_applied=True
                    )
                break
            self._read_results(body, jobs, pending, outcomes, key or "")
            pending = []
        return [outcome or Done() for outcome in outcomes]

    def _check(self, job: Job) -> Failed | None:
        record = job.record
        assert isinstance(record, LinkRecord)
        reason = link_refusal(record, self._default_subtype)
        return None if reason is None else _invalid(reason)

    def _subtype(self, record: LinkRecord) -> str | None:
        return subtype_of(record, self._default_subtype)

    def _link(self, job: Job) -> dict[str, Any]:
        record = job.record
        assert isinstance(record, LinkRecord)
        link: dict[str, Any] = {
            "type": record.type,
            "subtype": self._subtype(record),
            "from": _plain(record.from_),
            "to": _plain(record.to),
        }
        for name in ("isDefault", "isActive", "priority"):
            if record.extra.get(name) is not None:
                link[name] = record.extra[name]
        return link

    def _fields(
        self, job: Job, key: str | None, entry: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The seed's per-item fields, for the result line."""
        record = job.record
        assert isinstance(record, LinkRecord)
        fields: dict[str, Any] = {
            "from": _plain(record.from_),
            "to": _plain(record.to),
            "lookupKey": key,
        }
        if entry is not None and entry.get("id") is not None:
            fields["id"] = entry["id"]
        return fields

    def _read_results(
        self,
        body: Any,
        jobs: Sequence[Job],
        pending: list[int],
        outcomes: list[Outcome | None],
        key: str,
    ) -> None:
        entries = body.get("data") if isinstance(body, dict) else None
        entries = entries if isinstance(entries, list) else []
        unmatched = list(pending)
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            index = self._match(entry, jobs, unmatched, position, pending)
            if index is None:
                continue
            unmatched.remove(index)
            fields = self._fields(jobs[index], key, entry)
            if entry.get("success") is True:
                remote = entry.get("id")
                outcomes[index] = Done(
                    remote_id=None if remote is None else str(remote), extra=fields
                )
            else:
                message = str(entry.get("error") or "the link was not saved")
                outcomes[index] = Failed(ErrorInfo("LinkFailed", message, 200), extra=fields)
        for index in unmatched:
            error = ErrorInfo("MissingResult", "the bulk answer has no entry for this link")
            outcomes[index] = Failed(error, retryable=True, extra=self._fields(jobs[index], key))

    def _match(
        self,
        entry: Mapping[str, Any],
        jobs: Sequence[Job],
        unmatched: list[int],
        position: int,
        pending: list[int],
    ) -> int | None:
        def fits(index: int) -> bool:
            record = jobs[index].record
            assert isinstance(record, LinkRecord)
            # The seed's entries carry no `type`; when a server adds one, it tells apart two
            # links of the same pair.
            kind = entry.get("type")
            same_type = kind is None or kind == record.type
            return (
                same_type
                and _same(entry.get("from"), record.from_)
                and _same(entry.get("to"), record.to)
            )

        # Entries come back in request order; the check guards against an answer that is not.
        if position < len(pending) and pending[position] in unmatched and fits(pending[position]):
            return pending[position]
        return next((index for index in unmatched if fits(index)), None)


def bulk_answer(response: HttpResponse, count: int) -> dict[str, Any]:
    """The documented `{"data": [...]}` of a 2xx bulk answer; raises a retryable failure for
    anything else, which says nothing about which links were saved."""
    what = f"bulk of {count} links"
    body = json_object(response, what, write=True)
    if not isinstance(body.get("data"), list):
        raise bad_response(what, "no data list in its body", response.status, write=True)
    return body


def _named_items(messages: list[str], count: int) -> dict[int, str]:
    named: dict[int, str] = {}
    for message in messages:
        for match in _ITEM_PATH.finditer(message):
            index = int(match.group(1))
            if index < count:
                named[index] = f"{named[index]}; {message}" if index in named else message
    return named


def _plain(endpoint: Any) -> Any:
    return dict(endpoint) if isinstance(endpoint, Mapping) else endpoint


def _invalid(message: str) -> Failed:
    return Failed(ErrorInfo("InvalidInput", message))
