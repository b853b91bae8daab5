"""Config mistakes integration engineers really make: each exits 2 with one line naming the
field, never a traceback, never the secret, and never a silent run against the fake target."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest

from bulksync.app import registry
from bulksync.app.cli import main
from bulksync.app.demo import DemoOptions, run_demo
from bulksync.spi._errors import ConfigError

TOKEN = "qbl_9f8e7d6c-5b4a-3210-fedc-ba9876543210"


def job(tmp_path: Path, body: str, *, kind: str = "fake") -> Path:
    (tmp_path / "links.jsonl").write_text('{"from": "a", "to": "b", "type": "t"}\n')
    head = f'[target]\nkind = "{kind}"\n' if kind else ""
    path = tmp_path / "job.toml"
    path.write_text(head + body + '\n[inputs]\nlinks = "links.jsonl"\n', encoding="utf-8")
    return path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr, and return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_run_without_a_config_does_not_silently_use_the_fake_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "links.jsonl").write_text('{"from": "a", "to": "b", "type": "t"}\n')
    links = str(tmp_path / "links.jsonl")
    line = refused(capsys, ["run", "--links", links, "--results", str(tmp_path / "r.jsonl")])
    assert line == (
        "bulksync: no config: give --config job.toml, or --kind fake to run against the "
        "built-in in-memory target"
    )
    assert not (tmp_path / "r.jsonl").exists()
    retry = tmp_path / "r.jsonl"
    retry.write_text("")
    refused(capsys, ["retry-failed", str(retry), "--links", links])
    # Chosen on purpose, the fake target runs.
    args = ["run", "--kind", "fake", "--links", links, "--results", str(tmp_path / "ok.jsonl")]
    assert main([*args, "--no-state", "--no-progress"]) == 0
    assert len((tmp_path / "ok.jsonl").read_bytes().splitlines()) == 1


def test_a_config_file_must_name_its_target_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, ["run", "--config", str(job(tmp_path, "", kind=""))])
    assert "[target] kind is required" in line


def test_a_string_false_is_not_true(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = job(tmp_path, '[state]\nenabled = "false"')
    line = refused(capsys, ["run", "--config", str(path)])
    assert line.endswith("job.toml: [state] enabled: expected true or false, got string")
    assert not list(tmp_path.glob("*.sqlite"))


def test_a_number_is_not_a_results_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["run", "--config", str(job(tmp_path, "[output]\nresults = 5"))])
    assert line.endswith("[output] results: expected a path (a string), got integer")
    assert not (tmp_path / "5").exists()


def test_a_port_number_for_base_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = job(tmp_path, 'base_url = 8080\ntoken_env = "QUABLE_TOKEN"', kind="quable")
    line = refused(capsys, ["run", "--config", str(path)])
    assert line.endswith("job.toml: [target] base_url: expected a string, got integer")


def test_a_number_for_token_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = job(tmp_path, 'base_url = "https://acme.quable.com"\ntoken_env = 42', kind="quable")
    line = refused(capsys, ["run", "--config", str(path)])
    assert line.endswith("[target] token_env: expected a string, got integer")


@pytest.mark.parametrize("key", ["token_env", "password_env", "client_secret_env"])
def test_a_secret_in_an_env_key_is_refused_and_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    body = f'base_url = "https://acme.quable.com"\n{key} = "{TOKEN}"'
    line = refused(capsys, ["run", "--config", str(job(tmp_path, body, kind="quable"))])
    assert line.endswith(
        f"[target] {key}: must name an environment variable (letters, digits, _), "
        "not hold the secret"
    )
    assert TOKEN not in line and TOKEN[:12] not in line


def test_an_unset_variable_is_named_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BULKSYNC_UNSET_TOKEN", raising=False)
    body = 'base_url = "https://acme.quable.com"\ntoken_env = "BULKSYNC_UNSET_TOKEN"'
    line = refused(capsys, ["run", "--config", str(job(tmp_path, body, kind="quable"))])
    assert line.endswith("Quable API token: environment variable BULKSYNC_UNSET_TOKEN is not set")


def test_a_table_for_another_target_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUABLE_TOKEN", "t")
    body = 'base_url = "https://acme.quable.com"\ntoken_env = "QUABLE_TOKEN"\n[ocapi]\nbatch = true'
    line = refused(capsys, ["run", "--config", str(job(tmp_path, body, kind="quable"))])
    assert line.endswith("[ocapi] is for kind 'ocapi'; this job's kind is 'quable'")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[limits]\nconcurency = 4",
            "unknown key 'concurency' in [limits]; did you mean 'concurrency'?",
        ),
        ("[limit]\nconcurrency = 4", "unknown config section [limit]; did you mean [limits]?"),
        (
            "[fake]\ntransient_rat = 0.1",
            "unknown key 'transient_rat' in [fake]; did you mean 'transient_rate'?",
        ),
        (
            '[inputs]\nformat = "jsnl"',
            "[inputs] format: expected one of auto, jsonl, csv, got 'jsnl'; did you mean 'jsonl'?",
        ),
    ],
)
def test_a_typo_gets_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    path = tmp_path / "job.toml"
    path.write_text('[target]\nkind = "fake"\n' + body + "\n", encoding="utf-8")
    (tmp_path / "links.jsonl").write_text("")
    if not body.startswith("[inputs]"):
        path.write_text(path.read_text() + '[inputs]\nlinks = "links.jsonl"\n')
    assert expected in refused(capsys, ["run", "--config", str(path)])


def test_a_kind_typo_names_the_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, ["run", "--config", str(job(tmp_path, "", kind="quabel"))])
    kinds = ", ".join(registry.kinds())
    assert f"[target] kind: expected one of {kinds}, got 'quabel'" in line
    assert "did you mean 'quable'?" in line


def test_wrong_types_in_a_connector_table_name_their_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = 'base_url = "https://shop.example.com"\nclient_id_env = "I"\nclient_secret_env = "S"'
    body += '\n[ocapi]\nbatch = "yes"'
    line = refused(capsys, ["run", "--config", str(job(tmp_path, body, kind="ocapi"))])
    assert line.endswith("[ocapi] batch: expected true or false, got string")


def test_a_rate_window_is_a_pair_of_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = '[limits]\nrate = [[6000, "600"]]'
    line = refused(capsys, ["run", "--config", str(job(tmp_path, body))])
    assert line.endswith("[limits] rate[0][1]: expected a number, got string")


@pytest.mark.parametrize("window", ["10/inf", "10/nan", "10/1e12", "10/0"])
def test_a_rate_window_of_no_sensible_length_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], window: str
) -> None:
    argv = ["run", "--config", str(job(tmp_path, "")), "--rate", window, "--dry-run"]
    line = refused(capsys, argv)
    assert "0 < seconds <= 31622400 (366 days)" in line


def test_a_config_built_in_code_is_checked_too() -> None:
    from bulksync.app.config import TargetConfig

    with pytest.raises(ConfigError, match=r"^\[target\] timeout_s: expected a number"):
        TargetConfig(timeout_s="60")  # type: ignore[arg-type]


def test_config_schema_describes_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    tables = {"target", "inputs", "limits", "output", "state", "budget", *registry.kinds()}
    assert {"fake", "quable", "propeller", "ocapi"} <= tables
    assert tables == set(schema["properties"])
    assert schema["additionalProperties"] is False
    target = schema["$defs"]["TargetConfig"]
    assert target["additionalProperties"] is False
    assert target["properties"]["kind"]["enum"] == registry.kinds()
    assert target["required"] == ["kind"]
    assert schema["$defs"]["OcapiOptions"]["properties"]["batch"]["type"] == "boolean"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.quable.com/", "https://acme.quable.com"),
        ("HTTPS://Acme.Quable.COM:443/api/", "https://acme.quable.com/api"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://LOCALHOST:8080/v2/", "http://localhost:8080/v2"),
        ("https://[::1]:443/", "https://[::1]"),
        ("https://host:8443/A/", "https://host:8443/A"),  # the path keeps its case
    ],
)
def test_base_url_is_normalised(url: str, expected: str) -> None:
    from bulksync.app.config import normalize_base_url

    assert normalize_base_url(url) == expected


def test_one_target_spelled_two_ways_shares_its_state(tmp_path: Path) -> None:
    """An item confirmed through one spelling of the URL is skipped through the other."""
    path = job(tmp_path, "[output]\nprogress = false")
    for url, skipped in (("HTTPS://Host.Example:443/", 0), ("https://host.example", 1)):
        assert main(["run", "--config", str(path), "--base-url", url]) == 0
        summary = orjson.loads((tmp_path / "results.summary.json").read_bytes())
        assert (summary["succeeded"], summary["skipped"]) == (1 - skipped, skipped), summary


def test_the_demo_removes_its_temporary_folder_unless_given_a_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKSYNC_DEMO_QUABLE_USER", "sandbox")
    monkeypatch.setenv("BULKSYNC_DEMO_QUABLE_PASSWORD", "sandbox")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    small = {"assets": 2, "remote_assets": 1, "links": 4, "documents": 3, "latency_ms": 0.0}
    assert run_demo(DemoOptions(**small)).exit_code == 0  # type: ignore[arg-type]
    assert list(temporary.iterdir()) == []
    kept = tmp_path / "kept"
    assert run_demo(DemoOptions(**small, workdir=kept)).exit_code == 0  # type: ignore[arg-type]
    assert len((kept / "results.jsonl").read_bytes().splitlines()) == 7


def test_an_unset_variable_whose_name_looks_like_a_token_is_not_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token made only of letters, digits and _ passes for a variable name: when no such
    variable is set, the message must not print it back."""
    token = "f3a9c0d1e2b47a8c9d0e1f2a3b4c5d6e"
    monkeypatch.delenv(token, raising=False)
    config = tmp_path / "job.toml"
    config.write_text(
        '[target]\nkind = "quable"\nbase_url = "https://x.example.com"\n'
        f'token_env = "{token}"\n[inputs]\nlinks = "links.jsonl"\n'
    )
    (tmp_path / "links.jsonl").write_text('{"from": "a", "to": "b", "type": "t"}\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert token not in err
    assert "is not set" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("table", "line", "words"),
    [
        ("target", "timeout_s = inf", "[target] timeout_s: Input should be a finite number"),
        ("limits", "stall_s = inf", "[limits] stall_s: Input should be a finite number"),
        ("fake", "transient_rate = 2.0", "[fake] transient_rate: must be at most 1"),
        ("fake", "latency_s = -1.0", "[fake] latency_s: must be at least 0"),
    ],
)
def test_a_value_that_would_switch_a_guard_off_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, line: str, words: str
) -> None:
    config = tmp_path / "job.toml"
    target = '[target]\nkind = "fake"\n' + (line + "\n" if table == "target" else "")
    other = "" if table == "target" else f"[{table}]\n{line}\n"
    config.write_text(target + other + '[inputs]\nlinks = "links.jsonl"\n')
    (tmp_path / "links.jsonl").write_text('{"from": "a", "to": "b", "type": "t"}\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
