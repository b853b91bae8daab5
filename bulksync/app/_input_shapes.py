"""The input shape of the run's target, for the readers.

Stand-in until the target specs carry it (``TargetSpec.input_shape``, issue 14): then this is
``spec_of(kind).input_shape`` and the table goes.
"""

from __future__ import annotations

from bulksync.connectors.fake._shape import FAKE_SHAPE
from bulksync.connectors.ocapi._shape import OCAPI_SHAPE
from bulksync.connectors.propeller._shape import PROPELLER_SHAPE
from bulksync.connectors.quable._shape import QUABLE_SHAPE
from bulksync.spi._shapes import InputShape

_SHAPES: dict[str, InputShape] = {
    "fake": FAKE_SHAPE,
    "quable": QUABLE_SHAPE,
    "propeller": PROPELLER_SHAPE,
    "ocapi": OCAPI_SHAPE,
}


def input_shape(kind: str) -> InputShape | None:
    """The shape of target ``kind``'s lines; None (what any built-in takes) for another."""
    return _SHAPES.get(kind)
