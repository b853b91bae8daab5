"""`retry-failed` by identity against the sandbox: a line inserted above the failed one moves
it; the retry finds the failed item by its key, retries it alone, and says what moved."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
from sandbox_helpers import QUABLE, call, finish_bulksync, small_settings, start_bulksync

from bulksync.sandbox import QuableSettings, running_sandbox

ROOT = Path(__file__).resolve().parents[2]


def link(origin: str, target: str) -> str:
    return orjson.dumps({"from": origin, "to": target, "type": "t"}).decode()


async def bulksync(*args: str) -> tuple[int, str]:
    process = await start_bulksync(*args, env={"RETRY_TEST_TOKEN": "sandbox-token"})
    return await finish_bulksync(process, 60)


def results(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_retry_failed_after_an_inserted_line_retries_exactly_the_failed_item(
    tmp_path: Path,
) -> None:
    settings = small_settings(quable=QuableSettings(seed_documents=10))
    async with running_sandbox(settings) as sandbox:
        links = tmp_path / "links.jsonl"
        lines = [link("doc-00001", f"doc-0000{i}") for i in range(2, 5)]
        lines.insert(2, link("doc-00001", "doc-late"))  # line 3: the target is not there yet
        links.write_text("\n".join(lines) + "\n", encoding="utf-8")
        config = tmp_path / "job.toml"
        config.write_text(
            f'[target]\nkind = "quable"\nbase_url = "{sandbox.url}"\nallow_http = true\n'
            'token_env = "RETRY_TEST_TOKEN"\n[inputs]\nlinks = "links.jsonl"\n'
            "[limits]\nrate = [[100000, 1]]\n"
            '[output]\nresults = "results.jsonl"\nprogress = false\n',
            encoding="utf-8",
        )
        code, err = await bulksync("run", "--config", str(config))
        assert code == 1, err
        first = results(tmp_path / "results.jsonl")
        (failed,) = [r for r in first if r["status"] == "failed"]
        assert failed["line"] == 3 and failed["key"] == "doc-00001->doc-late:t"

        # The operator inserts a line at the top (the failed item moves to line 4, line 3
        # now holds an item that succeeded) and fixes the cause: the document now exists.
        links.write_text(
            link("doc-00005", "doc-00006") + "\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        async with aiohttp.ClientSession(sandbox.url) as http:
            document = {"id": "doc-late", "documentType": {"id": "product"}}
            status, _, _ = await call(http, "POST", "/api/documents", json=document, headers=QUABLE)
            assert status == 201

            code, err = await bulksync(
                "retry-failed", str(tmp_path / "results.jsonl"), "--config", str(config)
            )
            assert code == 0, err
            (retried,) = results(tmp_path / "results.retry.jsonl")
            assert retried["key"] == "doc-00001->doc-late:t"
            assert retried["line"] == 4 and retried["status"] == "succeeded"
            # The plan line (the retried item only), then one line for the one moved item.
            plan, moved = err.splitlines()
            assert plan.startswith("bulksync: plan: links 1 create;"), err
            assert "retry-failed" in moved, err
            assert "links.jsonl:3 now holds doc-00001->doc-00003:t (not retried)" in err
            assert "the failed doc-00001->doc-late:t moved to line 4 and is retried there" in err

            _, export, _ = await call(http, "GET", "/_sandbox/export")
        pushed = [(x["origin"], x["target"]) for x in export["quable"]["links"]]
        assert pushed.count(("doc-00001", "doc-late")) == 1
        assert ("doc-00005", "doc-00006") not in pushed  # the inserted line was not retried
        assert len(pushed) == 4
