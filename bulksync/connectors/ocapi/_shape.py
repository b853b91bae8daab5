"""What an OCAPI link line may hold (the target spec's ``input_shape``)."""

from __future__ import annotations

from bulksync.spi import EndpointForm, InputShape

# A category link joins two categories, each named by its catalog. A plain id is read too
# (every shape takes one), and refused by the connector at read time with its own words.
OCAPI_SHAPE = InputShape(endpoint_objects=(EndpointForm(("catalog", "category")),))
