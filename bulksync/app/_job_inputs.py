"""A job's inputs as the run reads them: which kinds, in which order, and a record stream of one
input for the passes besides the run's own (the live display's asset totals, the --full
listing's scopes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bulksync.app.config import Config
from bulksync.app.registry import target_spec
from bulksync.inputs.readers import read_records
from bulksync.spi._records import BadRecord, Kind, Record

__all__ = ["csv_delimiter", "input_records", "prune_kinds"]


def csv_delimiter(config: Config) -> str | None:
    # None: detected from the header line.
    return None if config.inputs.csv_delimiter == "auto" else config.inputs.csv_delimiter


def prune_kinds(config: Config) -> list[Kind]:
    kinds: list[Kind] = []
    if config.inputs.links is not None:
        kinds.append("link")  # links first: they point at assets
    if config.inputs.assets is not None:
        kinds.append("asset")
    return kinds


def input_records(config: Config, path: Path, kind: Kind) -> Iterator[Record | BadRecord]:
    """One pass over an input, read as the run reads it; the file closes when the pass ends."""
    stream = read_records(
        path,
        kind,
        media_root=config.inputs.media_root,
        fmt=config.inputs.format,
        csv_delimiter=csv_delimiter(config),
        shape=target_spec(config.target.kind).input_shape,
    )
    try:
        yield from stream
    finally:
        stream.close()
