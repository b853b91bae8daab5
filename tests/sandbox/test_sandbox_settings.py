"""Settings: defaults, TOML loading, textual overrides, derived flags, the example file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulksync.sandbox import RateWindow, SandboxSettings, SettingsError
from bulksync.sandbox._cli import parse
from bulksync.sandbox._settings import knobs

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "sandbox.example.toml"


def test_defaults_are_the_documented_credentials_and_limits():
    s = SandboxSettings()
    assert s.quable.tokens == ("sandbox-token",)
    assert (s.quable.username, s.quable.password) == ("sandbox", "sandbox")
    assert (s.propeller.client_id, s.propeller.client_secret) == ("sandbox", "sandbox")
    assert (s.ocapi.client_id, s.ocapi.client_secret) == ("sandbox", "sandbox")
    assert s.propeller.max_items_per_call == 100 and s.ocapi.max_batch_parts == 50
    assert s.ocapi.max_body_bytes == 5 * 1024 * 1024
    assert (s.ocapi.max_count, s.ocapi.max_start) == (200, 999)
    assert s.ocapi.token_lifetime_s == 1799.0


def test_example_file_sets_every_knob_to_its_default():
    assert SandboxSettings.from_toml(EXAMPLE) == SandboxSettings()
    text = EXAMPLE.read_text(encoding="utf-8")
    for knob in knobs():
        table, _, name = knob.path.rpartition(".")
        assert f"\n{name} = " in text, knob.path
        if table:
            assert f"[{table}]" in text, knob.path


def test_toml_layout_windows_and_sandbox_table(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text(
        """
[sandbox]
time_scale = 50
[sandbox.quable]
seed_documents = 3
documents_file = "docs.jsonl"
[sandbox.quable.rate_limit]
windows = [{limit = 10, seconds = 1}, [20, 2.5]]
[sandbox.faults]
seed = 9
apis = ["ocapi"]
""",
        encoding="utf-8",
    )
    s = SandboxSettings.from_toml(path)
    assert s.time_scale == 50.0 and s.quable.seed_documents == 3
    assert s.quable.documents_file == str(tmp_path / "docs.jsonl")
    assert s.quable.rate_limit.windows == (RateWindow(10, 1.0), RateWindow(20, 2.5))
    assert s.faults.seed == 9 and s.faults.apis == ("ocapi",)
    assert s.scaled(600) == 12.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[quable]\nbogus = 1\n", "unknown knob quable.'bogus'"),
        ("[quable]\nseed_documents = '3'\n", "quable.seed_documents"),
        ("[quable]\nlatency = 3\n", "quable.latency"),
        ("time_scale = 0\n", "time_scale"),
        ("[faults]\nerror_rate = 0.7\ndisconnect_rate = 0.5\n", "sum to at most 1"),
        ("[faults]\napis = ['shopify']\n", "unknown API"),
        ("[quable]\nduplicate_links = 'merge'\n", "duplicate_links"),
        ("[quable.rate_limit]\nwindows = [[0, 1]]\n", "positive"),
        ("not toml = = 1", "s.toml"),
    ],
)
def test_bad_files_name_the_knob(tmp_path: Path, text: str, message: str):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        SandboxSettings.from_toml(path)
    assert message in str(caught.value)


def test_textual_overrides():
    s = SandboxSettings().with_overrides(
        {
            "quable.rate_limit.windows": "off",
            "propeller.rate_limit.windows": "100/60,1000/3600",
            "quable.rate_limit.retry_after": "no",
            "faults.error_statuses": "503",
            "quable.tokens": "a,b",
            "time_scale": "10",
        }
    )
    assert s.quable.rate_limit.windows == ()
    assert s.propeller.rate_limit.windows == (RateWindow(100, 60.0), RateWindow(1000, 3600.0))
    assert s.quable.rate_limit.retry_after is False
    assert s.faults.error_statuses == (503,) and s.quable.tokens == ("a", "b")
    assert s.time_scale == 10.0
    with pytest.raises(SettingsError, match="unknown knob"):
        SandboxSettings().with_overrides({"quable.nope": "1"})
    with pytest.raises(SettingsError, match=r"quable\.rate_limit\.retry_after"):
        SandboxSettings().with_overrides({"quable.rate_limit.retry_after": "maybe"})


def test_every_knob_has_a_flag_and_flags_override_the_file(tmp_path: Path):
    flags = [k.flag for k in knobs()]
    assert len(flags) == len(set(flags))
    assert "--quable-latency-fixed-ms" in flags and "--faults-drop-after-write-rate" in flags
    path = tmp_path / "s.toml"
    path.write_text("[quable]\nseed_documents = 3\n[faults]\nseed = 4\n", encoding="utf-8")
    options = parse(
        [
            "--config",
            str(path),
            "--quable-seed-documents",
            "7",
            "--log-requests",
            "--host",
            "127.0.0.1",
            "--port",
            "8123",
        ]
    )
    assert options.settings.quable.seed_documents == 7 and options.settings.faults.seed == 4
    assert options.settings.log_requests is True
    assert (options.host, options.port) == ("127.0.0.1", 8123)
