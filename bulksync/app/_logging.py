"""Where the run's log goes and how it reads: ``-v``, ``-vv``, ``--log-file``, ``--log-format``.

bulksync logs under ``bulksync.*`` (``bulksync.retry``, ``bulksync.budget``, ``bulksync.auth``,
``bulksync.breaker``, ``bulksync.batch``, ``bulksync.http``). Each event passes its figures as
``extra`` fields (``event``, ``cause``, ``delay``, ``method``, ``path``, ``status``, ``ms``...),
which the JSON format writes as keys of their own, so a log can be counted with ``jq`` rather
than parsed back out of sentences.

Every handler masks secrets twice: the :class:`RedactingFilter` on the message, as everywhere,
and the formatters on the whole line, since a structured field never passes through the
message.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from bulksync.spi._errors import BulksyncError
from bulksync.spi._redact import RedactingFilter, redact

FORMATS = ("text", "json")

# The attributes every LogRecord has: anything else on a record came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class NoTraceback(logging.Filter):
    """Without -v a logged exception keeps its one line; the traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _timestamp(record: logging.LogRecord) -> str:
    """ISO-8601 UTC with milliseconds, as the run folder's files write time."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a log call passed through ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """One line per event: ``<ts> <LEVEL> <logger>: <message>`` (a traceback, with -v, follows
    on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        # A message with a newline in it (an error a server sent) stays one line.
        line = line.replace("\r", "\\r").replace("\n", "\\n")
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the event's own fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            entry["traceback"] = record.exc_text
        line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return redact(line)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not when the handler was
    made: the live display swaps it for a proxy that prints above its bars, and a line
    written to the stream it replaced would tear through them."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr, as it is at the time


def bulksync_level(verbosity: int) -> int:
    """-v: the run's events (INFO); -vv: every request too (DEBUG)."""
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


def setup_logging(
    verbosity: int = 0,
    log_file: Path | None = None,
    log_format: str = "text",
    stream: TextIO | None = None,
) -> list[logging.Handler]:
    """Install the run's handlers on the root logger and return them.

    Without ``log_file`` the log goes to stderr at the level ``verbosity`` asks for. With it,
    the file gets the log at that level and stderr keeps only warnings and errors, so the live
    display and the one-line errors stay readable while the detail goes to the file.

    Only bulksync's own loggers follow ``-v`` and ``-vv``; every other library (asyncio's
    "Using selector" line, aiohttp) stays at WARNING unless ``-vvv``.
    """
    if log_format not in FORMATS:
        raise BulksyncError(f"--log-format expects text or json, got '{log_format}'")
    root = logging.getLogger()
    teardown_logging()  # an earlier main() in this process that did not end its own
    level = bulksync_level(verbosity)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handlers: list[logging.Handler] = []
    console = StderrHandler() if stream is None else logging.StreamHandler(stream)
    console.setFormatter(formatter if log_file is None else TextFormatter())
    console.setLevel(level if log_file is None else logging.WARNING)
    handlers.append(console)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        except OSError as error:
            raise BulksyncError(
                f"--log-file {log_file}: cannot write there: {error.strerror or error}"
            ) from None
        to_file.setFormatter(formatter)
        to_file.setLevel(level)
        handlers.append(to_file)
    _saved.extend((name, logging.getLogger(name).level) for name in ("", "bulksync", "asyncio"))
    for handler in handlers:
        if verbosity <= 0:
            handler.addFilter(NoTraceback())
        handler.addFilter(RedactingFilter())
        handler._bulksync = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Records of bulksync's loggers reach the root's handlers whatever the root's own level:
    # only a logger's level is checked where a record is made, the handlers' where it lands.
    everything = logging.DEBUG if verbosity >= 3 else logging.WARNING
    root.setLevel(everything)
    logging.getLogger("bulksync").setLevel(level)
    # A library logger set lower elsewhere (asyncio's debug mode sets its own) would let its
    # records through the handlers at -v: held at WARNING, unless -vvv asks for everything.
    logging.getLogger("asyncio").setLevel(everything)
    return handlers


_saved: list[tuple[str, int]] = []  # the levels setup_logging changed, to put back


def teardown_logging() -> None:
    """Remove and close the handlers :func:`setup_logging` installed and put the levels back,
    so that ``main()`` called in-process (tests, an embedding program) leaves logging as it
    found it, and no handler outlives the stream or file it writes to."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bulksync", False):
            root.removeHandler(handler)
            handler.close()
    while _saved:
        name, level = _saved.pop()
        logging.getLogger(name or None).setLevel(level)
