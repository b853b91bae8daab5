"""What a Quable link line may hold (the target spec's ``input_shape``)."""

from __future__ import annotations

from bulksync.spi import InputShape

# Links join document or asset codes (plain strings), and carry only the generic fields.
QUABLE_SHAPE = InputShape()
