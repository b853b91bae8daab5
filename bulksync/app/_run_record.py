"""The end of a run's record: its summary made whole (who, what, when, how it ended), the
failures file, the HTML report, and the configured results path brought up to date."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from bulksync._version import __version__
from bulksync.app._failures import FailureInput, write_failures
from bulksync.app._merge_summary import iso
from bulksync.app._run_folder import RunFolder, refresh_copy, utc_now
from bulksync.app._telemetry import run_figures
from bulksync.app.config import Config
from bulksync.app.progress import note
from bulksync.app.registry import target_spec
from bulksync.engine._engine import Engine
from bulksync.spi._errors import BulksyncError
from bulksync.spi._records import Kind
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import summary_path, write_summary


def runs_dir_of(config: Config) -> Path:
    """``[output] runs_dir``; a relative one (a config built in code) sits beside the results."""
    path = config.output.runs_dir
    return path if path.is_absolute() else config.output.results.parent / path


def config_hash(config: Config) -> str:
    """Which settings produced a run: the same job file and flags give the same hash. Secrets
    are never in the config (only the names of the variables that hold them)."""
    settings = config.model_dump(mode="json")
    digest = hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()[:12]


def job_hash(config: Config) -> str:
    """Which job a run belongs to: :func:`config_hash` without the results path, the one
    setting ``--shard I/N`` changes (each shard writes its own results file), so the shards of
    one job file share it and ``bulksync runs merge`` knows them for one job."""
    settings = config.model_dump(mode="json")
    settings.get("output", {}).pop("results", None)
    digest = hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()[:12]


def complete_summary(
    summary: dict[str, Any], folder: RunFolder, config: Config, engine: Engine, exit_code: int
) -> dict[str, Any]:
    summary.update(run_identity(folder, config, exit_code), **run_figures(engine))
    summary["latency_histogram"] = engine.stats.latency.buckets()
    return summary


def run_identity(folder: RunFolder, config: Config, exit_code: int) -> dict[str, Any]:
    """What produced a run and when: the summary fields every command's run folder has."""
    return {
        "run_id": folder.run_id,
        "version": __version__,
        "config_hash": config_hash(config),
        "job_hash": job_hash(config),
        "target": {"kind": config.target.kind, "base_url": config.target.base_url},
        "started_at": iso(folder.started_at),
        "ended_at": iso(utc_now()),
        "exit_code": exit_code,
    }


def finish_record(folder: RunFolder, config: Config, summary: dict[str, Any]) -> list[str]:
    """Write what the run folder holds at the end; returns lines naming the files written.

    Each file after the summary is a convenience: a failure to write it is said in one line,
    never a lost run (the results and the summary are already on disk)."""
    write_summary(folder.summary, summary)
    write_summary(summary_path(config.output.results), summary)
    refresh_copy(folder.results, config.output.results)
    written = [f"run: {folder.path}"]
    if summary.get("failed"):
        written.extend(_failures(folder, config))
    try:
        from bulksync.app._html_report import write_report_html

        written.append(f"report: {write_report_html(folder.path)}")
    except Exception as exc:  # a chart that cannot be drawn must not fail a finished run
        note(f"bulksync: the HTML report could not be written: {redacted_excerpt(str(exc), 300)}")
    return written


def _failures(folder: RunFolder, config: Config) -> list[str]:
    """The failed items' input lines, to fix and feed back; lines naming what was written."""
    given: list[tuple[Kind, Path | None]] = [
        ("asset", config.inputs.assets),
        ("link", config.inputs.links),
    ]
    fmt = config.inputs.format
    inputs = [
        FailureInput(kind, path, fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv"))
        for kind, path in given
        if path is not None
    ]
    if not inputs:
        return []  # rows streamed from code: the caller has each failed one's result
    both = len(inputs) > 1
    delimiter = config.inputs.csv_delimiter
    try:
        done = write_failures(
            folder.results,
            inputs,
            lambda kind, suffix: folder.failures(kind, suffix.lstrip("."), both),
            delimiter=None if delimiter == "auto" else delimiter,
            shape=target_spec(config.target.kind).input_shape,
            scratch=folder.path / ".failures.sqlite",
        )
    except (OSError, BulksyncError, ValueError) as exc:
        # The run's own outcome stands; only its failures file is missing.
        note(f"bulksync: warning: no failures file written: {redacted_excerpt(str(exc), 300)}")
        return []
    if done.not_copied:
        note(
            f"bulksync: {done.not_copied} failed line(s) are not in the failures file: they "
            "hold no row to copy (unreadable CSV or JSON); see the results file"
        )
    if done.duplicates:
        note(
            f"bulksync: {done.duplicates} duplicate line(s) are not in the failures file: each "
            "repeats an earlier line's item; see the results file"
        )
    return [f"failures: {path}" for path in done.files]
