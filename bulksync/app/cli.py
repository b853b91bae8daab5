"""The `bulksync` command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

from bulksync._version import __version__
from bulksync.app import _loop
from bulksync.app._logging import FORMATS, setup_logging, teardown_logging
from bulksync.app._loop import ENV as LOOP_ENV
from bulksync.app._loop import LOOPS
from bulksync.app._retry_select import failed_items
from bulksync.app._runs_merge import merge_arguments, run_merge
from bulksync.app._state_cli import state_arguments, state_command
from bulksync.app.config import load_config
from bulksync.app.report import write_report
from bulksync.spi._errors import EXIT_INTERNAL, BulksyncError
from bulksync.spi._redact import redact, redacted_excerpt
from bulksync.store.shard import Shard

EXIT_USAGE = 2
_HTML_DEFAULT = Path("<default>")  # `--html` with no PATH: report.html in the run folder


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulksync",
        description="Move product catalogues into PIM and commerce APIs, fast, losing no item.",
    )
    parser.add_argument("--version", action="version", version=f"bulksync {__version__}")
    _log_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run a sync job from a TOML config")
    _job_arguments(run)

    retry = commands.add_parser(
        "retry-failed", help="run again only the items that failed in a results file"
    )
    retry.add_argument("failed_from", type=Path, metavar="RESULTS", help="a results JSONL file")
    _job_arguments(retry)
    _report_arguments(
        commands.add_parser(
            "report",
            help="a run's counts per kind and action and its failures grouped by cause "
            "(--json: the bulk response, --html: the HTML report)",
        )
    )

    # Listed here for --help; main() hands its arguments to the sandbox's own parser.
    commands.add_parser(
        "sandbox", help="run the local API emulator (Quable, Propeller, OCAPI); see sandbox --help"
    )

    demo = commands.add_parser("demo", help="a sample run, no account needed")
    demo.add_argument("--assets", type=int, default=500, help="assets with a file (500)")
    demo.add_argument("--remote-assets", type=int, default=100, help="remotePath assets (100)")
    demo.add_argument("--links", type=int, default=2000, help="links (2000)")
    demo.add_argument("--documents", type=int, default=200, help="documents linked from (200)")
    demo.add_argument(
        "--faults",
        type=float,
        default=0.0,
        help="share of requests failing transiently (503s, dropped connections, lost answers)",
    )
    demo.add_argument(
        "--links-api", choices=("v5", "v4"), default="v5", help="Quable links API (v5)"
    )
    demo.add_argument("--workdir", type=Path, help="where to write the catalogue and results")
    _stats_arguments(demo)
    _log_arguments(demo, top=False)
    from bulksync.app._bench_cli import bench_arguments

    bench = commands.add_parser("bench", help="benchmark the target API in a staged ramp")
    _log_arguments(bench, top=False)
    bench_arguments(bench)
    commands.add_parser(
        "config-schema", help="print the JSON schema of a job config (for editor completion)"
    )
    runs = commands.add_parser("runs", help="list past runs, newest first")
    runs.add_argument("--config", type=Path, help="the job's TOML config: its [output] runs_dir")
    runs.add_argument("--runs-dir", type=Path, help="the runs folder (default: ./runs)")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    merge_arguments(runs)  # `runs merge`
    state_arguments(commands.add_parser("state", help="the state's schema: bulksync state migrate"))
    completion = commands.add_parser(
        "completion", help='print the shell completion script: eval "$(bulksync completion bash)"'
    )
    completion.add_argument("shell", choices=("bash", "zsh"))
    return parser


def _report_arguments(report: argparse.ArgumentParser) -> None:
    results = report.add_argument(
        "results",
        type=Path,
        nargs="?",  # `report --html RUN` reads RUN as the folder (see _report)
        metavar="RESULTS",
        help="a results JSONL file or a run folder",
    )
    results.complete = {"bash": "_shtab_compgen_files", "zsh": "_files"}  # type: ignore[attr-defined]
    report.add_argument("--failed", action="store_true", help="only the failed items")
    view = report.add_mutually_exclusive_group()
    view.add_argument(
        "--json", action="store_true", help="the results as a bulk response (data, messages, total)"
    )
    view.add_argument(
        "--html",
        type=Path,
        nargs="?",
        const=_HTML_DEFAULT,
        metavar="PATH",
        help="write the HTML report (default: report.html in the run folder)",
    )


def _report(args: argparse.Namespace) -> int:
    from bulksync.app._report_text import write_text_report
    from bulksync.app.report import locate, write_html

    results: Path | None = args.results
    html: Path | None = args.html
    if results is None and html is not None and html != _HTML_DEFAULT:
        results, html = html, _HTML_DEFAULT  # `report --html RUN`: RUN is what to report on
    if results is None:
        raise BulksyncError("report needs a results file or a run folder: bulksync report RESULTS")
    if args.json:
        write_report(results, sys.stdout, failed_only=args.failed)
    elif html is not None:
        written = write_html(locate(results), None if html == _HTML_DEFAULT else html)
        print(f"report: {written}")
    else:
        write_text_report(locate(results), sys.stdout, failed_only=args.failed)
    return 0


def _completion(shell: str) -> int:
    import shtab

    sys.stdout.write(shtab.complete(_parser(), shell))
    return 0


def _log_arguments(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """The logging options, on the top-level parser and again on the commands that run a job
    (``bulksync run -v`` reads as naturally as ``bulksync -v run``)."""
    # Below the top level an option left out must not reset what the top level set.
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="-v: log each retry, 429, pause, login, batch halving and breaker change; "
        "-vv: every request too (method, path, status, ms)",
        **({"default": 0} if top else unset),
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="append the log to PATH; stderr then keeps only warnings and errors",
        **unset,
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        help="text (one line per event, the default) or json (one JSON object per line)",
        **({"default": "text"} if top else unset),
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        help="the event loop: auto (uvloop when installed, the default), uvloop or asyncio "
        f"(env {LOOP_ENV})",
        **({"default": None} if top else unset),
    )


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stats-interval",
        type=float,
        metavar="SECONDS",
        help="off a terminal (or with --no-progress), print a stats line to stderr this often "
        "(default 60; 0: none) ([output] stats_interval)",
    )
    parser.add_argument(
        "--stats-json", action="store_true", help="print the stats lines as JSON lines"
    )


def _job_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by `run` and `retry-failed`."""
    _log_arguments(parser, top=False)
    parser.add_argument("--config", type=Path, help="the job's TOML config file")
    parser.add_argument(
        "--kind",
        # No choices: an installed plug-in adds kinds, and the config check lists them all.
        help="the target ([target] kind): quable, propeller, ocapi, fake (the built-in "
        "in-memory target) or an installed plug-in's kind; needed without --config",
    )
    parser.add_argument("--base-url", help="the target's base URL ([target] base_url)")
    parser.add_argument("--assets", type=Path, help="assets input file, JSONL or CSV")
    parser.add_argument("--links", type=Path, help="links input file, JSONL or CSV")
    parser.add_argument("--results", type=Path, help="where to write the results JSONL")
    parser.add_argument(
        "--rate",
        action="append",
        metavar="N/SECONDS",
        help="a rate window such as 6000/600; repeat for several ([limits] rate)",
    )
    parser.add_argument("--concurrency", type=int, help="workers per stage ([limits] concurrency)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    _stats_arguments(parser)
    parser.add_argument(
        "--full",
        action="store_true",
        help="ignore the state: list the target through its API's paging and push what differs",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be done; send nothing"
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete what earlier runs pushed (with --full: what the target lists) and the "
        "input no longer holds",
    )
    parser.add_argument(
        "--max-delete",
        default="5%",
        metavar="N|N%",
        help="prune guard: stop before deleting more than this (default 5%% of the scope)",
    )
    parser.add_argument(
        "--strict-fields",
        action="store_true",
        help="fail input lines with an unknown field or CSV column (default: warn once)",
    )
    parser.add_argument(
        "--wait-for-quota",
        action="store_true",
        help="when a quota is used up, wait for it to free up instead of stopping with exit 6 "
        "([limits] wait_for_quota)",
    )
    parser.add_argument("--state", type=Path, help="the state database ([state] path)")
    parser.add_argument(
        "--no-state", action="store_true", help="keep no state: no resume, no skipping"
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="take only the items whose key hashes to shard I of N (needs the PostgreSQL state)",
    )


def _parse_rate(values: list[str] | None) -> list[list[float]] | None:
    if not values:
        return None
    windows = []
    for value in values:
        try:
            count, seconds = value.split("/", 1)
            windows.append([int(count), float(seconds)])
        except ValueError:
            raise BulksyncError(
                f"--rate expects N/SECONDS such as 6000/600, got '{value}'"
            ) from None
    return windows


def _run(args: argparse.Namespace) -> int:
    from bulksync.app.runner import RunOptions, run_job

    overrides: dict[str, Any] = {
        "target.kind": args.kind,
        "target.base_url": args.base_url,
        "inputs.assets": str(args.assets.resolve()) if args.assets else None,
        "inputs.links": str(args.links.resolve()) if args.links else None,
        "output.results": str(args.results.absolute()) if args.results else None,
        "limits.rate": _parse_rate(args.rate),
        "limits.concurrency": args.concurrency,
        "limits.wait_for_quota": True if args.wait_for_quota else None,
        "output.progress": False if args.no_progress else None,
        "output.stats_interval": args.stats_interval,
        "output.stats_format": "json" if args.stats_json else None,
        "state.path": str(args.state.resolve()) if args.state else None,
        "state.enabled": False if args.no_state else None,
    }
    options = RunOptions(
        full=args.full, dry_run=args.dry_run, prune=args.prune, max_delete=args.max_delete
    )
    options.strict_fields = args.strict_fields
    options.shard = Shard.parse(args.shard) if args.shard else None
    failed_from: Path | None = getattr(args, "failed_from", None)
    if failed_from is not None:
        options.only_keys = failed_items(failed_from)  # by key: lines move when input changes
        if args.results is None:
            overrides["output.results"] = str(failed_from.with_suffix(".retry.jsonl").absolute())
    return run_job(load_config(args.config, overrides), options=options).exit_code


def _demo(args: argparse.Namespace) -> int:
    from bulksync.app.demo import DemoOptions, run_demo

    options = DemoOptions(
        assets=args.assets,
        remote_assets=args.remote_assets,
        links=args.links,
        documents=args.documents,
        faults=args.faults,
        links_api=args.links_api,
        workdir=args.workdir,
        stats_interval=args.stats_interval,
        stats_json=args.stats_json,
    )
    return run_demo(options).exit_code


def _runs(args: argparse.Namespace) -> int:
    from bulksync.app._run_folder import format_runs, list_runs
    from bulksync.app._run_record import runs_dir_of

    folder: Path = args.runs_dir or Path("runs")
    if args.runs_dir is None and args.config is not None:
        folder = runs_dir_of(load_config(args.config, {}))
    if getattr(args, "runs_command", None) == "merge":
        return run_merge(args, folder)
    runs = list_runs(folder)
    if args.json:
        for run in runs:
            sys.stdout.write(orjson.dumps(run).decode() + "\n")
    else:
        print(format_runs(runs) if runs else f"no runs in {folder}")
    return 0


def _crashed(exc: BaseException) -> int:
    """A bug outside any one record: one line, the traceback (masked) in a crash file."""
    text = "".join(traceback.format_exception(exc))
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # the one line names the error the task group wrapped
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"bulksync-crash-{stamp}-{os.getpid()}.txt"
    where = str(path)
    try:
        # Owner-only, and never through a name another user planted in the shared temporary
        # folder: a traceback shows paths, ids and answers even with the secrets masked.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as crash:
            crash.write(f"bulksync {__version__}\n{redact(text)}")
    except OSError as error:
        where = f"none written: {error.strerror or error}"
    what = redacted_excerpt(f"{type(exc).__name__}: {exc}".replace("\n", " "), 300)
    print(f"bulksync: internal error: {what} (details in {where})", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        from bulksync.sandbox import main as sandbox_main

        return sandbox_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        setup_logging(args.verbose, args.log_file, args.log_format)
        _loop.choose(args.loop)
    except BulksyncError as exc:
        print(f"bulksync: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command in ("run", "retry-failed"):
            return _run(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "bench":
            from bulksync.app._bench_cli import bench

            return bench(args)
        if args.command == "config-schema":
            from bulksync.app.wiring import config_schema

            broken: list[str] = []
            schema = config_schema(broken)
            for message in broken:
                sys.stderr.write(f"bulksync: {message}\n")
            sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
            return 0
        if args.command == "completion":
            return _completion(args.shell)
        if args.command == "runs":
            return _runs(args)
        if args.command == "state":
            return state_command(args)
        return _report(args)
    except BulksyncError as exc:
        print(f"bulksync: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code if exc.exit_code != 1 else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`bulksync report ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # ExceptionGroup included: a bug, never a traceback for a user
        return _crashed(exc)
    finally:
        teardown_logging()  # flushes and closes --log-file; in-process callers get logging back


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
