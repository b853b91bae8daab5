"""The Propeller connector: bulk links by lookup key, with per-item results, and OAuth."""

from ._connector import PropellerConnector, PropellerOptions, build_propeller

__all__ = ["PropellerConnector", "PropellerOptions", "build_propeller"]
