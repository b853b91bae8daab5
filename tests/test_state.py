"""The state store, and resume, resync, dry run, prune and retry-failed on the fake target."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.cli import main
from bulksync.spi._records import AssetRecord, LinkRecord, Origin
from bulksync.store.state import Confirmed, Intent, StateStore, content_hash


def test_confirmations_are_batched_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path, "quable https://a.test", flush_every=3, flush_interval_s=3600)
    store.confirm("link", "a", "h1", "id-1")
    store.confirm("link", "b", "h2", None)
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0  # not yet committed
    store.confirm("asset", "c", "h3", "c")  # the third write flushes the batch
    assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 3
    store.close()
    again = StateStore(path, "quable https://a.test")
    assert again.lookup("link", "a") is not None and again.lookup("link", "a").remote_id == "id-1"  # type: ignore[union-attr]
    assert again.lookup("link", "zz") is None
    assert StateStore(path, "quable https://other.test").lookup("link", "a") is None


def test_unseen_lists_confirmed_items_missing_from_this_run(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", "t")
    for key in ("a", "b", "c"):
        store.confirm("link", key, "h", key.upper())
    store.close()
    store = StateStore(tmp_path / "s.sqlite", "t")
    store.saw("link", "a")
    store.saw("link", "c")
    assert list(store.unseen("link")) == [("b", "B")]
    assert store.count("link") == 3
    store.forget("link", "b")
    assert store.count("link") == 2


def test_content_hash_follows_content_not_origin(tmp_path: Path) -> None:
    one = LinkRecord(Origin("a.jsonl", 1), "x", "y", "t", 1)
    assert content_hash(one) == content_hash(LinkRecord(Origin("b.jsonl", 9), "x", "y", "t", 1))
    assert content_hash(one) != content_hash(LinkRecord(Origin("a.jsonl", 1), "x", "y", "t", 2))
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    asset = AssetRecord(Origin("a.jsonl", 1), "a", file=image)
    before = content_hash(asset)
    image.write_bytes(b"other bytes")
    os.utime(image, ns=(1, 1))
    assert content_hash(asset) != before


def write_links(
    path: Path, count: int, changed: set[int] = frozenset(), skip: set[int] = frozenset()
) -> None:  # type: ignore[assignment]
    rows = []
    for i in range(count):
        if i in skip:
            continue
        rows.append(
            {
                "from": f"d{i % 7}",
                "to": f"t{i}",
                "type": "x",
                "sequence": 100 + i if i in changed else i,
            }
        )
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def job(tmp_path: Path) -> Path:
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


def summary(tmp_path: Path) -> dict[str, object]:
    return orjson.loads((tmp_path / "results.summary.json").read_bytes())  # type: ignore[no-any-return]


def test_resync_skips_unchanged_items_and_pushes_only_changed_ones(tmp_path: Path) -> None:
    write_links(tmp_path / "links.jsonl", 200)
    assert main(["run", "--config", str(job(tmp_path))]) == 0
    assert summary(tmp_path)["requests"] == 200
    assert main(["run", "--config", str(job(tmp_path))]) == 0
    second = summary(tmp_path)
    assert second["requests"] == 0 and second["skipped"] == 200
    reasons = {
        orjson.loads(x)["reason"] for x in (tmp_path / "results.jsonl").read_bytes().splitlines()
    }
    assert reasons == {"unchanged"}
    write_links(tmp_path / "links.jsonl", 200, changed={5, 50})
    assert main(["run", "--config", str(job(tmp_path))]) == 0
    third = summary(tmp_path)
    assert third["requests"] == 2 and third["succeeded"] == 2 and third["skipped"] == 198
    # The fake cannot be listed (no --full): without the state every item is pushed again.
    assert main(["run", "--config", str(job(tmp_path)), "--no-state"]) == 0
    assert summary(tmp_path)["requests"] == 200


def test_dry_run_prints_the_plan_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_links(tmp_path / "links.jsonl", 20)
    assert main(["run", "--config", str(job(tmp_path))]) == 0
    write_links(tmp_path / "links.jsonl", 22, changed={3}, skip={7})
    (tmp_path / "links.jsonl").write_bytes((tmp_path / "links.jsonl").read_bytes() + b"not json\n")
    capsys.readouterr()
    before = (tmp_path / "results.jsonl").read_bytes()
    assert (
        main(["run", "--config", str(job(tmp_path)), "--dry-run", "--prune", "--max-delete", "5"])
        == 0
    )
    out = capsys.readouterr().out
    assert "links: 2 create, 1 update, 18 skip, 1 invalid, 1 delete" in out
    assert "d3->t3:x" in out and "t7" in out
    assert (tmp_path / "results.jsonl").read_bytes() == before  # no run happened
    # The plan is what the next real run does.
    assert main(["run", "--config", str(job(tmp_path))]) == 1
    done = summary(tmp_path)
    assert (done["requests"], done["skipped"], done["failed"]) == (3, 18, 1)


def test_prune_deletes_exactly_what_left_the_input_within_the_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_links(tmp_path / "links.jsonl", 100)
    assert main(["run", "--config", str(job(tmp_path))]) == 0
    write_links(tmp_path / "links.jsonl", 100, skip={10, 20, 30})
    assert main(["run", "--config", str(job(tmp_path)), "--prune"]) == 0
    lines = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    deleted = sorted(
        x["key"] for x in lines if x.get("action") == "deleted" or x["source"] == "state"
    )
    assert deleted == ["d2->t30:x", "d3->t10:x", "d6->t20:x"]
    assert summary(tmp_path)["deleted"] == 3
    # Half of the input gone: above the default 5% guard, nothing is deleted.
    write_links(tmp_path / "links.jsonl", 100, skip=set(range(0, 100, 2)))
    capsys.readouterr()
    assert main(["run", "--config", str(job(tmp_path)), "--prune"]) == 2
    err = capsys.readouterr().err
    assert "would delete 47 of 97 items" in err and "--max-delete" in err
    assert summary(tmp_path).get("deleted", 0) == 0
    # A rerun allowed to delete them does.
    assert main(["run", "--config", str(job(tmp_path)), "--prune", "--max-delete", "50%"]) == 0
    assert summary(tmp_path)["deleted"] == 47


def test_retry_failed_runs_only_the_failed_lines(tmp_path: Path) -> None:
    write_links(tmp_path / "links.jsonl", 60)
    config = job(tmp_path)
    config.write_text(
        config.read_text() + "[fake]\npermanent_rate = 0.2\nseed = 4\n", encoding="utf-8"
    )
    assert main(["run", "--config", str(config)]) == 1
    failed = {
        orjson.loads(x)["line"]
        for x in (tmp_path / "results.jsonl").read_bytes().splitlines()
        if b'"failed"' in x
    }
    assert failed
    config.write_text(
        config.read_text().replace("permanent_rate = 0.2", "permanent_rate = 0.0"), encoding="utf-8"
    )
    assert main(["retry-failed", str(tmp_path / "results.jsonl"), "--config", str(config)]) == 0
    retried = [
        orjson.loads(x) for x in (tmp_path / "results.retry.jsonl").read_bytes().splitlines()
    ]
    assert {x["line"] for x in retried} == failed
    assert all(x["status"] == "succeeded" for x in retried)


def test_each_item_keeps_its_last_result_and_a_failure_keeps_the_last_push(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "s.sqlite", "t", flush_every=1000, flush_interval_s=3600)
    store.confirm("asset", "pushed", "h1", "R1", "succeeded (created)")
    store.failed("asset", "never", "failed at create: HTTP422: bad classification")
    store.close()
    store = StateStore(tmp_path / "s.sqlite", "t")
    assert store.last_result("asset", "pushed") == "succeeded (created)"
    assert store.last_result("asset", "never") == "failed at create: HTTP422: bad classification"
    # A failed update keeps the hash and id of the last push: the next run still updates it.
    store.failed("asset", "pushed", "failed at create: Timeout: gave up")
    assert store.lookup("asset", "pushed") == Confirmed("h1", "R1")
    assert store.last_result("asset", "pushed") == "failed at create: Timeout: gave up"
    # An item never pushed is not known, not counted and not pruned.
    assert store.lookup("asset", "never") is None
    assert store.count("asset") == 1 and list(store.keys("asset")) == ["pushed"]
    assert [key for key, _ in store.unseen("asset")] == ["pushed"]
    store.confirm("asset", "never", "h2", "R2")
    assert store.lookup("asset", "never") == Confirmed("h2", "R2")
    assert store.last_result("asset", "never") == "succeeded"
    store.close()


def test_a_state_database_from_before_results_were_kept_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE items (target TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, "
        "hash TEXT NOT NULL, remote_id TEXT, run_id TEXT NOT NULL, pushed_at REAL NOT NULL, "
        "PRIMARY KEY (target, kind, key)) WITHOUT ROWID"
    )
    old.execute("INSERT INTO items VALUES ('t', 'link', 'a', 'h', 'A', 'r', 0)")
    old.commit()
    old.close()
    store = StateStore(path, "t")
    assert store.lookup("link", "a") == Confirmed("h", "A")
    assert store.last_result("link", "a") is None
    store.confirm("link", "a", "h2", None, "succeeded (linked)")
    assert store.last_result("link", "a") == "succeeded (linked)"
    store.close()


def test_a_run_records_failures_and_successes_in_the_state(tmp_path: Path) -> None:
    write_links(tmp_path / "links.jsonl", 60)
    config = job(tmp_path)
    config.write_text(
        config.read_text() + "[fake]\npermanent_rate = 0.2\nseed = 4\n", encoding="utf-8"
    )
    assert main(["run", "--config", str(config)]) == 1
    results = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    store = StateStore(tmp_path / "bulksync-state.sqlite", "fake ")  # kind and base URL
    kept = {r["key"]: store.last_result("link", r["key"]) for r in results}
    store.close()
    assert None not in kept.values(), "the state's target name or path is not what the run used"
    for r in results:
        if r["status"] == "failed":
            assert kept[r["key"]].startswith("failed at link: HTTP422: ")
        else:
            assert kept[r["key"]].startswith("succeeded")
    assert any(r["status"] == "failed" for r in results)


async def test_intents_of_workers_share_one_transaction_and_survive_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path, "quable https://a.test", flush_every=1000, flush_interval_s=3600)
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    async with anyio.create_task_group() as workers:
        for n in range(8):
            workers.start_soon(store.intend, {("link", f"k{n}"): Intent(f"h{n}", None)})
    assert commits == ["COMMIT"]  # eight workers, one group commit
    await store.intend({("asset", "a"): Intent("ha", "file-1")})
    # A crash now: another process opening the state sees every intent already.
    crashed = StateStore(path, "quable https://a.test")
    assert crashed.in_flight("link", "k3") == Intent("h3", None)
    assert crashed.in_flight("asset", "a") == Intent("ha", "file-1")
    assert crashed.in_flight("link", "other") is None
    assert StateStore(path, "ocapi https://b.test").in_flight("link", "k3") is None
    crashed.close()


async def test_settled_intents_are_gone_after_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path, "t", flush_every=1000, flush_interval_s=3600)
    await store.intend({("link", k): Intent("h", None) for k in ("done", "refused", "unsure")})
    store.confirm("link", "done", "h", "id-1")
    store.failed("link", "refused", "failed: HTTP400: bad")  # surely not applied
    store.failed("link", "unsure", "failed: Timeout", settled=False)
    assert StateStore(path, "t").in_flight("link", "done") is not None  # not flushed yet
    store.flush()
    reopened = StateStore(path, "t")
    assert reopened.in_flight("link", "done") is None
    assert reopened.in_flight("link", "refused") is None
    assert reopened.in_flight("link", "unsure") == Intent("h", None)


def test_a_failure_marked_absent_forgets_the_last_push(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite", "t")
    store.confirm("link", "a", "h1", "id-1")
    store.confirm("link", "b", "h1", "id-2")
    store.flush()
    store.failed("link", "a", "failed at link: HTTP413: too large", absent=True)
    store.failed("link", "b", "failed at link: HTTP400: nope")
    store.flush()
    assert store.lookup("link", "a") is None  # the target holds nothing: create it again
    assert store.lookup("link", "b") == Confirmed("h1", "id-2")
    assert store.last_result("link", "a") == "failed at link: HTTP413: too large"


async def test_prune_scope_holds_what_a_killed_run_was_pushing(tmp_path: Path) -> None:
    """A run killed before its results were committed may have created these on the target:
    if they then leave the input, prune must look at them too, not leave them there."""
    path = tmp_path / "state.sqlite"
    killed = StateStore(path, "t", flush_every=1000, flush_interval_s=3600)
    killed.confirm("link", "kept", "h0", "id-0")
    killed.flush()
    await killed.intend({("link", k): Intent("h", None) for k in ("crashed", "kept", "again")})
    rerun = StateStore(path, "t")
    rerun.saw("link", "again")  # still in the input: not a prune candidate
    assert sorted(rerun.unseen("link")) == [("crashed", None), ("kept", "id-0")]
    assert rerun.in_flight_count("link") == 3
    rerun.forget("link", "crashed")  # deleted by prune
    assert StateStore(path, "t").in_flight("link", "crashed") is None
    assert sorted(StateStore(path, "t").unseen("link")) == [("again", None), ("kept", "id-0")]


async def test_a_refused_push_drops_the_kept_upload_but_keeps_the_intent(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    killed = StateStore(path, "t")
    await killed.intend({("asset", "a"): Intent("h", "file-1"), ("asset", "b"): Intent("h", "f2")})
    rerun = StateStore(path, "t")
    rerun.failed(
        "asset", "a", "failed at create: HTTP400: unknown file", settled=False, refused=True
    )
    rerun.failed("asset", "b", "failed at create: Timeout", settled=False)
    rerun.flush()
    later = StateStore(path, "t")
    # Still looked up before a create (the target may hold it), but uploaded afresh.
    assert later.in_flight("asset", "a") == Intent("h", None)
    assert later.in_flight("asset", "b") == Intent("h", "f2")


def test_lookups_asked_ahead_answer_as_the_database_would(tmp_path: Path) -> None:
    """prefetch() answers a chunk in one query; what the run writes after it still counts."""
    path = tmp_path / "s.sqlite"
    store = StateStore(path, "t", flush_every=1)
    store.confirm("link", "old", "h-old", "id-old")
    store.flush()
    store.prefetch("link", ["old", "new", "gone", "later"])
    store.confirm("link", "later", "h-later", "id-later")
    store.flush()  # out of the pending buffer: only the database and the prefetch know it
    assert store.lookup("link", "old") == Confirmed("h-old", "id-old")
    assert store.lookup("link", "new") is None
    assert store.lookup("link", "later") == Confirmed("h-later", "id-later")
    assert store.lookup("asset", "old") is None  # another kind: its own keys
    store.close()


def test_a_prefetch_that_fails_leaves_no_key_looking_new(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path, "t")
    store.confirm("link", "a", "h", "id")
    store.flush()

    def broken(kind: str, keys: list[str]) -> Any:
        raise sqlite3.OperationalError("disk I/O error")
        yield  # pragma: no cover - a generator, as the real one is

    store._lookup_many = broken  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        store.prefetch("link", ["a"])
    assert store.lookup("link", "a") == Confirmed("h", "id")
    store.close()
