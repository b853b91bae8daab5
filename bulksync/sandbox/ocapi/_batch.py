"""OCAPI batch API: ``POST /s/-/dw/batch`` with a ``multipart/mixed`` body.

As documented: main-section headers and query parameters are inherited by every part and a part
may override them; each part names itself with ``x-dw-content-id``, its method with
``x-dw-http-method`` and its path with ``x-dw-resource-path`` + ``x-dw-resource-path-extension``.
The answer is 200 ``multipart/mixed`` (same boundary), one part per subrequest carrying
``x-dw-content-id`` and ``x-dw-status-code``. Whole-batch errors are 400s with the documented
fault types (IllegalContentTypeException, QuotaExceededException past 50 parts,
RequestEntityTooLargeException past 5 MB, Missing*Exception, InvalidRequestBodyException).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from multidict import CIMultiDict

from bulksync.sandbox._errors import dumps
from bulksync.sandbox._state import STATE, SandboxState
from bulksync.sandbox.ocapi._errors import ocapi_fault, ocapi_fault_body
from bulksync.sandbox.ocapi._request import Call, Result
from bulksync.sandbox.ocapi._routes import dispatch, route_label
from bulksync.sandbox.ocapi._settings import OcapiSettings

OCAPI_BATCH = "/s/-/dw/batch"

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_METHODS = frozenset({"GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS"})


class BatchError(Exception):
    def __init__(self, type_: str, message: str, arguments: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.type = type_
        self.arguments = arguments


@dataclass(frozen=True, slots=True)
class Part:
    headers: CIMultiDict[str]
    body: bytes


def boundary_of(content_type_header: str) -> str | None:
    mime, *params = (p.strip() for p in content_type_header.split(";"))
    if mime.lower() != "multipart/mixed":
        return None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def split_parts(body: bytes, boundary: str) -> list[Part]:
    """RFC 2046 multipart parsing (CRLF or bare LF); raises BatchError when malformed."""
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?=\r?\n|\Z)"
    )
    matches = list(delimiter.finditer(body))
    if not matches:
        raise BatchError("InvalidRequestBodyException", "The batch body contains no part.")
    parts: list[Part] = []
    for current, following in itertools.pairwise(matches):
        if current.group(1):
            break
        segment = body[current.end() : following.start()]
        segment = segment[2:] if segment.startswith(b"\r\n") else segment[1:]
        parts.append(_parse_part(segment, len(parts)))
    if not matches[-1].group(1):
        raise BatchError(
            "InvalidRequestBodyException", "The batch body has no closing boundary delimiter."
        )
    return parts


def _parse_part(segment: bytes, index: int) -> Part:
    if segment.startswith((b"\r\n", b"\n")):
        head, content = b"", segment.lstrip(b"\r").removeprefix(b"\n")
    else:
        found = _BLANK_LINE.search(segment)
        head, content = (
            (segment, b"") if found is None else (segment[: found.start()], segment[found.end() :])
        )
    headers: CIMultiDict[str] = CIMultiDict()
    for line in head.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name.strip()):
            raise BatchError(
                "InvalidRequestBodyException",
                f"Subrequest #{index + 1} has a malformed header line {line!r}; "
                "headers and body must be separated by an empty line.",
            )
        headers.add(name.strip(), value.strip())
    return Part(headers, content)


def _plan(request: web.Request, part: Part, index: int) -> tuple[str, Call]:
    """The content id and the OCAPI call a part stands for."""
    outer = request.headers
    content_id = part.headers.get("x-dw-content-id")
    if not content_id:
        raise BatchError(
            "InvalidRequestBodyException", f"Subrequest #{index + 1} has no x-dw-content-id header."
        )
    method = (part.headers.get("x-dw-http-method") or outer.get("x-dw-http-method") or "").upper()
    if not method:
        raise BatchError(
            "MissingHttpMethodException", f"Subrequest '{content_id}' has no HTTP method."
        )
    if method not in _METHODS:
        raise BatchError(
            "InvalidHttpMethodException",
            f"Subrequest '{content_id}' has an invalid HTTP method '{method}'.",
            {"method": method},
        )
    base = part.headers.get("x-dw-resource-path") or outer.get("x-dw-resource-path") or ""
    extension = (
        part.headers.get("x-dw-resource-path-extension")
        or outer.get("x-dw-resource-path-extension")
        or ""
    )
    if not base and not extension:
        raise BatchError(
            "MissingResourcePathException", f"Subrequest '{content_id}' has no resource path."
        )
    joined = base.rstrip("/") + "/" + extension.lstrip("/") if extension else base
    split = urlsplit(joined)
    if "(" in split.path and "," in split.path:
        raise BatchError(
            "ResourcePathNotAllowedException",
            f"Subrequest '{content_id}' addresses several resources: {split.path}.",
        )
    query = {**dict(request.query), **dict(parse_qsl(split.query, keep_blank_values=True))}
    headers = CIMultiDict(outer)
    for name, value in part.headers.items():
        headers[name] = value
    call = Call(
        method=method,
        path=split.path,
        query=query,
        headers=headers,
        body=part.body,
        base_url=f"{request.scheme}://{request.host}",
    )
    return content_id, call


def _execute(state: SandboxState, call: Call) -> Result:
    token = call.headers.get("Authorization", "")
    scheme, _, value = token.partition(" ")
    if scheme.lower() != "bearer" or state.tokens.check("ocapi", value.strip()) != "ok":
        return Result(
            401,
            ocapi_fault_body(
                "InvalidAccessTokenException",
                "The OAuth access token sent via Authorization: Bearer header is invalid.",
                {"accessToken": value.strip()},
            ),
        )
    return dispatch(state, call)


async def batch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    knobs = state.settings.of(OcapiSettings)
    try:
        boundary = boundary_of(request.headers.get("Content-Type", ""))
        if boundary is None:
            raise BatchError(
                "IllegalContentTypeException",
                "The batch request content type must be multipart/mixed with a boundary.",
            )
        body = await request.read()
        if len(body) > knobs.max_body_bytes:
            raise BatchError(
                "RequestEntityTooLargeException",
                f"The batch request body is larger than {knobs.max_body_bytes} bytes.",
            )
        parts = split_parts(body, boundary)
        if len(parts) > knobs.max_batch_parts:
            raise BatchError(
                "QuotaExceededException",
                f"The batch request contains {len(parts)} subrequests; at most "
                f"{knobs.max_batch_parts} are allowed.",
                {"msg": f"max {knobs.max_batch_parts} subrequests"},
            )
        plans = [_plan(request, part, index) for index, part in enumerate(parts)]
    except BatchError as exc:
        return ocapi_fault(400, exc.type, str(exc), exc.arguments)
    chunks: list[bytes] = []
    delimiter = f"--{boundary}\r\n".encode()
    for content_id, call in plans:
        result = _execute(state, call)
        state.stats.request(f"{route_label(call)} (batch)", str(result.status))
        head = f"x-dw-content-id: {content_id}\r\nx-dw-status-code: {result.status}\r\n"
        for name, value in result.headers.items():
            head += f"{name}: {value}\r\n"
        payload = b"" if result.body is None else dumps(result.body)
        chunks.append(delimiter + head.encode() + b"\r\n" + payload + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return web.Response(
        status=200,
        body=b"".join(chunks),
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(OCAPI_BATCH, batch)
