"""Target kinds come from the ``bulksync.targets`` entry points: a package installed beside
bulksync adds one with no edit to the core, and the job is checked against its spec.

The plug-in here is installed for real, the way pip leaves one: a package and a
``*.dist-info`` folder with an ``entry_points.txt``, on ``sys.path``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bulksync.app import registry
from bulksync.app.cli import main
from bulksync.spi import ConfigError, TargetSpec

PLUGIN = """
from dataclasses import replace

from bulksync.connectors.fake import FakeConnector, FakeServer
from bulksync.spi import Capabilities, Options, TargetSpec


class TinyOptions(Options):
    table = "tiny"
    note: str = ""


class TinyConnector(FakeConnector):
    name = "tiny"
    capabilities = Capabilities(kinds=frozenset({"link"}))  # no prune, no listing


SERVER = FakeServer()  # read by the test: how many requests reached the target
SPEC = TargetSpec(
    name="tiny",
    options=TinyOptions,
    connector=lambda options: TinyConnector(),
    capabilities=TinyConnector.capabilities,
    transport=lambda options: SERVER,
    needs_base_url=False,
)


def _fails(options):
    raise RuntimeError("no such board")


# Three plug-in mistakes: a factory that raises, a connector claiming a prune its spec does
# not declare, options that are no model.
RAISING = replace(SPEC, name="raising", connector=_fails)
CLAIMING = replace(
    SPEC,
    name="claiming",
    connector=lambda options: type(
        "Claiming", (TinyConnector,), {"capabilities": Capabilities(prune=frozenset({"link"}))}
    )(),
)
UNTYPED = replace(SPEC, name="untyped", options=dict)
NOCREDS = replace(SPEC, name="nocreds", credentials=())
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    site = tmp_path / "site"
    (site / "tinytarget").mkdir(parents=True)
    (site / "tinytarget" / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "tinytarget-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinytarget\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[bulksync.targets]\ntiny = tinytarget:SPEC\nbroken = tinytarget:NOPE\n"
        "raising = tinytarget:RAISING\nclaiming = tinytarget:CLAIMING\n"
        "untyped = tinytarget:UNTYPED\nnocreds = tinytarget:NOCREDS\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry.target_spec.cache_clear()
    try:
        import tinytarget  # type: ignore[import-not-found]

        yield tinytarget
    finally:
        registry.target_spec.cache_clear()
        sys.modules.pop("tinytarget", None)


def job(tmp_path: Path, kind: str, links: int = 3) -> Path:
    rows = [{"from": "doc", "to": f"p{i}", "type": "t"} for i in range(links)]
    (tmp_path / "links.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = tmp_path / "job.toml"
    config.write_text(
        f'[target]\nkind = "{kind}"\n[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


def test_the_built_in_kinds_are_entry_points() -> None:
    # Other installed plug-ins (the example "notes") may be listed too.
    assert {"fake", "ocapi", "propeller", "quable"} <= set(registry.kinds())
    for kind in registry.kinds():
        spec = registry.target_spec(kind)
        assert isinstance(spec, TargetSpec) and spec.name == kind
        # What the job is checked against is what the connector carries out.
        declared = spec.connector(spec.options()).capabilities
        assert (declared.kinds, declared.prune, declared.listing) == (
            spec.capabilities.kinds,
            spec.capabilities.prune,
            spec.capabilities.listing,
        )


def test_an_unknown_kind_names_the_installed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        registry.target_spec("quabel")
    assert str(caught.value) == (
        f"unknown target kind 'quabel' (available: {', '.join(registry.kinds())})"
    )


def test_an_installed_plugin_adds_a_kind_and_its_table(
    plugin: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "tiny" in registry.kinds()
    config = job(tmp_path, "tiny")
    config.write_text(config.read_text() + '[tiny]\nnote = "x"\n', encoding="utf-8")
    assert main(["run", "--config", str(config)]) == 0
    assert plugin.SERVER.counters.requests == 3  # type: ignore[attr-defined]
    assert main(["config-schema"]) == 0
    captured = capsys.readouterr()
    schema = orjson.loads(captured.out[captured.out.index("{") :])
    assert "tiny" in schema["properties"] and "broken" not in schema["properties"]
    # The broken plug-in is named, and costs the schema of the others nothing.
    assert "target kind 'broken' could not be loaded" in captured.err
    assert "tiny" in schema["$defs"]["TargetConfig"]["properties"]["kind"]["enum"]


def test_a_plugins_table_is_checked_by_its_options(
    plugin: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = job(tmp_path, "tiny")
    config.write_text(config.read_text() + "[tiny]\nnot_a_key = 1\n", encoding="utf-8")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'not_a_key' in [tiny]" in err


def test_prune_on_a_spec_without_prune_fails_first_with_one_line_and_no_request(
    plugin: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = job(tmp_path, "tiny")
    assert main(["run", "--config", str(config), "--prune"]) == 2
    assert capsys.readouterr().err == (
        "bulksync: --prune is not supported for tiny links: the API documents no delete "
        "for them; run without --prune\n"
    )
    assert plugin.SERVER.counters.requests == 0  # type: ignore[attr-defined]
    assert not (tmp_path / "results.jsonl").exists()


def test_a_plugin_that_fails_to_load_is_one_line(
    plugin: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(job(tmp_path, "broken"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "target kind 'broken' could not be loaded from tinytarget:NOPE" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("raising", "target kind 'raising': its connector failed to build: no such board"),
        ("claiming", "target kind 'claiming': its connector's capabilities differ from its"),
        ("untyped", "target kind 'untyped': the spec's options is no pydantic model"),
        ("nocreds", "target kind 'nocreds': the spec accepts no credentials"),
    ],
)
def test_a_plugins_own_mistake_is_named_in_one_line_before_any_request(
    plugin: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    # Not "internal error" (exit 5, a bug of bulksync's): the plug-in is named, exit 2.
    assert main(["run", "--config", str(job(tmp_path, kind)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert plugin.SERVER.counters.requests == 0  # type: ignore[attr-defined]


def test_kind_on_the_command_line_takes_an_installed_plugins_kind(
    plugin: object, tmp_path: Path
) -> None:
    job(tmp_path, "tiny")  # writes links.jsonl
    results = tmp_path / "cli-results.jsonl"
    args = ["run", "--kind", "tiny", "--links", str(tmp_path / "links.jsonl")]
    assert main([*args, "--results", str(results), "--no-state"]) == 0
    assert len(results.read_bytes().splitlines()) == 3
