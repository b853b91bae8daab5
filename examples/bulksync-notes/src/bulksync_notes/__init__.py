"""bulksync-notes: links pushed as pins on the boards of a small notes API.

A worked example of a target that lives outside bulksync: this package's entry point
(``bulksync.targets``: ``notes = "bulksync_notes:SPEC"``) is all bulksync needs to find it.
See docs/writing-a-connector.md in the bulksync repository for the walk-through.
"""

from bulksync.spi import InputShape, TargetSpec
from bulksync_notes._connector import NotesConnector, NotesOptions

SPEC = TargetSpec(
    name="notes",
    options=NotesOptions,
    connector=NotesConnector,
    # Pins are links: created one by one, deletable, and listable board by board.
    capabilities=NotesConnector.capabilities,
    description="pins on the boards of the notes API (a worked example)",
    rate_windows=((50, 1.0),),  # the API's documented limit: 50 requests a second
    credentials=("token",),  # a bearer token, sent as it is
    input_shape=InputShape(),  # a board and a note by their ids (strings) only
)

__all__ = ["SPEC", "NotesConnector", "NotesOptions"]
