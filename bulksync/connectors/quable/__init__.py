"""The Quable PIM connector: v5 assets (two steps or remotePath), v5 or v4 links, sessions."""

from ._connector import SPEC, QuableConnector, QuableOptions

__all__ = ["SPEC", "QuableConnector", "QuableOptions"]
