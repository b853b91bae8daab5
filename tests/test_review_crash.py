"""Failing tests for crash-safety bugs found in review (issue 12). Each states the promise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
from test_review_findings import OneStageConnector

from bulksync.connectors.fake._fake import FakeServer
from bulksync.engine._engine import Engine, EngineOptions
from bulksync.engine.auth import NoAuth
from bulksync.engine.budget import RateBudget
from bulksync.engine.client import Target
from bulksync.spi._connector import BaseStage, Client, Done, Job, Outcome
from bulksync.spi._records import LinkRecord, Origin
from bulksync.store.results import ResultWriter, read_results
from bulksync.store.state import Intent, StateStore, content_hash


class Recording(BaseStage):
    name = "link"

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    async def run(self, jobs: Sequence[Job], client: Client) -> Sequence[Outcome]:
        self.seen.append((jobs[0].record.key, jobs[0].maybe_applied))
        return [Done(remote_id="r", action="updated")]


async def _run(tmp_path: Path, state: StateStore, record: LinkRecord, stage: Recording) -> list:
    writer = ResultWriter(tmp_path / "r.jsonl")
    target = Target("fake://t", FakeServer(), RateBudget(), NoAuth())
    engine = Engine(OneStageConnector(stage), target, writer, EngineOptions(state=state))  # type: ignore[arg-type]
    with anyio.fail_after(10):
        await engine.run([("link", iter([record]))])
    writer.close()
    return list(read_results(tmp_path / "r.jsonl"))


async def test_a_crashed_update_then_reverted_input_is_not_skipped_as_unchanged(
    tmp_path: Path,
) -> None:
    """Run 1 confirmed A. Run 2 pushed B (intent B durable, write applied) and was killed
    before its confirmation was committed. Run 3's input is A again: the target may hold B,
    so A must be pushed (or verified), not skipped as 'unchanged'; and the intent must end."""
    path = tmp_path / "s.sqlite"
    a = LinkRecord(Origin("l.jsonl", 1), "d", "t", "x", 1)
    b = LinkRecord(Origin("l.jsonl", 1), "d", "t", "x", 2)
    state = StateStore(path, "t")
    state.confirm("link", a.key, content_hash(a), "r")
    state.close()
    crashed = StateStore(path, "t")
    await crashed.intend({("link", b.key): Intent(content_hash(b), None)})
    crashed._db.close()  # SIGKILL: nothing else reaches the disk

    state = StateStore(path, "t")
    stage = Recording()
    results = await _run(tmp_path, state, a, stage)
    state.close()
    assert results[0]["status"] != "skipped", results[0]  # the target may hold B
    assert StateStore(path, "t").in_flight("link", a.key) is None


async def test_an_intent_of_an_unchanged_item_is_cleared(tmp_path: Path) -> None:
    """An intent left by a --full run that pushed A again and was killed: a later resync skips
    A as unchanged (right) but never settles the intent, so it stays in the table forever."""
    path = tmp_path / "s.sqlite"
    a = LinkRecord(Origin("l.jsonl", 1), "d", "t", "x", 1)
    state = StateStore(path, "t")
    state.confirm("link", a.key, content_hash(a), "r")
    state.close()
    crashed = StateStore(path, "t")
    await crashed.intend({("link", a.key): Intent(content_hash(a), None)})
    crashed._db.close()
    for _ in range(2):
        state = StateStore(path, "t")
        await _run(tmp_path, state, a, Recording())
        state.close()
    assert StateStore(path, "t").in_flight("link", a.key) is None


def test_retry_failed_does_not_push_a_line_that_failed_as_a_duplicate(tmp_path: Path) -> None:
    """Line 2 is the same item as line 1 and fails 'duplicate of line 1'. retry-failed feeds
    only the failed lines, so the identity index never sees line 1 and line 2 is pushed,
    overwriting line 1's item on the target (the flip-flop issue 12 item 9 removes)."""
    import orjson

    from bulksync.app.cli import main

    rows = [{"from": "d", "to": "t", "type": "x", "sequence": n} for n in (1, 2)]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    main(["run", "--config", str(config)])
    first = sorted(read_results(tmp_path / "results.jsonl"), key=lambda r: r["line"])
    assert [r["status"] for r in first] == ["succeeded", "failed"]
    main(["retry-failed", str(tmp_path / "results.jsonl"), "--config", str(config)])
    retry_file = tmp_path / "results.retry.jsonl"
    retried = list(read_results(retry_file)) if retry_file.exists() else []
    # The duplicate is not a failure a retry can mend: it is not sent again at all.
    assert not [r for r in retried if r["line"] == 2 and r["status"] == "succeeded"], retried


class Scripted:
    """A client answering from a script, one answer per request, recording what was sent."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        from bulksync.spi._http import HttpResponse

        self._answers = [HttpResponse(s, {"content-type": "text/html"}, b) for s, b in answers]
        self.sent: list[tuple[str, str]] = []

    async def send(self, request: object) -> object:
        self.sent.append((request.method, request.url))  # type: ignore[attr-defined]
        return self._answers.pop(0)


async def test_an_asset_recreated_after_a_put_404_needs_a_readable_answer() -> None:
    """The asset the state knows is gone (PUT 404) and is created again: that POST answered
    200 with a proxy's HTML page is no evidence, like the first create's (issue 12 item 5),
    yet it is reported 'succeeded (created)'."""
    import pytest

    from bulksync.connectors.quable._assets import CreateStage
    from bulksync.spi._connector import RequestFailed
    from bulksync.spi._records import AssetRecord

    record = AssetRecord(Origin("a.jsonl", 1), "shirt", remote_path="https://x.test/a.jpg")
    job = Job(record, exists=True)
    client = Scripted([(404, b""), (200, b"<html>proxy says hi</html>")])
    with pytest.raises(RequestFailed) as failure:
        await CreateStage().run([job], client)  # type: ignore[arg-type]
    assert failure.value.maybe_applied


async def test_an_asset_recreate_answered_500_after_a_put_404_is_maybe_applied() -> None:
    """The same POST answered 500: a write that may have been applied (RFC 9110), as for the
    first create; quable_error is called without write=True, so it is not marked."""
    import pytest

    from bulksync.connectors.quable._assets import CreateStage
    from bulksync.spi._connector import RequestFailed
    from bulksync.spi._records import AssetRecord

    record = AssetRecord(Origin("a.jsonl", 1), "shirt", remote_path="https://x.test/a.jpg")
    job = Job(record, exists=True)
    client = Scripted([(404, b""), (500, b"oops")])
    with pytest.raises(RequestFailed) as failure:
        await CreateStage().run([job], client)  # type: ignore[arg-type]
    assert failure.value.maybe_applied


async def test_a_changed_v5_link_without_a_kept_id_replaces_the_old_link() -> None:
    """REFERENCE.md: whether POST /api/links answers with an id is not documented, and
    _created_id accepts a bodiless 201 (remote_id None). When that link later changes (a new
    sequence), V5LinkStage deletes the old link only if it has its id: here it POSTs a second
    link of the same origin/target/type, so the target keeps the old one too (a duplicate
    with a server that accepts identical links; with one that answers 409, find_link returns
    the old link and the new sequence is reported 'exists' but never applied)."""
    from bulksync.connectors.quable._links import V5LinkStage

    record = LinkRecord(Origin("l.jsonl", 1), "d", "t", "x", 2)
    job = Job(record, exists=True)  # remote_id None: the first create gave none
    client = Scripted(
        [
            (200, b'{"hydra:member": [{"id": 7, "origin": "d", "target": "t", "linkType": "x"}]}'),
            (204, b""),
            (201, b""),
        ]
    )
    await V5LinkStage().run([job], client)  # type: ignore[arg-type]
    methods = [method for method, _ in client.sent]
    assert "DELETE" in methods, client.sent  # the old link must go before the new one
