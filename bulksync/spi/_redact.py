"""Keep secrets out of everything bulksync writes: logs, results, summaries and errors.

Secrets register themselves here the moment they are read (from the environment, or from a
login answer); every line that leaves the process passes through :func:`redact`.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus

import orjson

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words and numbers
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` from now on, as written and in the forms a server may echo it in."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.update(_forms(value))


def _forms(value: str) -> set[str]:
    raw = value.encode()
    forms = {
        value,
        # Results are masked as JSON text, where quotes and backslashes appear escaped.
        orjson.dumps(value).decode()[1:-1],
        # A server echoing a request back (a query string, a form body) shows it encoded.
        quote(value, safe=""),
        quote_plus(value, safe=""),
        quote(value),
    }
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        forms.update((text, text.rstrip("=")))
    return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}


# The secrets longest first, as text and as UTF-8, for the set they were sorted from: every
# result line is masked, and sorting the set once per line cost more than the masking.
_sorted_from: set[str] = set()
_sorted: tuple[str, ...] = ()
_sorted_bytes: tuple[bytes, ...] = ()


def _longest_first() -> tuple[str, ...]:
    global _sorted, _sorted_bytes
    if _secrets != _sorted_from:  # registered since, or cleared (the tests do)
        _sorted_from.clear()
        _sorted_from.update(_secrets)
        _sorted = tuple(sorted(_secrets, key=len, reverse=True))
        _sorted_bytes = tuple(secret.encode() for secret in _sorted)
    return _sorted


def redact(text: str) -> str:
    if not _secrets:
        return text
    # Longest first: a secret that contains another must be masked whole.
    for secret in _longest_first():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_bytes(line: bytes) -> bytes:
    """:func:`redact` for UTF-8 bytes (a JSON line), decoded only when a secret is in it."""
    if not _secrets:
        return line
    _longest_first()
    for secret in _sorted_bytes:
        if secret in line:
            return redact(line.decode()).encode()
    return line


def redacted_excerpt(text: str, limit: int = 300) -> str:
    """``text`` masked, stripped, then cut to ``limit`` characters.

    Masking before cutting: a secret straddling the cut would otherwise survive in part,
    too short to be recognised any more.
    """
    text = redact(text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def body_excerpt(body: bytes, limit: int = 300) -> str:
    """A response body as one masked excerpt, for an error message."""
    return redacted_excerpt(body.decode("utf-8", "replace"), limit)


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
