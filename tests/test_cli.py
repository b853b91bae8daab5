"""The command line end to end: config, exit codes, results, summary, report, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bulksync.app.cli import main

SECRET = "s3cr3t-token-value-0123456789"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(body, encoding="utf-8")
    return path


def fake_config(
    tmp_path: Path, *, links: str = "links.jsonl", fake: str = "", extra: str = ""
) -> Path:
    return config_file(
        tmp_path,
        f"""
[target]
kind = "fake"
{extra}
[inputs]
links = "{links}"
[limits]
concurrency = 4
max_elapsed_s = 30
[output]
results = "out/results.jsonl"
progress = false
[fake]
{fake}
""",
    )


def results_of(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_malformed_corpus_fails_each_bad_line_and_runs_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "links.jsonl").write_bytes(
        b'{"from": "a", "to": "b", "type": "t"}\n'
        b'{"from": "a", "to": \n'  # invalid JSON
        b'{"from": "a", "to": "c", "type": "t"}\n'
        b'{"from": "a", "to": "\xff\xfe", "type": "t"}\n'  # invalid UTF-8
        b'{"from": "a", "type": "t"}\n'  # missing field
        b'{"from": "a", "to": "d", "type": 7}\n'  # mistyped field
        b"[1, 2]\n"  # not an object
        b'{"from": "a", "to": "e", "type": "t", "sequence": 2}\n'
    )
    code = main(["run", "--config", str(fake_config(tmp_path))])
    assert code == 1
    by_line = {r["line"]: r for r in results_of(tmp_path)}
    assert sorted(by_line) == list(range(1, 9))
    for line in (1, 3, 8):
        assert by_line[line]["status"] == "succeeded"
    for line in (2, 4, 5, 6, 7):
        assert by_line[line]["status"] == "failed"
        message = by_line[line]["error"]["message"]  # type: ignore[index]
        assert f"links.jsonl:{line}" in message
    assert "missing field 'to'" in by_line[5]["error"]["message"]  # type: ignore[index]
    out = capsys.readouterr().out
    assert "succeeded            3" in out and "failed               5" in out
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert summary["total"] == 8 and summary["failed"] == 5 and summary["messages"] == ["Completed"]
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99"}


def test_flags_override_the_config(tmp_path: Path) -> None:
    write_lines(tmp_path / "other.jsonl", ['{"from": "x", "to": "y", "type": "t"}'])
    config = fake_config(tmp_path, links="absent.jsonl")
    results = tmp_path / "elsewhere.jsonl"
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--links",
            str(tmp_path / "other.jsonl"),
            "--results",
            str(results),
            "--rate",
            "50/1",
            "--rate",
            "1000/60",
            "--concurrency",
            "2",
        ]
    )
    assert code == 0
    assert [orjson.loads(x)["key"] for x in results.read_bytes().splitlines()] == ["x->y:t"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[target]\nkind = 'nope'\n[inputs]\nlinks = 'l.jsonl'\n",
            "[target] kind: expected one of ",  # then the installed kinds, and the value
        ),
        ("[target]\nkind = 'fake'\nbogus = 1\n", "unknown key 'bogus' in [target]"),
        (
            "[target]\nkind='fake'\n[limits]\nrate = [[0, 10]]\n[inputs]\nlinks = 'l.jsonl'\n",
            "[limits] rate: every window",
        ),
        ("[target]\nkind='fake'\n[inputs]\nlinks = 'missing.jsonl'\n", "missing.jsonl"),
        ("this is = not toml [", "not valid TOML"),
        ("[target]\nkind='fake'\n", "no input"),
    ],
)
def test_config_and_input_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    code = main(["run", "--config", str(config_file(tmp_path, body))])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_plain_http_is_refused_except_on_loopback() -> None:
    from bulksync.app.config import check_base_url
    from bulksync.spi._errors import ConfigError

    for url in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://a.test"):
        check_base_url(url, allow_http=False)
    for url in ("http://acme.quable.com", "http://10.0.0.1", "ftp://a.test", ""):
        with pytest.raises(ConfigError):
            check_base_url(url, allow_http=False)
    check_base_url("http://acme.test", allow_http=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter22@acme.quable.com",
        "https://user@acme.quable.com/api",
        "http://user:hunter22@127.0.0.1:8080",
        "https://:hunter22@acme.test",
        # urlsplit raises on these (a broken IPv6 bracket): the password must not be echoed
        "https://user:hunter22@[::1/api",
        "https://user:hunter22@[::1",
    ],
)
def test_a_url_with_userinfo_is_refused_without_repeating_it(url: str) -> None:
    from bulksync.app.config import check_base_url
    from bulksync.spi._errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        check_base_url(url, allow_http=True)
    message = str(caught.value)
    assert message.startswith("base_url must not carry a user name or password")
    assert "hunter22" not in message and "\n" not in message
    check_base_url("https://acme.test/a@b", allow_http=False)  # an @ in the path is no userinfo


def test_an_ocapi_token_url_with_userinfo_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(tmp_path / "links.jsonl", [])
    monkeypatch.setenv("OCAPI_ID", "id-1")
    monkeypatch.setenv("OCAPI_SECRET", "secret-1")
    for token_url in ("https://id:hunter22@account.example.com/token", "//id:hunter22@x/token"):
        config = config_file(
            tmp_path,
            f"""
[target]
kind = "ocapi"
base_url = "https://shop.example.com"
client_id_env = "OCAPI_ID"
client_secret_env = "OCAPI_SECRET"
[inputs]
links = "links.jsonl"
[ocapi]
token_url = "{token_url}"
""",
        )
        assert main(["run", "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "[ocapi] token_url must not carry a user name or password" in err
        assert "hunter22" not in err and len(err.strip().splitlines()) == 1


def test_a_secret_never_reaches_output_results_or_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake echoes the Authorization header in its errors, as careless APIs do."""
    write_lines(
        tmp_path / "links.jsonl",
        [orjson.dumps({"from": "a", "to": f"b{i}", "type": "t"}).decode() for i in range(40)],
    )
    monkeypatch.setenv("FAKE_TOKEN", SECRET)
    config = fake_config(
        tmp_path,
        extra='token_env = "FAKE_TOKEN"',
        fake=(
            f'static_token = "{SECRET}"\necho_auth = true\n'
            "permanent_rate = 0.5\ntransient_rate = 0.3\nseed = 3"
        ),
    )
    code = main(["-v", "run", "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 1
    results = (tmp_path / "out" / "results.jsonl").read_text()
    assert "Authorization: Bearer ***" in results  # the echo happened, and was masked
    for text in (
        captured.out,
        captured.err,
        results,
        (tmp_path / "out" / "results.summary.json").read_text(),
    ):
        assert SECRET not in text


def test_refused_token_exits_3_without_leaking_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(tmp_path / "links.jsonl", ['{"from": "a", "to": "b", "type": "t"}'])
    monkeypatch.setenv("FAKE_TOKEN", SECRET)
    config = fake_config(
        tmp_path,
        extra='token_env = "FAKE_TOKEN"',
        fake='static_token = "another"\necho_auth = true',
    )
    code = main(["run", "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 3
    assert "API token (401)" in captured.err
    results = (tmp_path / "out" / "results.jsonl").read_text()
    assert len(results.splitlines()) == 1  # the item that was read still has its line
    for text in (captured.out, captured.err, results):
        assert SECRET not in text


def test_missing_secret_variable_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(tmp_path / "links.jsonl", [])
    monkeypatch.delenv("FAKE_TOKEN", raising=False)
    code = main(["run", "--config", str(fake_config(tmp_path, extra='token_env = "FAKE_TOKEN"'))])
    assert code == 2
    assert "FAKE_TOKEN is not set" in capsys.readouterr().err


def test_report_prints_the_bulk_response_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(
        tmp_path / "links.jsonl",
        [
            '{"from": "a", "to": "b", "type": "t"}',
            "not json",
            '{"from": "a", "to": "c", "type": "t"}',
        ],
    )
    assert main(["run", "--config", str(fake_config(tmp_path))]) == 1
    capsys.readouterr()
    results = tmp_path / "out" / "results.jsonl"
    assert main(["report", str(results), "--json"]) == 0
    everything = orjson.loads(capsys.readouterr().out)
    assert everything["total"] == 3 and len(everything["data"]) == 3
    assert everything["messages"] == ["Completed"]
    assert main(["report", str(results), "--json", "--failed"]) == 0
    failed = orjson.loads(capsys.readouterr().out)
    assert failed["total"] == 1 and failed["data"][0]["line"] == 2
    assert failed["data"][0]["success"] is False


def test_report_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "results file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["report", "--help"], ["demo", "--help"]]
)
def test_help_and_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: bulksync" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("bulksync 0.")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_exits_130_with_finished_items_and_summary(tmp_path: Path, signum: int) -> None:
    write_lines(
        tmp_path / "links.jsonl",
        [orjson.dumps({"from": "a", "to": f"b{i}", "type": "t"}).decode() for i in range(20_000)],
    )
    config = fake_config(tmp_path, fake="latency_s = 0.02")
    results = tmp_path / "out" / "results.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if results.exists() and len(results.read_bytes().splitlines()) >= 20:
                break
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err.decode()
    lines = [orjson.loads(x) for x in results.read_bytes().splitlines()]
    assert 20 <= len(lines) < 20_000
    assert len({r["line"] for r in lines}) == len(lines)
    assert all(r["status"] == "succeeded" for r in lines)
    summary = orjson.loads((tmp_path / "out" / "results.summary.json").read_bytes())
    assert summary["messages"] == ["Interrupted"]
    assert summary["total"] == len(lines)
    assert signal.Signals(signum).name.encode() in err


def test_bulksync_sandbox_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bulksync", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode().strip()
        assert first.startswith("sandbox listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1]
        import urllib.request

        with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=5) as response:
            assert response.status == 200
            assert "requests" in orjson.loads(response.read())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait(timeout=5)


def test_a_fake_target_url_with_a_password_is_refused_too(tmp_path: Path) -> None:
    from bulksync.app.config import load_config
    from bulksync.spi._errors import ConfigError

    (tmp_path / "a.jsonl").write_text("", encoding="utf-8")
    overrides = {
        "target.kind": "fake",
        "target.base_url": "https://u:hunter22@x.test",
        "inputs.assets": str(tmp_path / "a.jsonl"),
    }
    # The state would keep "fake https://u:hunter22@x.test" as the name of its target.
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize("kind", ["ocapi", "propeller"])
def test_a_token_url_urlsplit_cannot_read_is_a_config_error_not_a_crash(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(tmp_path / "links.jsonl", [])
    monkeypatch.setenv("TOKEN_URL_ID", "id-1")
    monkeypatch.setenv("TOKEN_URL_SECRET", "secret-1")
    base = "https://shop.example.com" + ("/v2" if kind == "propeller" else "")
    config = config_file(
        tmp_path,
        f"""
[target]
kind = "{kind}"
base_url = "{base}"
client_id_env = "TOKEN_URL_ID"
client_secret_env = "TOKEN_URL_SECRET"
[inputs]
links = "links.jsonl"
[{kind}]
token_url = "https://[::1/token"
""",
    )
    # urlsplit raises ValueError on the broken bracket: exit 2 with the key, not exit 5.
    assert main(["run", "--config", str(config), "--no-progress"]) == 2
    assert f"[{kind}] token_url is not a valid URL" in capsys.readouterr().err
