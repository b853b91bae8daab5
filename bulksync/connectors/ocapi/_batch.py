"""Category links through the OCAPI batch API: up to 50 PUTs in one ``POST /s/-/dw/batch``.

REFERENCE.md (OCAPI): "Batch API: POST /s/-/dw/batch, multipart/mixed, at most 50 sub-requests
and a body of at most 5 MB; each part has x-dw-content-id, x-dw-resource-path-extension, optional
x-dw-http-method; the response is 200 multipart with x-dw-status-code per part. Match parts by
content id." A 200 says only that the batch was read: every part is read for its own status and
fault document, and a part the answer lacks is retried rather than assumed done.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from bulksync.spi import (
    BaseStage,
    Client,
    ErrorClass,
    ErrorInfo,
    Failed,
    HttpRequest,
    HttpResponse,
    Job,
    Outcome,
    RequestFailed,
    bad_response,
    excerpt,
    parse_retry_after,
    read_object,
)

from ._errors import as_failed, classify, error_info, ocapi_error
from ._links import (
    CategoryLink,
    category_link,
    is_conflict,
    known_existence,
    put_outcome,
    resolve_conflict,
)

MAX_PARTS = 50  # REFERENCE.md: "at most 50 sub-requests" per batch
# REFERENCE.md: "a body of at most 5 MB" (over it: 400 QuotaExceededException). Read as 10^6
# bytes, the smaller of the two readings, so either one holds.
MAX_BODY_BYTES = 5_000_000
_BOUNDARY_PREFIX = "bulksync-"
_BOUNDARY_LEN = len(_BOUNDARY_PREFIX) + 32  # token_hex(16)
_CLOSE_LEN = len(f"--{'x' * _BOUNDARY_LEN}--\r\n")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart body: lower-cased headers and the raw content."""

    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Ready:
    """A link checked and sized for a batch, with what was known of it before sending."""

    index: int
    link: CategoryLink
    exists: bool | None
    payload: bytes

    @property
    def content_id(self) -> str:
        # Unique within the batch; an answer is matched to its link by this id, never by order.
        return f"link-{self.index}"


class BatchLinkStage(BaseStage):
    """All links share one group, so the engine hands over full batches of ``batch_size``
    (1,000 links make 20 requests of 50) and only the input's tail makes a smaller one."""

    name = "link"
    grouped = True

    def __init__(
        self,
        data_path: str,
        batch_path: str,
        batch_size: int = MAX_PARTS,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._data_path = data_path
        self._batch_path = batch_path
        self.batch_size = batch_size
        self._max_body_bytes = max_body_bytes

    def group_key(self, job: Job) -> Hashable:
        return "category_links"  # any links may share a batch: each part names its resource

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = []
        ready: list[_Ready] = []
        for index, job in enumerate(jobs):
            link = category_link(job)
            if isinstance(link, Failed):
                outcomes.append(link)  # refused here: it never costs a part
                continue
            item = _Ready(index, link, known_existence(job), orjson.dumps(link.document()))
            size = part_size(item.content_id, link, item.payload)
            if size + _CLOSE_LEN > self._max_body_bytes:
                outcomes.append(self._too_large(link, size))
                continue
            outcomes.append(None)
            ready.append(item)
        chunks = self._chunks(ready)
        for chunk in chunks:
            try:
                results = await self._send(client, chunk)
            except RequestFailed as exc:
                if len(chunks) == 1 or exc.error_class in (ErrorClass.AUTH, ErrorClass.FATAL):
                    raise  # the engine's reading of a failed batch: retry or halve it
                # Only when handed more than one body's worth: the others' outcomes stand.
                retryable = exc.error_class is ErrorClass.RETRYABLE
                failed = Failed(exc.error, retryable, exc.retry_after, isolate=not retryable)
                results = {item.index: failed for item in chunk}
            for index, outcome in results.items():
                outcomes[index] = outcome
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    def _too_large(self, link: CategoryLink, size: int) -> Failed:
        message = (
            f"{link.describe()}: its batch part alone is {size} bytes, above the batch API's "
            f"body limit of {self._max_body_bytes} bytes"
        )
        return Failed(ErrorInfo("BatchBodyTooLarge", message))

    def _chunks(self, ready: Sequence[_Ready]) -> list[list[_Ready]]:
        """Consecutive links cut into bodies of at most 50 parts and ``max_body_bytes``, sized
        as encoded (every boundary has the same length, so the size is known before it is)."""
        chunks: list[list[_Ready]] = []
        current: list[_Ready] = []
        used = _CLOSE_LEN
        for item in ready:
            size = part_size(item.content_id, item.link, item.payload)
            if current and (len(current) == MAX_PARTS or used + size > self._max_body_bytes):
                chunks.append(current)
                current, used = [], _CLOSE_LEN
            current.append(item)
            used += size
        if current:
            chunks.append(current)
        return chunks

    async def _send(self, client: Client, chunk: Sequence[_Ready]) -> dict[int, Outcome]:
        boundary, body = build_body([(item.content_id, item.link) for item in chunk])
        request = HttpRequest(
            "POST",
            self._batch_path,
            headers={
                "Content-Type": f"multipart/mixed; boundary={boundary}",
                # The Data API base every part's x-dw-resource-path-extension is relative to.
                "x-dw-resource-path": f"/{self._data_path}/",
            },
            body=body,
        )
        response = await client.send(request)
        what = f"batch of {len(chunk)} category links"
        if not response.ok:
            raise ocapi_error(response, what)
        answered = _parts_by_content_id(response, boundary, what)
        results: dict[int, Outcome] = {}
        for item in chunk:
            part = answered.get(item.content_id)
            if part is None:
                missing = f"the batch answer has no part '{item.content_id}'"
                info = ErrorInfo("MissingBatchPart", f"{item.link.describe()}: {missing}")
                results[item.index] = Failed(info, retryable=True)
            else:
                results[item.index] = await self._part_outcome(client, item, part)
        return results

    async def _part_outcome(self, client: Client, item: _Ready, part: Part) -> Outcome:
        link = item.link
        raw_status = part.headers.get("x-dw-status-code", "")
        if not raw_status.strip().isdigit():
            message = f"{link.describe()}: batch part without a valid x-dw-status-code"
            return Failed(ErrorInfo("BadBatchResponse", message), retryable=True)
        status = int(raw_status)
        if 200 <= status < 300:
            try:  # an unreadable part: only its own link is retried
                read_object(
                    part.body,
                    link.describe(),
                    status=status,
                    content_type=part.headers.get("content-type"),
                    write=True,
                )
            except RequestFailed as exc:
                return as_failed(exc)
            return put_outcome(status, part.body, item.exists)
        if is_conflict(status, part.body):
            # Rare (nothing here sends a resource state): settle it with single calls.
            try:
                return await resolve_conflict(client, self._data_path, link)
            except RequestFailed as exc:
                if exc.error_class in (ErrorClass.AUTH, ErrorClass.FATAL):
                    raise
                return as_failed(exc)
        info, fault = error_info(status, part.body, link.describe())
        retry_after = parse_retry_after(part.headers.get("retry-after"))
        if status == 401:
            # An expired token (InvalidTokenException) inside a 200 batch: the engine renews
            # only on a whole-request 401, so retry the part; if the token is really dead, the
            # next batch is refused as a whole and the engine renews it then.
            return Failed(info, retryable=True, retry_after=retry_after)
        retryable = classify(status, fault) is ErrorClass.RETRYABLE
        return Failed(info, retryable=retryable, retry_after=retry_after)


def _encode_part(boundary: str, content_id: str, link: CategoryLink, payload: bytes) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f"x-dw-content-id: {content_id}\r\n"
        "x-dw-http-method: PUT\r\n"
        f"x-dw-resource-path-extension: {link.path_extension()}\r\n"
        # Parts inherit the main request's headers, whose Content-Type is multipart/mixed.
        "Content-Type: application/json\r\n"
        "\r\n"
    )
    return head.encode() + payload + b"\r\n"


def part_size(content_id: str, link: CategoryLink, payload: bytes) -> int:
    """The bytes one part adds to a batch body, whatever boundary is drawn for it."""
    return len(_encode_part("x" * _BOUNDARY_LEN, content_id, link, payload))


def build_body(parts: Sequence[tuple[str, CategoryLink]]) -> tuple[str, bytes]:
    """A ``multipart/mixed`` body, one PUT per part, with a boundary found in no payload."""
    payloads = [(content_id, link, orjson.dumps(link.document())) for content_id, link in parts]
    while True:
        boundary = f"{_BOUNDARY_PREFIX}{secrets.token_hex(16)}"
        marker = boundary.encode()
        if not any(marker in payload for _, _, payload in payloads):
            break
    chunks = [_encode_part(boundary, *part) for part in payloads]
    chunks.append(f"--{boundary}--\r\n".encode())
    return boundary, b"".join(chunks)


def _parts_by_content_id(response: HttpResponse, sent_boundary: str, what: str) -> dict[str, Part]:
    content_type = response.header("content-type") or ""
    if not content_type.lower().startswith("multipart/"):
        # The batch was accepted but its answer is unreadable; PUTs are upserts, so sending
        # them again is safe.
        media = content_type.split(";", 1)[0].strip() or "untyped"
        problem = f"a {media} body where multipart/mixed was expected: {excerpt(response.body)}"
        raise bad_response(what, problem, response.status, True, "BadBatchResponse")
    boundary = boundary_of(content_type) or sent_boundary
    found: dict[str, Part] = {}
    for part in split_multipart(response.body, boundary):
        content_id = part.headers.get("x-dw-content-id")
        if content_id is not None:
            found.setdefault(content_id, part)  # a repeated id: the first answer counts
    return found


def boundary_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """RFC 2046 parts (CRLF or bare LF line ends). Only parts closed by a following delimiter
    are returned: a part cut off by a truncated answer counts as missing, not as answered."""
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )
    matches = list(delimiter.finditer(body))
    parts: list[Part] = []
    for current, following in itertools.pairwise(matches):
        if current.group(1):
            break  # the close delimiter: anything after it is epilogue
        parts.append(_parse_part(body[current.end() : following.start()]))
    return parts


def _parse_part(segment: bytes) -> Part:
    if segment.startswith((b"\r\n", b"\n")):
        head, content = b"", segment.split(b"\n", 1)[1]
    else:
        blank = _BLANK_LINE.search(segment)
        if blank is None:
            head, content = segment, b""
        else:
            head, content = segment[: blank.start()], segment[blank.end() :]
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return Part(headers, content)
