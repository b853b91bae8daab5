"""The job against the target's declared capabilities, before the first request.

Everything here is known from the config and the command line alone, so a job the target
cannot carry out (assets for a links-only API, --prune where nothing can be deleted, --full
where nothing can be listed, --prune without a state) stops at once with one line and exit 2:
runs and dry runs alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bulksync.spi._config_errors import did_you_mean
from bulksync.spi._connector import Capabilities, Connector
from bulksync.spi._errors import ConfigError
from bulksync.spi._records import Kind

PRUNE_NEEDS_STATE = "--prune needs the state store: drop --no-state (or set [state] enabled = true)"


def _names(kinds: Sequence[Kind] | frozenset[Kind]) -> str:
    return " and ".join(f"{kind}s" for kind in sorted(kinds)) or "nothing"


def check_job(
    connector: Connector,
    kinds: Sequence[Kind],
    *,
    prune: bool,
    full: bool,
    state: bool,
) -> None:
    """Raise :class:`ConfigError` for what the target cannot do: a kind it does not take,
    ``--prune`` where it cannot delete, ``--full`` where it cannot list."""
    caps: Capabilities = connector.capabilities
    target = connector.name
    for kind in kinds:
        if kind not in caps.kinds:
            raise ConfigError(
                f"the {target} target takes {_names(caps.kinds)} only: remove the {kind}s "
                f"input ([inputs] {kind}s or --{kind}s)"
            )
    if prune:
        if not state:
            raise ConfigError(PRUNE_NEEDS_STATE)
        for kind in kinds:
            if kind not in caps.prune:
                can = f"(it can prune {_names(caps.prune)})" if caps.prune else ""
                raise ConfigError(
                    f"--prune is not supported for {target} {kind}s {can}".rstrip()
                    + ": the API documents no delete for them; run without --prune"
                )
    unlisted = [kind for kind in kinds if kind not in caps.listing]
    if full and unlisted:
        # Refused rather than quietly turned into "push everything": --no-state says that.
        raise ConfigError(
            f"--full is not supported for {target} {_names(unlisted)}: the API documents no "
            "listing to compare with; run without --full (the state decides what to push) "
            "or with --no-state (every item is pushed again)"
        )


def check_stage_names(connector: Connector, names: Mapping[str, int]) -> None:
    """``[limits] stage_concurrency`` keys are stage names: a typo (``uplaod``) would leave
    that stage at the default worker count without a word."""
    known: set[str] = set()
    for kind in connector.capabilities.kinds:
        for stages in (connector.stages, connector.delete_stages):
            try:
                known.update(stage.name for stage in stages(kind))
            except ConfigError:
                continue  # a kind or a prune this target does not do: no stage to name
    for name in names:
        if name not in known:
            raise ConfigError(
                f"[limits] stage_concurrency: no stage '{name}' on the {connector.name} target"
                f"{did_you_mean(name, known)} (stages: {', '.join(sorted(known))})"
            )
