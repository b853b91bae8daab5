"""What a Propeller link line may hold (the target spec's ``input_shape``)."""

from __future__ import annotations

from bulksync.spi import BOOLEAN, INT32, STRING, EndpointForm, InputShape

# Both ends of a link are looked up by the same key: a product or category id, or an id in a
# source system (with the language its text is in).
PROPELLER_SHAPE = InputShape(
    endpoint_objects=(
        EndpointForm(("class", "id"), numeric=frozenset({"id"})),
        EndpointForm(("class", "source", "sourceId"), optional=("language",)),
    ),
    # `priority` goes to a GraphQL Int: signed 32 bits.
    link_fields={"subtype": STRING, "priority": INT32, "isDefault": BOOLEAN, "isActive": BOOLEAN},
)
