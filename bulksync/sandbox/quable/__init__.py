"""The Quable PIM emulator: v5 (API Platform) documents, assets, files and links, v4 links,
and login sessions. Registered in :mod:`bulksync.sandbox._vendors` as ``VENDOR``."""

from bulksync.sandbox.quable._settings import QuableSettings
from bulksync.sandbox.quable._vendor import VENDOR

__all__ = ["VENDOR", "QuableSettings"]
