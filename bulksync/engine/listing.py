"""`--full`: paging through what the target holds, into the on-disk :class:`RemoteIndex`.

The pager belongs with the engine: it waits for the budget and retries a failed page through
the run's one retry loop (:class:`bulksync.engine.retry.Retrier`), so its retries count in the
run's stats like an item's. The connector's :class:`RemoteLister` only builds page requests
and reads the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from bulksync.engine.client import EngineClient
from bulksync.engine.retry import TryAgain
from bulksync.spi._connector import RemoteLister, RemotePage, RequestFailed
from bulksync.spi._errors import AuthError, ErrorClass, FatalTargetError, TransportError
from bulksync.spi._http import HttpRequest
from bulksync.spi._records import Kind
from bulksync.store.remote import RemoteIndex

log = logging.getLogger("bulksync.engine.listing")

MAX_PAGES = 10_000_000  # a bound on one scope's paging, far above any real catalogue


async def list_remote(
    client: EngineClient,
    lister: RemoteLister,
    kind: Kind,
    first_pages: Iterable[HttpRequest],
    index: RemoteIndex,
) -> tuple[int, int]:
    """Page through every scope into ``index``; returns (pages, items) read.

    A page that keeps failing stops the run: a full resync that could not see part of the
    target would create what exists or, with prune, delete what it should keep.
    """
    pages = items = 0
    for first in first_pages:
        request: HttpRequest | None = first
        # A page is its URL and its query: a cursor may travel in either.
        seen_urls: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        while request is not None:
            where = (request.url, tuple(sorted((request.params or {}).items())))
            if where in seen_urls or len(seen_urls) >= MAX_PAGES:
                raise FatalTargetError(f"listing {kind}s: the paging of {first.url} loops")
            seen_urls.add(where)
            page = await _read_page(client, lister, kind, request)
            index.add(page.items)
            pages += 1
            items += len(page.items)
            request = page.next
    return pages, items


async def _read_page(
    client: EngineClient, lister: RemoteLister, kind: Kind, request: HttpRequest
) -> RemotePage:
    async def attempt() -> RemotePage:
        try:
            response = await client.send(request)
            return lister.read_page(kind, request, response)
        except RequestFailed as exc:
            if exc.error_class is ErrorClass.AUTH:
                raise AuthError(exc.error.message) from None
            if exc.error_class is not ErrorClass.RETRYABLE:
                raise FatalTargetError(f"listing {kind}s failed: {exc.error.message}") from None
            raise TryAgain(exc.error.message, exc.retry_after) from None
        except TransportError as exc:
            raise TryAgain(str(exc)) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FatalTargetError(
                f"listing {kind}s: unreadable answer to {request.url}: {exc}"
            ) from None

    def give_up(attempts: int, last: TryAgain) -> FatalTargetError:
        return FatalTargetError(f"listing {kind}s failed after {attempts} attempts: {last.failure}")

    # The retry line names the page by its path: a query may carry a cursor or a key.
    what = f"listing page {urlsplit(request.url).path or request.url}"
    return await client.retrier.run(attempt, give_up, what=what)
