"""What a target offers ``bulksync bench``: the documented read it may repeat, and the
synthetic create-then-delete pair of ``--writes``. Declarative: the connector builds the
requests, the bench sends, paces, times and cleans up (connectors never send anything)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bulksync.spi._http import HttpRequest


@dataclass(frozen=True, slots=True)
class BenchRead:
    """One cheap documented GET, sent over and over at the stage's rate."""

    request: HttpRequest
    # The documented answers that mean "served" (a GET of an id no object has may be
    # documented to answer 404: served, not an error). Anything else but 429 is an error.
    served: frozenset[int] = field(default_factory=lambda: frozenset({200}))


@dataclass(frozen=True, slots=True)
class BenchWrite:
    """A synthetic object under the bench's id prefix: created, then deleted.

    Judged by status only, the same for every target: a create is served by a 2xx (anything
    else leaves its fate unknown, and the object is deleted at the end all the same); a
    delete is done on a 2xx or a 404; ``lookup`` (a GET of the object, 404 when it is not
    there) settles a delete whose fate is unknown. Without one, the delete is sent again:
    deletes are idempotent, creates never are, and no create is ever sent twice.
    """

    create: Callable[[str], HttpRequest]  # id -> the request that creates the object
    delete: Callable[[str], HttpRequest]  # id -> the request that deletes it
    lookup: Callable[[str], HttpRequest] | None = None  # id -> a GET of it
