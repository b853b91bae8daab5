"""The OCAPI connector end to end against the sandbox, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulksync.app.config import Config, InputsConfig, LimitsConfig, OutputConfig, TargetConfig
from bulksync.app.runner import RunOptions, RunReport, run_job_async
from bulksync.sandbox import SandboxSettings, SandboxState, running_sandbox

CLIENT_ID, CLIENT_SECRET = "BULKSYNC_TEST_OCAPI_CLIENT_ID", "BULKSYNC_TEST_OCAPI_CLIENT_SECRET"
TYPES = ("other", "accessories", "cross_selling", "up_selling", "spare_parts")
CATEGORIES = 40  # per seeded catalog: category-0001 .. category-0040
BATCH_ROUTE = "POST /s/-/dw/batch"
TOKEN_ROUTE = "POST /dwsso/oauth2/access_token"
PUT_ROUTE = "PUT /s/-/dw/data/v23_2/catalogs/"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLIENT_ID, "sandbox")
    monkeypatch.setenv(CLIENT_SECRET, "sandbox")


def sandbox_settings(overrides: Mapping[str, str] | None = None) -> SandboxSettings:
    return SandboxSettings().with_overrides(
        {"ocapi.seed_categories": str(CATEGORIES), **(overrides or {})}
    )


def category(catalog: int, number: int) -> dict[str, str]:
    return {"catalog": f"catalog-{catalog}", "category": f"category-{number:04d}"}


def write_links(folder: Path, count: int, extra: list[dict[str, Any]] | None = None) -> list[Any]:
    """``count`` distinct category links (i = 5k + type index, so each i is one link), each
    with ``sequence`` i + 1, then ``extra`` lines as given."""
    links: list[dict[str, Any]] = []
    for i in range(count):
        k = i // len(TYPES)
        links.append(
            {
                "from": category(1 + i % 2, (k // CATEGORIES) % CATEGORIES + 1),
                "to": category(1 + (i // 2) % 2, k % CATEGORIES + 1),
                "type": TYPES[i % len(TYPES)],
                "sequence": i + 1,
            }
        )
    assert len({(*identity(link), link["type"]) for link in links}) == count
    lines = links + (extra or [])
    (folder / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return links


def identity(link: Mapping[str, Any]) -> tuple[str, ...]:
    source, target = link["from"], link["to"]
    return (source["catalog"], source["category"], target["catalog"], target["category"])


def config_for(folder: Path, url: str, ocapi: Mapping[str, Any], concurrency: int) -> Config:
    target = TargetConfig(
        kind="ocapi", base_url=url, client_id_env=CLIENT_ID, client_secret_env=CLIENT_SECRET
    )
    return Config(
        target=target,
        inputs=InputsConfig(links=folder / "links.jsonl"),
        limits=LimitsConfig(concurrency=concurrency),
        output=OutputConfig(results=folder / "results.jsonl", progress=False),
        # The sandbox serves the token route on its own host: a token_url relative to base_url.
        sections={"ocapi": {"token_url": "/dwsso/oauth2/access_token", **ocapi}},
    )


async def run(
    settings: SandboxSettings,
    folder: Path,
    ocapi: Mapping[str, Any] | None = None,
    concurrency: int = 8,
) -> tuple[RunReport, SandboxState]:
    async with running_sandbox(settings) as sandbox:
        with anyio.fail_after(120):
            config = config_for(folder, sandbox.url, ocapi or {}, concurrency)
            report = await run_job_async(config, quiet=True)
        return report, sandbox.state


def results(folder: Path) -> list[dict[str, Any]]:
    """The lines of ``folder``/results.jsonl."""
    return [orjson.loads(line) for line in (folder / "results.jsonl").read_bytes().splitlines()]


def stored(state: SandboxState) -> dict[tuple[str, ...], float]:
    """Every category link in the sandbox: (source catalog, source category, target catalog,
    target category, type) -> position."""
    return {
        (*source, *target): record["position"]
        for source, targets in state.store.ocapi.links.items()
        for target, record in targets.items()
    }


def expected(links: list[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    return {(*identity(x), x["type"]): float(x["sequence"]) for x in links}


def requests_to(state: SandboxState, route_prefix: str, *, batch_part: bool = False) -> int:
    """Requests counted by the sandbox on routes starting with ``route_prefix``; the parts of
    batches are counted apart, under their route followed by " (batch)"."""
    routes = state.stats.snapshot()["requests"]
    return sum(
        sum(outcomes.values())
        for route, outcomes in routes.items()
        if route.startswith(route_prefix) and route.endswith(" (batch)") == batch_part
    )


def assert_all_succeeded_once(folder: Path, links: list[dict[str, Any]], state: Any) -> None:
    lines = results(folder)
    assert sorted(r["line"] for r in lines) == list(range(1, len(links) + 1))  # one per input
    assert all(r["status"] == "succeeded" for r in lines), [
        r for r in lines if r["status"] != "succeeded"
    ][:3]
    assert {r["action"] for r in lines} <= {"created", "updated", "upserted"}
    assert state.store.ocapi.link_count() == len(links)  # none lost, none extra
    assert stored(state) == expected(links)  # each one where it belongs, at its position


@pytest.mark.parametrize("batch", [False, True])
async def test_links_end_to_end(tmp_path: Path, batch: bool) -> None:
    links = write_links(tmp_path, 120)
    report, state = await run(sandbox_settings(), tmp_path, {"batch": batch})
    assert report.exit_code == 0, report.summary
    assert_all_succeeded_once(tmp_path, links, state)
    lines = results(tmp_path)
    # The spec's 200 for every PUT, a state that knows nothing and no --full: no evidence of
    # whether a link was there, so neither "created" nor "updated" is claimed.
    assert all(r["action"] == "upserted" and r["attempts"] == 1 for r in lines)
    assert all(r["remote_id"].endswith("/" + r["key"].rsplit(":", 1)[1]) for r in lines)
    direct_puts = requests_to(state, PUT_ROUTE)
    parts = requests_to(state, PUT_ROUTE, batch_part=True)
    if batch:
        assert direct_puts == 0 and parts == len(links)
        assert requests_to(state, BATCH_ROUTE) == 3  # 50 + 50 + 20
    else:
        assert direct_puts == len(links) and parts == 0
        assert requests_to(state, BATCH_ROUTE) == 0


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("created_status", ["200", "201"])
async def test_created_and_updated_come_from_evidence_not_from_the_status(
    tmp_path: Path, batch: bool, created_status: str
) -> None:
    links = write_links(tmp_path, 30)
    settings = sandbox_settings({"ocapi.put_created_status": created_status})
    async with running_sandbox(settings) as sandbox:
        with anyio.fail_after(60):
            config = config_for(tmp_path, sandbox.url, {"batch": batch}, 4)
            # --full: the listing shows none of them, evidence enough for "created" even when
            # the server answers a create with 200.
            assert (await run_job_async(config, True, RunOptions(full=True))).exit_code == 0
            assert {r["action"] for r in results(tmp_path)} == {"created"}
            # New positions: the state knows each link was pushed, so each is an update.
            moved = [{**link, "sequence": link["sequence"] + 100} for link in links]
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in moved))
            assert (await run_job_async(config, quiet=True)).exit_code == 0
            assert {r["action"] for r in results(tmp_path)} == {"updated"}
        assert sandbox.state.store.ocapi.link_count() == len(links)
        assert stored(sandbox.state) == expected(moved)


async def test_1000_links_take_at_most_20_batch_requests(tmp_path: Path) -> None:
    links = write_links(tmp_path, 1000)
    report, state = await run(sandbox_settings(), tmp_path, {"batch": True}, concurrency=16)
    assert report.exit_code == 0, report.summary
    assert_all_succeeded_once(tmp_path, links, state)
    assert requests_to(state, BATCH_ROUTE) <= 20
    assert requests_to(state, PUT_ROUTE) == 0
    assert requests_to(state, PUT_ROUTE, batch_part=True) == len(links)


@pytest.mark.parametrize(
    ("ocapi", "concurrency"),
    [({"batch": False}, 4), ({"batch": True, "batch_size": 5}, 2)],
    ids=["single", "batch"],
)
async def test_faults_and_expiring_tokens_lose_and_duplicate_nothing(
    tmp_path: Path, ocapi: dict[str, Any], concurrency: int
) -> None:
    links = write_links(tmp_path, 200)
    settings = sandbox_settings(
        {
            # Tokens die after 0.2 s while the answer says expires_in 1 (the smallest it
            # reports), so expiry is met by 401 InvalidAccessTokenException, not only renewed.
            "ocapi.token_lifetime_s": "0.2",
            # At least 50 rounds of 20 ms (200 / 4 single calls, 40 / 2 batches): the run
            # outlives many tokens whatever the machine's speed.
            "ocapi.latency.fixed_ms": "20",
            # Every request here is a write, so request n's fault depends on (seed, n) only:
            # with seed 2 the first 41 requests (the fewest a run can make: 40 batches and a
            # token) hold 4 drop-after-writes, 2 errors and 1 disconnect.
            "faults.seed": "2",
            "faults.error_rate": "0.06",
            "faults.error_statuses": "500,502,503",
            "faults.disconnect_rate": "0.03",
            "faults.drop_after_write_rate": "0.03",
        }
    )
    report, state = await run(settings, tmp_path, ocapi, concurrency)
    assert report.exit_code == 0, report.summary
    assert_all_succeeded_once(tmp_path, links, state)
    stats = state.stats.snapshot()
    faults = stats["faults_injected"]
    assert faults["total"] >= 5 and faults.get("drop_after_write", 0) > 0, faults
    assert report.summary["retries"] > 0
    assert stats["auth_failures"].get("ocapi", 0) > 0  # expired tokens were refused ...
    assert requests_to(state, TOKEN_ROUTE) >= 2  # ... and renewed


@pytest.mark.parametrize("batch", [False, True])
async def test_unknown_catalog_or_category_fails_once_with_its_fault(
    tmp_path: Path, batch: bool
) -> None:
    good = write_links(
        tmp_path,
        3,
        extra=[
            {"from": {"catalog": "no-such-catalog", "category": "category-0001"},
             "to": category(2, 1), "type": "other", "sequence": 1},
            {"from": category(1, 1), "to": {"catalog": "catalog-2", "category": "category-9999"},
             "type": "other", "sequence": 1},
            {"from": category(1, 1), "to": category(2, 2), "type": "related", "sequence": 1},
            {"from": category(1, 1), "to": "shirt-0", "type": "other"},
        ],
    )  # fmt: skip
    report, state = await run(sandbox_settings(), tmp_path, {"batch": batch})
    assert report.exit_code == 1
    by_line = {r["line"]: r for r in results(tmp_path)}
    assert len(by_line) == 7
    assert all(by_line[line]["status"] == "succeeded" for line in (1, 2, 3))
    for line, fault in ((4, "CatalogNotFoundException"), (5, "CategoryNotFoundException")):
        result = by_line[line]
        assert result["status"] == "failed" and result["attempts"] == 1, result
        assert result["error"]["type"] == fault and result["error"]["http_status"] == 404
    assert "No catalog with ID 'no-such-catalog'" in by_line[4]["error"]["message"]
    assert "No category with ID 'category-9999'" in by_line[5]["error"]["message"]
    for line, needle in ((6, "link type 'related'"), (7, "'to' must be an object")):
        result = by_line[line]
        assert result["status"] == "failed" and result["error"]["type"] == "InvalidInput"
        assert needle in result["error"]["message"] and result["error"]["http_status"] is None
    # Not retried, and the two local refusals never reached the server.
    assert requests_to(state, PUT_ROUTE, batch_part=batch) == 5
    assert requests_to(state, PUT_ROUTE, batch_part=not batch) == 0
    assert requests_to(state, BATCH_ROUTE) == (1 if batch else 0)
    assert stored(state) == expected(good)


async def test_refused_client_credentials_stop_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_links(tmp_path, 3)
    monkeypatch.setenv(CLIENT_SECRET, "wrong-secret-123")
    report, state = await run(sandbox_settings(), tmp_path)
    assert report.exit_code == 3
    assert "wrong-secret-123" not in (tmp_path / "results.jsonl").read_text()
    assert state.store.ocapi.link_count() == 0


@pytest.mark.parametrize("batch", [False, True])
async def test_prune_deletes_the_category_links_that_left_the_input(
    tmp_path: Path, batch: bool
) -> None:
    from bulksync.app.runner import RunOptions

    links = write_links(tmp_path, 60)
    async with running_sandbox(sandbox_settings()) as sandbox:
        config = config_for(tmp_path, sandbox.url, {"batch": batch}, concurrency=4)
        with anyio.fail_after(60):
            first = await run_job_async(config, quiet=True)
            assert first.exit_code == 0 and sandbox.state.store.ocapi.link_count() == 60
            kept = [x for i, x in enumerate(links) if i not in (5, 6)]
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in kept))
            second = await run_job_async(config, quiet=True, options=RunOptions(prune=True))
        assert second.exit_code == 0 and second.summary["deleted"] == 2
        assert sandbox.state.store.ocapi.link_count() == 58


@pytest.mark.parametrize("full", [False, True])
async def test_prune_works_with_listings_that_omit_the_optional_link(
    tmp_path: Path, full: bool
) -> None:
    from bulksync.sandbox.ocapi._store import now_ocapi

    links = write_links(tmp_path, 30)
    settings = sandbox_settings({"ocapi.list_link_property": "false"})
    async with running_sandbox(settings) as sandbox:
        config = config_for(tmp_path, sandbox.url, {}, concurrency=4)
        with anyio.fail_after(60):
            assert (await run_job_async(config, quiet=True)).exit_code == 0
            # Links bulksync never pushed, under a source category of the input: only the
            # listing knows them, and it gives no link URL, so their path comes from the ids.
            source = (links[0]["from"]["catalog"], links[0]["from"]["category"])
            foreign = sandbox.state.store.ocapi.links[source]
            for link_type in ("other", "up_selling"):
                record = {"position": 99.0, "last_modified": now_ocapi()}
                foreign[("catalog-2", f"category-{CATEGORIES:04d}", link_type)] = record
            kept = links[2:]
            (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in kept))
            options = RunOptions(prune=True, full=full, max_delete="10")
            report = await run_job_async(config, quiet=True, options=options)
        assert report.exit_code == 0, report.summary
        deleted = [r for r in results(tmp_path) if r.get("action") in ("deleted", "gone")]
        assert all(r["status"] == "succeeded" for r in deleted)
        # Without --full only what bulksync pushed is in scope; with it, the foreign two too.
        assert report.summary["deleted"] == (4 if full else 2)
        assert sandbox.state.store.ocapi.link_count() == 28 + (0 if full else 2)
        assert stored(sandbox.state).items() >= expected(kept).items()


async def test_a_negative_sequence_fails_naming_its_line_and_is_never_sent(tmp_path: Path) -> None:
    bad = {"from": category(1, 1), "to": category(2, 9), "type": "other", "sequence": -1}
    links = write_links(tmp_path, 5, extra=[bad])
    report, state = await run(sandbox_settings(), tmp_path)
    assert report.exit_code != 0
    [failed] = [r for r in results(tmp_path) if r["status"] == "failed"]
    assert failed["line"] == 6 and failed["error"]["type"] == "InvalidInput"
    assert failed["error"]["message"].startswith(f"{tmp_path / 'links.jsonl'}:6: 'sequence'")
    assert requests_to(state, PUT_ROUTE) == len(links)  # the bad line cost no request
    assert state.store.ocapi.link_count() == len(links)
    # Refused as it was read, like a malformed line: the engine never made a job of it.
    assert failed["attempts"] == 0
