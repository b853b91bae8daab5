"""Keep secrets out of everything bulksync writes: logs, results, summaries and errors.

Secrets register themselves here the moment they are read (from the environment, or from a
login answer); every line that leaves the process passes through :func:`redact`.
"""

from __future__ import annotations

import logging

import orjson

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words and numbers
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)
        # Results are masked as JSON text, where quotes and backslashes appear escaped.
        _secrets.add(orjson.dumps(value).decode()[1:-1])


def redact(text: str) -> str:
    # Longest first: a secret that contains another must be masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def has_secrets() -> bool:
    return bool(_secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the final message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info:
                # The traceback is formatted after filters run: mask it here, in its place.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        return True
