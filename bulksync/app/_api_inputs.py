"""Inputs given to the Python API as rows (any iterable or async iterable of dicts) rather
than files: written as JSON lines to a private folder, then read by the run's own reader.

Why a file and not a stream into the engine: the run reads its inputs more than once (the
plan line, the progress totals, prune's view of what the input holds), and every check a
file line gets (shape, fields, duplicates) then applies to a dict unchanged. Memory stays
flat whatever the row count; row ``i`` is line ``i + 1`` of its result.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TypeAlias

from bulksync.app.config import Config
from bulksync.inputs._objects import spilled_line

# Dicts, or record objects (dataclasses, attrs, named tuples, pydantic models).
Rows: TypeAlias = Iterable[Any] | AsyncIterable[Any]
Source: TypeAlias = str | os.PathLike[str] | Rows

__all__ = ["Rows", "Source", "check_sources", "with_inputs"]


def check_sources(**sources: object) -> None:
    """Each a path, rows or None: anything else is the caller's mistake, said at the call (a
    dict or bytes would iterate as its keys or its bytes)."""
    for name, source in sources.items():
        if source is None or isinstance(source, str | os.PathLike):
            continue
        if isinstance(source, bytes | bytearray | Mapping) or not isinstance(
            source, Iterable | AsyncIterable
        ):
            raise TypeError(
                f"{name}= takes a path or an iterable of rows (dicts or record objects), "
                f"not {type(source).__name__}"
            )


async def with_inputs(
    config: Config, stack: ExitStack, assets: Source | None, links: Source | None
) -> Config:
    """``config`` with these inputs in place of its own (None: keep the config's)."""
    check_sources(assets=assets, links=links)
    if assets is None and links is None:
        return config
    changed = config.model_copy(deep=True)
    inputs = changed.inputs
    for kind, source in (("assets", assets), ("links", links)):
        if source is None:
            continue
        if isinstance(source, str | os.PathLike):
            setattr(inputs, kind, _absolute(source))
            continue
        folder = Path(stack.enter_context(TemporaryDirectory(prefix="bulksync-rows-")))
        setattr(inputs, kind, await _spill(source, folder / f"{kind}.jsonl"))
        # A relative asset `file` resolves against the caller's folder, not the private one.
        inputs.media_root = inputs.media_root or Path.cwd()
        if inputs.format == "csv":  # the rows' file is JSON lines; a .csv file stays CSV
            inputs.format = "auto"
    return changed


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))  # as the CLI's --links: against the current folder


async def _spill(rows: Rows, path: Path) -> Path:
    with path.open("wb") as out:
        if isinstance(rows, AsyncIterable):
            async for row in rows:
                out.write(spilled_line(row))
        else:
            for row in rows:
                out.write(spilled_line(row))
    return path
