"""The arguments of `bulksync bench`, kept out of the main parser's module."""

from __future__ import annotations

import argparse
from pathlib import Path

from bulksync.app._bench_ramp import RampOptions


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Its own options; the log options (-v, --log-file ...) are added by the main parser."""
    parser.add_argument("--config", type=Path, help="the job's TOML config: its [target]")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="benchmark the embedded sandbox's Quable instead (no account needed)",
    )
    ramp = parser.add_argument_group("ramp")
    ramp.add_argument("--start", type=float, default=5.0, help="req/s of the first stage (5)")
    ramp.add_argument("--factor", type=float, default=2.0, help="each stage x this (2)")
    ramp.add_argument(
        "--stage-seconds", type=float, default=10.0, help="how long each stage lasts (10)"
    )
    ramp.add_argument(
        "--ceiling", type=float, default=1000.0, help="the highest rate offered, req/s (1000)"
    )
    ramp.add_argument(
        "--max-p95-ms",
        type=float,
        help="a stage whose p95 passes this did not hold "
        "(default: 3x the first stage's p95, at least 50 ms)",
    )
    ramp.add_argument(
        "--max-error-share",
        type=float,
        default=0.05,
        help="a stage whose errors and 429s pass this share did not hold (0.05)",
    )
    parser.add_argument(
        "--writes",
        action="store_true",
        help="create then delete synthetic objects instead of reading (cleaned up at the end)",
    )
    parser.add_argument(
        "--prefix",
        default="bulksync-bench-",
        help="id prefix of the synthetic objects of --writes (bulksync-bench-)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--runs-dir", type=Path, help="where the run folder goes (default: [output] runs_dir)"
    )
    sandbox = parser.add_argument_group("with --sandbox")
    sandbox.add_argument(
        "--sandbox-latency-ms", type=float, default=20.0, help="its answers' latency (20)"
    )
    sandbox.add_argument(
        "--sandbox-degrade-above",
        type=float,
        default=0.0,
        metavar="RPS",
        help="above this many req/s its answers slow down, 10 ms per req/s more (0: never)",
    )
    sandbox.add_argument(
        "--sandbox-set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="any sandbox knob, e.g. quable.rate_limit.windows=6000/600 (repeatable)",
    )


def bench(args: argparse.Namespace) -> int:
    from bulksync.app.bench import BenchOptions, run_bench
    from bulksync.app.config import load_config

    options = BenchOptions(
        ramp=RampOptions(
            start=args.start,
            factor=args.factor,
            stage_seconds=args.stage_seconds,
            ceiling=args.ceiling,
            max_p95_ms=args.max_p95_ms,
            max_error_share=args.max_error_share,
        ),
        writes=args.writes,
        prefix=args.prefix,
        json=args.json,
        runs_dir=args.runs_dir,
        sandbox=args.sandbox,
        sandbox_latency_ms=args.sandbox_latency_ms,
        sandbox_degrade_above=args.sandbox_degrade_above,
        sandbox_set=list(args.sandbox_set),
    )
    config = None if args.config is None else load_config(args.config, {}, needs_inputs=False)
    if config is None and not args.sandbox:
        from bulksync.spi._errors import ConfigError

        raise ConfigError("bench needs a target: --config JOB.toml, or --sandbox")
    return run_bench(config, options).exit_code
