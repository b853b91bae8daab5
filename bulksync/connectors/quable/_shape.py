"""What a Quable link line may hold (the target spec's ``input_shape``)."""

from __future__ import annotations

from bulksync.spi import BOOLEAN, INT32, STRING, InputShape

# Links join document or asset codes (plain strings). Quable sends none of the extra fields,
# but every line before shapes read (and checked) them, and the state's content hash holds
# them: dropping them now would change the hash of such a line, and a resync after the
# upgrade would push it again.
QUABLE_SHAPE = InputShape(
    link_fields={"subtype": STRING, "priority": INT32, "isDefault": BOOLEAN, "isActive": BOOLEAN},
)
