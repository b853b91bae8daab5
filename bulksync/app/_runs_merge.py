"""`bulksync runs merge`: the run records of one job's shards (or of several runs of a job)
as one summary, one timeline and one HTML report, in a folder of their own.

Which runs: named by run id (looked up in the runs folder) or by folder, and/or every run
started since a time (``--since``; of each shard its latest finished run). What is refused,
exit 2 with one line, because the merged figures would mislead: a run that did not finish (no
summary), runs of different jobs, the same shard twice, shards of different N, shards missing.
``--force`` merges the last four anyway and says so on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bulksync.app._error_groups import group_errors
from bulksync.app._merge_summary import (
    RunRecord,
    merge_summaries,
    merged_timeline,
    parse_time,
    shard_label,
)
from bulksync.app.progress import note
from bulksync.spi._errors import ConfigError
from bulksync.store.results import format_summary, read_json_lines, write_summary

MERGE_PREFIX = "merge-"


def merge_arguments(runs: argparse.ArgumentParser) -> None:
    """``runs merge`` under ``runs``; ``bulksync runs`` alone still lists the runs."""
    sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    merge = sub.add_parser(
        "merge",
        help="combine runs of one job (its shards) into one summary and one HTML report",
        description="Combine the run records of one job's shards (or several runs of one job) "
        "into one summary.json, timeline.jsonl and report.html. Exit 0 once written (the "
        "runs' own outcome is the merged summary's exit_code), 2 when refused.",
    )
    merge.add_argument(
        "runs", nargs="*", metavar="RUN", help="a run id in the runs folder, or a run folder"
    )
    merge.add_argument(
        "--since",
        metavar="TIME",
        help="also every run started at or after TIME (UTC, as 2026-12-04T01:00Z); of each "
        "shard its latest finished run",
    )
    # SUPPRESS: `bulksync runs --runs-dir X merge ...` keeps the X given before the subcommand.
    merge.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="the job's TOML")
    merge.add_argument(
        "--runs-dir", type=Path, default=argparse.SUPPRESS, help="the runs folder (./runs)"
    )
    merge.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write (default: runs/merge-<id>/)"
    )
    merge.add_argument(
        "--force",
        action="store_true",
        help="merge runs of different jobs, a shard twice, shards of different N or with "
        "shards missing (each said on stderr)",
    )
    merge.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the merged summary as JSON",
    )


def run_merge(args: argparse.Namespace, runs_dir: Path) -> int:
    refs: list[str] = args.runs
    if not refs and args.since is None:
        raise ConfigError("runs merge needs runs to merge: RUN ... or --since TIME")
    records = pick_runs(refs, runs_dir, args.since)
    check_runs(records, force=args.force)
    out = args.out or default_out(records, runs_dir)
    merged = write_merge(records, out)
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(merged).decode() + "\n")
        return 0
    print(format_summary(merged))
    print(format_shards(merged["shards"]))
    budget = merged["budget"]
    if budget["share"] is not None:
        print(
            f"budget: {merged['requests_per_s']:,} requests/s of {budget['limit_per_s']:,g}/s "
            f"allowed ({budget['share']:.1%}) over {merged['elapsed_s']:,.1f} s"
        )
    print(f"merged: {out}")
    print(f"report: {out / 'report.html'}")
    return 0


def pick_runs(refs: list[str], runs_dir: Path, since: str | None) -> list[RunRecord]:
    """The named runs, then those started since ``since``; each once, in shard order."""
    picked: dict[Path, RunRecord] = {}
    for ref in refs:
        record = read_record(resolve_run(ref, runs_dir))
        picked.setdefault(record.path.resolve(), record)
    if since is not None:
        for record in runs_since(runs_dir, parse_since(since)):
            picked.setdefault(record.path.resolve(), record)
    if not picked:
        raise ConfigError(f"no finished run in {runs_dir} started since {since}")

    def order(record: RunRecord) -> tuple[int, int, str]:
        shard = record.shard
        return (shard[1], shard[0], record.run_id) if shard else (0, 0, record.run_id)

    return sorted(picked.values(), key=order)


def resolve_run(ref: str, runs_dir: Path) -> Path:
    as_path = Path(ref)
    if as_path.is_dir():
        return as_path
    if os.sep not in ref and (runs_dir / ref).is_dir():
        return runs_dir / ref
    raise ConfigError(f"no run '{ref}' in {runs_dir} (`bulksync runs` lists them)")


def read_record(folder: Path) -> RunRecord:
    """A finished run's record; anything else is one line naming what it is instead."""
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        if (folder / "results.jsonl").is_file():
            raise ConfigError(
                f"run {folder.name} did not finish (no summary.json: killed, or still "
                "running?); merge its shard's rerun instead, or leave it out"
            )
        raise ConfigError(f"{folder} is not a run folder (no summary.json)")
    try:
        summary = orjson.loads(summary_file.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        raise ConfigError(f"{summary_file} is not a run summary")
    if "merged_from" in summary:
        raise ConfigError(f"{folder} is a merge, not a run: name the runs it was made of")
    return RunRecord(folder, summary)


def parse_since(text: str) -> dt.datetime:
    moment = parse_time(text.strip())
    if moment is None:
        raise ConfigError(f"--since expects a UTC time such as 2026-12-04T01:00Z, got '{text}'")
    return moment


def runs_since(runs_dir: Path, since: dt.datetime) -> list[RunRecord]:
    """Finished runs started at or after ``since``; of a shard run more than once (a killed
    run and its rerun, two nights' resyncs) its latest, as the latest holds every item of it."""
    if not runs_dir.is_dir():
        raise ConfigError(f"no runs folder {runs_dir}")
    latest: dict[str, RunRecord] = {}
    whole: list[RunRecord] = []
    for folder in sorted(runs_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith(MERGE_PREFIX):
            continue
        if not (folder / "summary.json").is_file():
            if (folder / "results.jsonl").is_file():
                note(f"bulksync: run {folder.name} did not finish (no summary.json): left out")
            continue
        try:
            record = read_record(folder)
        except ConfigError as exc:
            note(f"bulksync: {exc}: left out")
            continue
        started = record.started
        if started is None or started < since:
            continue
        label = shard_label(record.shard)
        if label is None:
            whole.append(record)
            continue
        before = latest.get(label)
        if before is not None:
            older, newer = sorted((before, record), key=lambda r: r.started or since)
            note(f"bulksync: shard {label}: run {older.run_id} left out, {newer.run_id} is newer")
            record = newer
        latest[label] = record
    return whole + list(latest.values())


# What makes runs one job, first found in every record: a ``job`` a record may name, the job
# hash (the settings but the results path, which `--shard` changes), the config hash (records
# from before the job hash).
JOB_FIELDS = ("job", "job_hash", "config_hash")


def job_field(records: list[RunRecord]) -> str:
    return next(
        (f for f in JOB_FIELDS if all(r.summary.get(f) is not None for r in records)),
        "config_hash",
    )


def job_of(record: RunRecord, field: str) -> tuple[Any, ...]:
    """The target a run pushed to and the job it ran, by ``field``."""
    given = record.summary.get("target")
    target: dict[str, Any] = given if isinstance(given, dict) else {}
    return (target.get("kind"), target.get("base_url"), record.summary.get(field))


def check_runs(records: list[RunRecord], *, force: bool) -> None:
    """Refuse (or, with ``force``, warn about) what would make the merged figures wrong."""
    problems: list[str] = []
    first, field = records[0], job_field(records)
    for record in records[1:]:
        if job_of(record, field) != job_of(first, field):
            problems.append(
                f"runs {first.run_id} and {record.run_id} are of different jobs "
                f"({_job_text(first, field)} vs {_job_text(record, field)})"
            )
            break
    sharded = [r for r in records if r.shard is not None]
    if sharded and len(sharded) < len(records):
        whole = next(r for r in records if r.shard is None)
        problems.append(f"run {whole.run_id} is a whole job, the others are shards")
    counts = sorted({r.shard[1] for r in sharded if r.shard is not None})
    if len(counts) > 1:
        problems.append(f"the shards split the job in different ways (N = {counts})")
    seen: dict[tuple[int, int], str] = {}
    for record in sharded:
        assert record.shard is not None
        if record.shard in seen:
            problems.append(
                f"shard {shard_label(record.shard)} twice: runs {seen[record.shard]} and "
                f"{record.run_id} (name one run per shard, or use --since)"
            )
        seen.setdefault(record.shard, record.run_id)
    if len(counts) == 1:
        missing = [f"{i}/{counts[0]}" for i in range(counts[0]) if (i, counts[0]) not in seen]
        if missing:
            problems.append(f"shard(s) {', '.join(missing)} missing: their totals are not in")
    if not problems:
        return
    if not force:
        raise ConfigError(f"runs merge: {problems[0]}; --force merges them anyway")
    for problem in problems:
        note(f"bulksync: warning: {problem} (merged anyway: --force)")


def _job_text(record: RunRecord, field: str) -> str:
    kind, base_url, job = job_of(record, field)
    return f"{kind} {base_url}, {field.replace('_', ' ')} {job}"


def new_merge_id(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    return f"{MERGE_PREFIX}{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


def default_out(records: list[RunRecord], runs_dir: Path) -> Path:
    """A new folder beside the runs: ``merge-<time>-<hex>`` in the first run's runs folder."""
    parent = records[0].path.parent if records else runs_dir
    for _ in range(20):  # bounded: four hex digits per second collide once in 65,536
        out = parent / new_merge_id()
        if not out.exists():
            return out
    raise ConfigError(f"cannot name a new merge folder in {parent}")  # pragma: no cover


def write_merge(records: list[RunRecord], out: Path) -> dict[str, Any]:
    """Write ``summary.json``, ``timeline.jsonl`` and ``report.html`` of the merge into
    ``out``; returns the merged summary."""
    if (out / "results.jsonl").exists():
        raise ConfigError(f"{out} is a run folder: --out names a folder of its own")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror or exc}") from None
    merge_id = out.name if out.name.startswith(MERGE_PREFIX) else new_merge_id()
    merged = merge_summaries(records, merge_id)
    limit: float | None = None
    with open(out / "timeline.jsonl.tmp", "wb") as fh:
        for line in merged_timeline(records):
            if isinstance(line.get("limit"), int | float):
                limit = max(limit or 0.0, float(line["limit"]))
            fh.write(orjson.dumps(line) + b"\n")
    os.replace(out / "timeline.jsonl.tmp", out / "timeline.jsonl")
    merged["budget"] = budget_use(merged, limit)
    write_summary(out / "summary.json", merged)
    from bulksync.app._html_report import render_report  # only when a merge is made

    groups = group_errors(_all_results(records))
    document = render_report(merged, read_json_lines(out / "timeline.jsonl"), groups)
    (out / "report.html.tmp").write_text(document, encoding="utf-8")
    os.replace(out / "report.html.tmp", out / "report.html")
    return merged


def budget_use(merged: dict[str, Any], limit: float | None) -> dict[str, Any]:
    """How much of the budget the job used: its requests per second over the wall span against
    the pace the configured windows allow (the highest any run reported), when known."""
    rate = merged.get("requests_per_s")
    share = round(rate / limit, 3) if isinstance(rate, int | float) and limit else None
    return {"requests": merged.get("requests"), "limit_per_s": limit, "share": share}


def _all_results(records: list[RunRecord]) -> Iterator[dict[str, Any]]:
    return itertools.chain.from_iterable(read_json_lines(r.path / "results.jsonl") for r in records)


def format_shards(rows: list[dict[str, Any]]) -> str:
    """One line per merged run, for the terminal."""
    header = ("shard", "run", "took", "exit", "total", "succeeded", "failed", "skipped", "requests")
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        took = row.get("elapsed_s")
        table.append(
            (
                row.get("shard") or "-",
                str(row.get("run_id")),
                f"{took:.1f} s" if isinstance(took, int | float) else "-",
                str(row.get("exit_code", "-")),
                *(f"{row.get(k, 0):,}" for k in header[4:]),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    )
