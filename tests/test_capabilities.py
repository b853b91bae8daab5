"""The job against the connector's declared capabilities, before the first request: runs and
dry runs stop at once with exit 2 and one line; dry runs apply the connector's own checks."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulksync.app.cli import main

# Nothing listens on port 1: a request sent there would fail as unreachable, not as this.
CLOSED = "http://127.0.0.1:1"


def job(
    tmp_path: Path, kind: str, extra: str = "", links: list[dict[str, object]] | None = None
) -> Path:
    rows = links or [
        {
            "from": {"class": "product", "id": 1},
            "to": {"class": "product", "id": 2},
            "type": "parts",
        }
    ]
    (tmp_path / "links.jsonl").write_text(
        "".join(orjson.dumps(r).decode() + "\n" for r in rows), encoding="utf-8"
    )
    (tmp_path / "assets.jsonl").write_text('{"id": "a1", "remotePath": "https://x.test/a.png"}\n')
    base = f"{CLOSED}/v2" if kind == "propeller" else CLOSED
    config = tmp_path / "job.toml"
    config.write_text(
        f'[target]\nkind = "{kind}"\nbase_url = "{base}"\nallow_http = true\n'
        'client_id_env = "CAPS_ID"\nclient_secret_env = "CAPS_SECRET"\n'
        '[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n' + extra,
        encoding="utf-8",
    )
    return config


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPS_ID", "id")
    monkeypatch.setenv("CAPS_SECRET", "secret")


@pytest.mark.parametrize("dry_run", [False, True])
def test_prune_on_propeller_exits_2_before_the_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    config = job(tmp_path, "propeller", '[propeller]\nsubtype = "s"\n')
    args = ["run", "--config", str(config), "--prune"] + (["--dry-run"] if dry_run else [])
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "bulksync: --prune is not supported for propeller links: the API documents no delete "
        "for them; run without --prune\n"
    )
    assert "delete" not in captured.out  # no plan printed with deletions in it
    assert not (tmp_path / "results.jsonl").exists()  # nothing was synced first


@pytest.mark.parametrize("kind", ["ocapi", "propeller"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_assets_on_a_links_only_target_refuse_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, dry_run: bool
) -> None:
    config = job(tmp_path, kind)
    args = ["run", "--config", str(config), "--assets", str(tmp_path / "assets.jsonl")]
    assert main(args + (["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the {kind} target takes links only: remove the assets input" in err
    assert not (tmp_path / "results.jsonl").exists()


def test_prune_without_a_state_exits_2_before_the_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = job(tmp_path, "fake")
    assert main(["run", "--config", str(config), "--prune", "--no-state"]) == 2
    assert "--prune needs the state store" in capsys.readouterr().err
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_full_on_a_target_without_listing_stops_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    config = job(tmp_path, "fake")  # the fake target declares no listing
    args = ["run", "--config", str(config), "--full", *(["--dry-run"] if dry_run else [])]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "--full is not supported for fake links" in err[0] and "--no-state" in err[0]
    assert not (tmp_path / "results.jsonl").exists()  # nothing was sent, nothing answered


def test_dry_run_counts_links_propeller_refuses_as_invalid_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAPS_ID")  # a plan needs no secrets, and still applies the checks
    good = {"from": {"class": "product", "id": 1}, "to": {"class": "product", "id": 2}}
    rows = [
        {**good, "type": "parts", "subtype": "s"},
        {**good, "to": {"class": "product", "id": 3}, "type": "bogus", "subtype": "s"},
        {**good, "to": {"class": "product", "id": 4}, "type": "parts"},  # no subtype
    ]
    config = job(tmp_path, "propeller", links=rows)
    assert main(["run", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "links: 1 create, 0 update, 0 skip, 2 invalid, 0 delete" in out
    assert "links.jsonl:2: type 'bogus' is not one of accessories" in out
    assert "links.jsonl:3: Propeller requires a 'subtype'" in out


def test_dry_run_says_when_the_prune_guard_or_a_bad_line_would_stop_the_prune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[dict[str, object]] = [{"from": "a", "to": f"b{i}", "type": "t"} for i in range(10)]
    config = job(tmp_path, "fake", links=rows)
    assert main(["run", "--config", str(config)]) == 0
    job(tmp_path, "fake", links=rows[:7])  # three links gone from the input
    capsys.readouterr()

    assert main(["run", "--config", str(config), "--dry-run", "--prune"]) == 0
    out = capsys.readouterr().out
    assert "links: 0 create, 0 update, 7 skip, 0 invalid, 3 delete" in out
    assert "prune would stop before deleting anything: 3 of 10 items, above --max-delete 5%" in out

    args = ["run", "--config", str(config), "--dry-run", "--prune", "--max-delete", "3"]
    assert main(args) == 0
    assert "prune would" not in capsys.readouterr().out  # within the guard: it would delete

    with (tmp_path / "links.jsonl").open("a", encoding="utf-8") as extra:
        extra.write("{not json\n")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "prune would be skipped: 1 input line(s) could not be read" in out
    # The real run agrees with the plan: nothing deleted (exit 1: that line failed).
    assert main(["run", "--config", str(config), "--prune", "--max-delete", "3"]) == 1
    assert "prune skipped: 1 input line(s) could not be read" in capsys.readouterr().err


def test_a_stage_concurrency_key_that_names_no_stage_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.bin").write_bytes(b"x")
    (tmp_path / "a.jsonl").write_text('{"id": "a1", "file": "x.bin"}\n', encoding="utf-8")
    job = tmp_path / "job.toml"
    base = '[target]\nkind = "fake"\n[inputs]\nassets = "a.jsonl"\n[output]\nprogress = false\n'
    # A typo would silently leave the upload stage at the default worker count.
    job.write_text(base + "[limits]\nstage_concurrency = { uplaod = 2 }\n", encoding="utf-8")
    assert main(["run", "--config", str(job), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no stage 'uplaod'" in err and "did you mean 'upload'?" in err
    job.write_text(base + "[limits]\nstage_concurrency = { upload = 2 }\n", encoding="utf-8")
    assert main(["run", "--config", str(job)]) == 0
