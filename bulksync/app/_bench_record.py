"""A bench's run folder: the same ``runs/<id>/`` as a sync's (summary.json, timeline.jsonl,
report.html, an empty results.jsonl: a bench has no items), so ``bulksync runs`` lists it and
``bulksync report --html`` redraws it. Each stage shows in the timeline and the report as a
stage of its own ("stage 3: 20 req/s"), its served answers done and the others failed."""

from __future__ import annotations

from typing import Any

from bulksync.app._bench_ramp import StageTally
from bulksync.app._run_folder import RunFolder
from bulksync.app._run_record import run_identity
from bulksync.app._telemetry import Snapshot, StageFigures, client_snapshot
from bulksync.app.config import Config
from bulksync.app.progress import note
from bulksync.engine.client import EngineClient
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import RunStats, write_summary


def stage_label(number: int, stage: StageTally) -> str:
    rate = f"{stage.offered:g}"
    return f"stage {number}: {rate} req/s"


def snapshot(
    client: EngineClient, stats: RunStats, started: float, stages: list[StageTally]
) -> Snapshot:
    """What the timeline writes each second, as a sync's snapshot reads."""
    figures = tuple(
        StageFigures(stage_label(n, s), s.ok, s.errors + s.throttled, 0, None)
        for n, s in enumerate(stages, 1)
    )
    return client_snapshot(stats, client.target, started, figures)


def bench_summary(
    folder: RunFolder,
    config: Config,
    stats: RunStats,
    elapsed_s: float,
    bench: dict[str, Any],
    exit_code: int,
    interrupted: bool,
) -> dict[str, Any]:
    """A sync's summary (requests, 429s, latency, the run's identity) and the bench's own
    figures under ``bench``."""
    summary = stats.summary(elapsed_s, interrupted)
    summary.update(run_identity(folder, config, exit_code))
    summary.update(latency_histogram=stats.latency.buckets(), command="bench", bench=bench)
    return summary


def write_record(folder: RunFolder, summary: dict[str, Any]) -> list[str]:
    """summary.json and report.html; lines naming what was written. The report is a
    convenience: one that cannot be drawn is said in one line, the summary stands."""
    folder.results.touch()
    write_summary(folder.summary, summary)
    written = [f"run: {folder.path}"]
    try:
        from bulksync.app._html_report import write_report_html

        written.append(f"report: {write_report_html(folder.path)}")
    except Exception as exc:  # a chart that cannot be drawn must not fail a finished bench
        note(f"bulksync: the HTML report could not be written: {redacted_excerpt(str(exc), 300)}")
    return written
