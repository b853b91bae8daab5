"""``[budget] backend = "redis"``: the budget every process of a tenant shares, built here.

A URL with credentials is a secret: it can only come from ``url_env``, is read through
:meth:`Config.secret`, so it and its password are masked in every line bulksync writes, and
messages name the server by :func:`shown_url`, which never holds a password.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from bulksync.app.config import Config, check_redis_url, normalize_base_url
from bulksync.engine._redis_budget import RedisBudget
from bulksync.spi._redact import register_secret


def budget_key(config: Config) -> str:
    """``[budget] key``, or what the quota belongs to: the target kind and its normalised
    base URL (two jobs with other credentials to one instance share its limits all the same)."""
    if config.budget.key:
        return config.budget.key
    return f"{config.target.kind} {normalize_base_url(config.target.base_url)}"


def redis_url(config: Config) -> str:
    budget = config.budget
    if budget.url_env:
        plain = os.environ.get(budget.url_env, "")
        if plain and "@" not in plain:
            # No credentials in it: the server's address is no secret, and masking it would
            # hide from the messages which Redis was out of reach.
            check_redis_url(plain, f"[budget] url_env ({budget.url_env})")
            return plain
        url = config.secret(budget.url_env, "[budget] url_env")  # masked from now on
        check_redis_url(url, f"[budget] url_env ({budget.url_env})")
        register_secret(urlsplit(url).password)
        return url
    assert budget.url is not None  # config.check_budget: one of them
    return budget.url


def shown_url(url: str) -> str:
    """The URL without its user name and password, for messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def redis_budget(config: Config, windows: Sequence[tuple[int, float]]) -> RedisBudget:
    limits = config.limits
    url = redis_url(config)
    return RedisBudget(
        windows,
        url=url,
        shown=shown_url(url),
        key=budget_key(config),
        timeout_s=config.budget.timeout_s,
        pace=limits.pace,
        max_pause_s=limits.max_elapsed_s,
        max_quota_wait_s=limits.max_quota_wait_s,
        wait_for_quota=limits.wait_for_quota,
    )
