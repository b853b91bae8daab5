"""The SFCC OCAPI emulator: Account Manager tokens, Data API category links and the batch API.
Registered in :mod:`bulksync.sandbox._vendors` as ``VENDOR``."""

from bulksync.sandbox.ocapi._settings import OcapiSettings
from bulksync.sandbox.ocapi._vendor import VENDOR

__all__ = ["VENDOR", "OcapiSettings"]
