"""`bulksync report`: a results file read back, as a bulk links response (``--json``) or as the
human view (:mod:`bulksync.app._report_text`); where the results and their summary are."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from bulksync.app.progress import note
from bulksync.spi._errors import InputFileError
from bulksync.store.results import summary_path

RUN_RESULTS = "results.jsonl"  # the names inside a run folder (see the issue 15 contract)
RUN_SUMMARY = "summary.json"
STATUSES = frozenset({"succeeded", "failed", "skipped"})


@dataclass(frozen=True, slots=True)
class ResultsFile:
    """A results file found from what the user named: the file or its run folder."""

    results: Path
    summary: Path | None  # the summary written with it, when there is one
    run_dir: Path | None  # the run folder holding it, when it is in one

    def summary_doc(self) -> dict[str, Any] | None:
        """The summary's content; None when missing or damaged (it never hides the results)."""
        if self.summary is None:
            return None
        try:
            doc = orjson.loads(self.summary.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) else None


def locate(path: Path) -> ResultsFile:
    """The results file ``path`` names: a results file or a run folder; anything else is an
    :class:`InputFileError` naming what it is instead."""
    if path.is_dir():
        inside = path / RUN_RESULTS
        if not inside.is_file():
            raise InputFileError(
                f"{path} is a folder with no {RUN_RESULTS}: name a results file or a run folder"
            )
        path = inside
    elif not path.exists():
        raise InputFileError(f"results file not found: {path}")
    elif not path.is_file():
        raise InputFileError(f"{path} is not a regular file: name a results file or a run folder")
    # The configured results path may be a link to the latest run's results.jsonl.
    real = path.resolve()
    run_dir = real.parent if (real.parent / RUN_SUMMARY).is_file() else None
    summary: Path | None = None
    for candidate in (summary_path(path), real.parent / RUN_SUMMARY):
        if candidate.is_file():
            summary = candidate
            break
    found = ResultsFile(path, summary, run_dir)
    if _is_empty(path) and summary is None:
        # An empty file with no summary is nothing bulksync wrote (a run writes both).
        raise InputFileError(f"{path} is empty and has no summary beside it: no results to show")
    return found


def _is_empty(path: Path) -> bool:
    """True for a file of blank lines; a binary file (a NUL early on) is refused here, before
    its first "line" (which may be megabytes long) is read."""
    try:
        with open(path, "rb") as fh:
            if b"\x00" in fh.read(4096):
                raise InputFileError(f"{path} is a binary file, not a bulksync results file")
            fh.seek(0)
            return not any(raw.strip() for raw in fh)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def write_report(results: Path, out: TextIO, *, failed_only: bool = False) -> int:
    """Stream ``{"data": [...], "messages": [...], "total": N}``; returns N.

    The data array is written item by item, so a results file of any size fits in memory.
    """
    found = locate(results)
    items = results_items(found.results)
    first = next(items, None)  # a file that is no results file fails before any output
    messages: Any = ["Completed"]
    summary = found.summary_doc()
    if summary is not None:
        messages = summary.get("messages", messages)
    out.write('{"data": [')
    total = 0
    for item in itertools.chain([] if first is None else [first], items):
        if failed_only and item.get("status") != "failed":
            continue
        out.write(("\n  " if total == 0 else ",\n  ") + orjson.dumps(item).decode())
        total += 1
    out.write(("\n" if total else "") + "], ")
    out.write(f'"messages": {orjson.dumps(messages).decode()}, "total": {total}}}\n')
    return total


def results_items(results: Path) -> Iterator[dict[str, Any]]:
    """The lines of a results file, one at a time; an input file (a CSV, a links JSONL), a
    summary or a binary file given by mistake is named with its first line no results file has."""

    def refused(lineno: int, why: str) -> InputFileError:
        return InputFileError(f"{results} is not a bulksync results file (line {lineno} {why})")

    try:
        with open(results, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                if b"\x00" in raw:
                    raise refused(lineno, "holds binary data")
                try:
                    item = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    if lineno > 1 and not raw.endswith(b"\n") and _is_utf8(raw):
                        # A run killed in the middle of its last write: that line is cut.
                        note(f"bulksync: {results}:{lineno}: the last line is cut; left out")
                        return
                    why = "is not a JSON line" if _is_utf8(raw) else "is not UTF-8 text"
                    raise refused(lineno, why) from None
                if not isinstance(item, dict):
                    raise refused(lineno, "is not a JSON object")
                if item.get("status") not in STATUSES:
                    what = "has no status" if "status" not in item else "has an unknown status"
                    raise refused(lineno, what)
                yield item
    except OSError as exc:
        raise InputFileError(f"cannot read {results}: {exc.strerror or exc}") from None


HTML_MODULE = "bulksync.app._html_report"


class HtmlUnavailable(InputFileError):
    """This build has no HTML renderer (it is a separate module, imported only when asked)."""


def html_output(found: ResultsFile, out: Path | None) -> tuple[Path, Path]:
    """The run folder the HTML report is drawn from, and where it goes: ``out``, else
    ``report.html`` in the run folder, else ``<results>.report.html`` beside the results."""
    if found.run_dir is not None:
        return found.run_dir, out or found.run_dir / "report.html"
    # Not in a run folder (an older run, or a results file copied away): the renderer reads
    # the results and the summary beside them.
    results = found.results
    return results.parent, out or results.with_name(results.stem + ".report.html")


def write_html(found: ResultsFile, out: Path | None) -> Path:
    """Write the HTML report of ``found``; returns its path."""
    next(results_items(found.results), None)  # a file that is no results file fails first
    try:
        # By name, not a static import: the renderer is optional to this module.
        module = importlib.import_module(HTML_MODULE)
        render = module.write_report_html
    except (ImportError, AttributeError):
        raise HtmlUnavailable(
            "the HTML report is not available in this build of bulksync "
            f"({HTML_MODULE}.write_report_html is missing); use the default view or --json"
        ) from None
    run_dir, target = html_output(found, out)
    if not (run_dir / "summary.json").is_file() and (run_dir / "results.jsonl").is_file():
        raise InputFileError(
            f"{run_dir}: the run did not finish (no summary.json: killed?), so it has no HTML "
            f"report; `bulksync report {run_dir}` shows the items it wrote"
        )
    try:
        written = render(run_dir, target)
    except ValueError as exc:  # the renderer's ReportError: one line, for the user
        raise InputFileError(str(exc)) from None
    return Path(written) if written is not None else target
