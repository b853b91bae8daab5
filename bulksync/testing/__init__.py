"""The conformance suite a connector author points at their target (needs pytest).

``TestMine = conformance_tests(Subject(...))`` in a test module yields the tests of the promises
every connector keeps; :func:`fault_proxy` is the misbehaving server in front of any sandbox.
See docs/writing-a-connector.md.
"""

from bulksync.testing._proxy import FaultProxy, Faults, ProxyStats, fault_proxy
from bulksync.testing._suite import Bench, Subject, conformance_tests

__all__ = [
    "Bench",
    "FaultProxy",
    "Faults",
    "ProxyStats",
    "Subject",
    "conformance_tests",
    "fault_proxy",
]
