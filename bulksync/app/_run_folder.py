"""A record of every run: `runs/<run-id>/` with its results, summary, failures, timeline and
HTML report, and the configured results path kept pointing at the latest run's results.

Runs never overwrite each other: the id is the start time (UTC, to the second) and four
random hex digits, and the folder is created exclusively.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bulksync.app._merge_summary import shard_label, shard_of
from bulksync.spi._errors import ConfigError


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class RunFolder:
    run_id: str
    path: Path
    started_at: dt.datetime

    @property
    def results(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def timeline(self) -> Path:
        return self.path / "timeline.jsonl"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    def failures(self, kind: str, extension: str, both_kinds: bool) -> Path:
        """`failures.csv` for a job of one input; `failures-links.csv` and so on for two."""
        name = f"failures-{kind}s" if both_kinds else "failures"
        return self.path / f"{name}.{extension}"


def new_run_folder(runs_dir: Path, now: dt.datetime | None = None) -> RunFolder:
    started = now or utc_now()
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the runs folder {runs_dir}: {exc.strerror}") from None
    for _ in range(20):  # bounded: four hex digits per second collide once in 65,536
        run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
        path = runs_dir / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {path}: {exc.strerror}") from None
        return RunFolder(run_id, path, started)
    raise ConfigError(f"cannot create a new run folder in {runs_dir}")  # pragma: no cover


def point_at(latest: Path, link: Path) -> None:
    """Make ``link`` (the configured results path) the latest run's file: a relative symlink
    where the file system has them, else a copy (made again at the end of the run)."""
    if link.resolve() == latest.resolve() and link.is_symlink():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
    # Relative between the real folders: a results folder reached through a symlink is read
    # by the kernel from where it really is, not from the path that was written.
    target = os.path.relpath(latest.resolve(), link.parent.resolve())
    try:
        os.symlink(target, temporary)
    except OSError:
        if latest.exists():
            shutil.copyfile(latest, temporary)
        else:
            return
    os.replace(temporary, link)  # atomic: a reader sees the old run's file or the new one's


def refresh_copy(latest: Path, link: Path) -> None:
    """Where the results path is a copy, not a link, bring it up to the end of the run."""
    if not link.is_symlink() and latest.exists():
        point_at(latest, link)


_LISTED = (
    "started_at",
    "elapsed_s",
    "exit_code",
    "total",
    "succeeded",
    "failed",
    "skipped",
    "target",
)


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Past runs, newest first: what their summary says, or ``incomplete`` without one."""
    if not runs_dir.is_dir():
        return []
    runs: list[dict[str, Any]] = []
    for path in sorted(runs_dir.iterdir(), reverse=True):
        if not path.is_dir() or not (path / "results.jsonl").exists():
            continue
        entry: dict[str, Any] = {"run_id": path.name, "path": str(path), "status": "incomplete"}
        entry.update(dict.fromkeys((*_LISTED, "shard")))
        try:
            summary = orjson.loads((path / "summary.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            summary = None
        if isinstance(summary, dict):
            entry.update({name: summary.get(name) for name in _LISTED})
            entry["status"] = ", ".join(map(str, summary.get("messages") or [])) or "unknown"
            entry["shard"] = shard_label(shard_of(summary))  # "I/N" of a `--shard` run
        runs.append(entry)
    # Two runs started in the same second have ids in random order: their starts, in
    # milliseconds, say which came last.
    runs.sort(key=lambda run: (run["run_id"][:16], str(run.get("started_at") or "")), reverse=True)
    return runs


def format_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no runs yet"
    sharded = any(run.get("shard") for run in runs)
    header = ("run", "started", "took", "exit", "succeeded", "failed", "skipped", "target")
    rows = [header + (("shard",) if sharded else ())]
    for run in runs:
        given = run.get("target")
        target: dict[str, Any] = given if isinstance(given, dict) else {}
        took = run.get("elapsed_s")
        rows.append(
            (
                run["run_id"],
                str(run.get("started_at") or "-")[:19].replace("T", " "),
                f"{took:.1f} s" if isinstance(took, int | float) else "-",
                "incomplete" if run.get("exit_code") is None else str(run["exit_code"]),
                _count(run.get("succeeded")),
                _count(run.get("failed")),
                _count(run.get("skipped")),
                f"{target.get('kind', '')} {target.get('base_url', '')}".strip() or "-",
            )
            + ((str(run.get("shard") or "-"),) if sharded else ())
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
