"""The Propeller emulator: OAuth2 client credentials and the REST v2 bulk links API.
Registered in :mod:`bulksync.sandbox._vendors` as ``VENDOR``."""

from bulksync.sandbox.propeller._settings import PropellerSettings
from bulksync.sandbox.propeller._vendor import VENDOR

__all__ = ["VENDOR", "PropellerSettings"]
