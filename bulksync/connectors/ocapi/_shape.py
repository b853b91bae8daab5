"""What an OCAPI link line may hold (the target spec's ``input_shape``)."""

from __future__ import annotations

from bulksync.spi import BOOLEAN, INT32, STRING, EndpointForm, InputShape

# A category link joins two categories, each named by its catalog. A plain id is read too
# (every shape takes one), and refused by the connector at read time with its own words.
# OCAPI sends none of the extra fields, but every line before shapes read (and checked) them,
# and the state's content hash holds them: dropping them now would change the hash of such a
# line, and a resync after the upgrade would push it again.
OCAPI_SHAPE = InputShape(
    endpoint_objects=(EndpointForm(("catalog", "category")),),
    link_fields={"subtype": STRING, "priority": INT32, "isDefault": BOOLEAN, "isActive": BOOLEAN},
)
