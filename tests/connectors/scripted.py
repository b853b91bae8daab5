"""A scripted stand-in for the engine's client: connectors' request shapes, no network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bulksync.spi._http import HttpRequest, HttpResponse

Answer = HttpResponse | Callable[[HttpRequest], HttpResponse]


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = b"" if body is None else orjson.dumps(body)
    return HttpResponse(status, {"content-type": "application/json", **(headers or {})}, raw)


class ScriptedClient:
    """Answers in order (an answer may be a function of the request) and keeps the requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer
