"""The in-process fake target of the tests and the quick examples."""

from ._fake import SPEC, FakeConnector, FakeServer, FakeSettings, FakeTokenSource

__all__ = ["SPEC", "FakeConnector", "FakeServer", "FakeSettings", "FakeTokenSource"]
