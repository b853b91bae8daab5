"""``bulksync state migrate``: create or upgrade the configured state's schema (the
PostgreSQL state's is versioned; a run migrates too, so this is for deployments whose runs'
database user may not create tables, or that migrate before rolling out)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bulksync.app._state_open import migrate_state
from bulksync.app.config import load_config


def state_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="state_action", metavar="ACTION", required=True)
    migrate = actions.add_parser("migrate", help="create or upgrade the state's schema")
    migrate.add_argument("--config", type=Path, required=True, help="the job's TOML config")


def state_command(args: argparse.Namespace) -> int:
    config = load_config(args.config, needs_inputs=False)
    print(migrate_state(config))
    return 0
