"""The event loop a run uses: uvloop when installed, asyncio when told (``--loop``, env)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import pytest

from bulksync.app import _loop
from bulksync.app.cli import main
from bulksync.spi._errors import ConfigError

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_loop.ENV, raising=False)
    _loop.choose(None)
    yield
    _loop.choose(None)


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_when_told_on_the_command_line() -> None:
    _loop.choose("asyncio")
    assert _loop.loop_name() == "asyncio"
    assert _loop.run(_loop_module).startswith("asyncio")


def test_asyncio_when_told_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_loop.ENV, "asyncio")
    assert _loop.run(_loop_module).startswith("asyncio")


def test_the_command_line_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_loop.ENV, "uvloop")
    _loop.choose("asyncio")
    assert _loop.loop_name() == "asyncio"


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (bulksync[fast])")
def test_uvloop_by_default_when_installed() -> None:
    assert _loop.loop_name() == "uvloop"
    assert _loop.run(_loop_module).startswith("uvloop")


@pytest.mark.skipif(HAS_UVLOOP, reason="uvloop is installed")
def test_asking_for_uvloop_without_it_is_a_config_error() -> None:
    _loop.choose("uvloop")
    with pytest.raises(ConfigError, match="bulksync\\[fast\\]"):
        _loop.loop_name()


def test_an_unknown_loop_in_the_environment_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_loop.ENV, "trio")
    with pytest.raises(ConfigError, match=_loop.ENV):
        _loop.choice()


def test_an_unknown_loop_on_the_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--loop", "trio", "runs"])
    assert exit_info.value.code == 2
    assert "--loop" in capsys.readouterr().err
