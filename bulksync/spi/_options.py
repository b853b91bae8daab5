"""The base of a target's options table, and the URL rules every target's URLs follow.

A connector's ``[name]`` table is an :class:`Options` model: unknown keys are refused, values
must have their key's type, and a mistake is one line that names the field's path (never the
value: it may be a secret). The URL checks live here rather than in the app so that a
connector validating a URL of its own (an OAuth token URL) needs nothing outside the SPI.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bulksync.spi._config_errors import describe
from bulksync.spi._errors import ConfigError

# Finite: an infinite timeout or stall limit would silently switch that guard off.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Section(BaseModel):
    """One config table. Built in code, a wrong value raises ConfigError with its path too."""

    model_config = ConfigDict(extra="forbid", strict=True)
    table: ClassVar[str] = ""  # its name in the TOML file, for messages

    def __init__(self, /, **data: Any) -> None:
        # pydantic calls this for nested tables and model_validate too: every path to a
        # model gets the one-line message, never pydantic's multi-line text with the value.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            table = type(self).table
            known = {table: list(type(self).model_fields)}
            raise ConfigError(describe(exc, table or None, known)) from None


class Options(Section):
    """A target's own table (``[quable]``, ``[ocapi]``...): set ``table`` to the target's name."""


def check_base_url(url: str, allow_http: bool, what: str = "base_url") -> None:
    """Only https, or plain http to loopback (the sandbox) unless explicitly allowed."""
    if not url:
        raise ConfigError("[target] base_url is required (or --base-url)")
    refuse_userinfo(url, what)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is no number
    except ValueError:
        raise ConfigError(f"{what} must be an http(s) URL, got '{url}'") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http(s) URL, got '{url}'")
    if parts.scheme.lower() == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: use https, or set allow_http = true"
        )


def split_url(url: str, what: str) -> SplitResult:
    """``urlsplit``, whose ValueError (a broken IPv6 bracket, a bad port) is a config
    mistake (exit 2), not a bug (exit 5)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is no number
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc})") from None
    return parts


def refuse_userinfo(url: str, what: str) -> None:
    """No ``user:password@`` in a URL: bulksync would send it and keep it (the state names its
    target by URL). The message never repeats the URL, which holds the password."""
    # By hand, not urlsplit: urlsplit raises on a broken IPv6 bracket, and the caller's
    # "got '<url>'" message would then repeat the password.
    rest = url.split("//", 1)[1] if "//" in url else ""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        raise ConfigError(
            f"{what} must not carry a user name or password (user:password@...); "
            "give credentials through the environment variables the [target] table names"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
