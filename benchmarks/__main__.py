"""``python -m benchmarks [--smoke] [--only NAMES] [--out DIR]``: see ``benchmarks.runner``."""

from .runner import main

raise SystemExit(main())
