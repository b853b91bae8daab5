"""Which state backend a job uses ([state] backend), opened for a run, a dry run or
``bulksync state migrate``: the engine only ever sees a :class:`StateBackend`."""

from __future__ import annotations

from contextlib import ExitStack

from bulksync.app.config import Config, normalize_base_url
from bulksync.app.progress import note
from bulksync.spi._errors import ConfigError
from bulksync.store._backend import StateBackend
from bulksync.store._state_lock import holder as state_holder
from bulksync.store.shard import Shard
from bulksync.store.state import StateStore


def state_target(config: Config) -> str:
    # One spelling per target (a trailing / or HTTPS://Host:443 is the same target).
    return f"{config.target.kind} {normalize_base_url(config.target.base_url)}"


def open_state(
    config: Config, stack: ExitStack, exclusive: bool = True, shard: Shard | None = None
) -> StateBackend | None:
    if not config.state.enabled:
        if shard is not None:
            raise ConfigError("--shard needs the shared state: [state] enabled = true")
        return None
    target = state_target(config)
    state: StateBackend
    if config.state.backend == "postgres":
        from bulksync.store.postgres import PostgresStateStore

        dsn = config.secret(config.state.dsn_env, '[state] backend = "postgres"')
        label = None if shard is None else shard.label
        state = PostgresStateStore(dsn, target, shard=label, exclusive=exclusive)
    else:
        if shard is not None:
            raise ConfigError(
                '--shard needs a state the shards share: [state] backend = "postgres" '
                "(the SQLite file is one run's at a time)"
            )
        path = config.state.path
        if not path.is_absolute():  # a config built in code: keep the state beside the results
            path = config.output.results.parent / path
        if not exclusive:
            # A dry run only reads: it may run beside a run, but its plan is then a snapshot.
            busy = state_holder(path)
            if busy is not None:
                note(
                    f"bulksync: state {path.name} is in use by {busy}: the plan reads it as it "
                    "is now"
                )
        state = StateStore(path, target, exclusive=exclusive)
    stack.callback(state.close)
    return state


def migrate_state(config: Config) -> str:
    """``bulksync state migrate``: create or upgrade the configured state's schema."""
    if config.state.backend != "postgres":
        with ExitStack() as stack:
            open_state(config, stack, exclusive=False)  # SQLite makes its tables as it opens
        return f"state {config.state.path}: schema up to date"
    from bulksync.store._pg_schema import migrate
    from bulksync.store.postgres import connect, reason

    conn = connect(config.secret(config.state.dsn_env, '[state] backend = "postgres"'))
    try:
        import psycopg

        try:
            before, after = migrate(conn)
        except psycopg.Error as exc:
            raise ConfigError(f"PostgreSQL state: {reason(exc)}") from None
    finally:
        conn.close()
    if before == after:
        return f"PostgreSQL state: schema at version {after}, up to date"
    return f"PostgreSQL state: schema migrated from version {before} to {after}"
