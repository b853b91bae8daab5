"""A job's inputs as the run reads them: which kinds, in which order, and a record stream of one
input for the passes besides the run's own (the live display's asset totals, the --full
listing's scopes)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from bulksync.app.config import Config
from bulksync.app.registry import target_spec
from bulksync.inputs.readers import RecordStream, read_records
from bulksync.spi._records import BadRecord, Kind, Record

__all__ = ["csv_delimiter", "input_records", "open_records", "prune_kinds"]


def csv_delimiter(config: Config) -> str | None:
    # None: detected from the header line.
    return None if config.inputs.csv_delimiter == "auto" else config.inputs.csv_delimiter


def prune_kinds(config: Config, given: Collection[Kind] = ()) -> list[Kind]:
    """The job's kinds, links first (they point at assets): from its files, and ``given``
    (the kinds the Python API streams from code)."""
    kinds: list[Kind] = []
    if config.inputs.links is not None or "link" in given:
        kinds.append("link")
    if config.inputs.assets is not None or "asset" in given:
        kinds.append("asset")
    return kinds


def open_records(
    config: Config, path: Path, kind: Kind, strict_fields: bool = False
) -> RecordStream:
    """An input file's records, read as the run reads them; raises InputFileError now for a
    file that cannot be opened."""
    return read_records(
        path,
        kind,
        media_root=config.inputs.media_root,
        fmt=config.inputs.format,
        strict_fields=strict_fields,
        csv_delimiter=csv_delimiter(config),
        shape=target_spec(config.target.kind).input_shape,
    )


def input_records(config: Config, path: Path, kind: Kind) -> Iterator[Record | BadRecord]:
    """One pass over an input, read as the run reads it; the file closes when the pass ends."""
    stream = open_records(config, path, kind)
    try:
        yield from stream
    finally:
        stream.close()
