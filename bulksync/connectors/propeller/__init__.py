"""The Propeller connector: bulk links by lookup key, with per-item results, and OAuth."""

from ._connector import SPEC, PropellerConnector, PropellerOptions

__all__ = ["SPEC", "PropellerConnector", "PropellerOptions"]
