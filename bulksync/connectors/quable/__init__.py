"""The Quable PIM connector: v5 assets (two steps or remotePath), v5 or v4 links, sessions."""

from ._connector import QuableConnector, QuableOptions, build_quable

__all__ = ["QuableConnector", "QuableOptions", "build_quable"]
