"""What the fake target takes: what any built-in target does, so an example written for any
of them runs on it (tests check this equals the union of their shapes)."""

from __future__ import annotations

from bulksync.spi import BOOLEAN, INT32, STRING, EndpointForm, InputShape

FAKE_SHAPE = InputShape(
    endpoint_objects=(
        EndpointForm(("class", "id"), numeric=frozenset({"id"})),
        EndpointForm(("class", "source", "sourceId"), optional=("language",)),
        EndpointForm(("catalog", "category")),
    ),
    link_fields={"subtype": STRING, "priority": INT32, "isDefault": BOOLEAN, "isActive": BOOLEAN},
)
