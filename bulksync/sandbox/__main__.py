"""``python -m bulksync.sandbox``: the same as ``bulksync sandbox``."""

from bulksync.sandbox import main

raise SystemExit(main())
