"""A connector's request model: what each planned item costs on the wire, for the plan.

The dry run (and the first line of every run) says how many requests the job takes and how
long that is at the configured windows. Only the connector knows its stages' requests, so
it states them here, beside its stages, and the core adds them up: it never imports a
connector. The model describes the clean path (no retries, no 409 from an item created
behind the state's back); the README says what it leaves out.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from bulksync.spi._records import AssetRecord, LinkRecord, Removal

if TYPE_CHECKING:  # _spec imports this module for TargetSpec.requests
    from bulksync.spi._spec import CredentialKind

# What the plan does with an item that costs requests (skips and invalid lines cost none).
PlannedAction = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class ItemCost:
    """The requests one item takes: ``requests`` of its own, plus a share of a batch.

    A batched item (``group`` not None) travels with others of its group, ``batch`` at most
    per request, as the engine's grouping sends them (full batches, the input's tail, and
    groups flushed early when too many are open); each batch costs ``per_batch`` requests,
    the most any of its items asks for (a v4 batch holding a changed link also lists the
    group first).
    """

    requests: int = 0
    group: Hashable | None = None
    batch: int = 1
    per_batch: int = 1


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One item the plan would push or delete, with what the state or the listing knows."""

    action: PlannedAction
    record: AssetRecord | LinkRecord | Removal
    remote_id: str | None = None  # the target's id, when the state or the listing has one


class RequestModel(Protocol):
    """What a target's requests cost, from its options (``TargetSpec.requests``)."""

    def cost(self, item: PlannedItem) -> ItemCost:
        """The requests of one planned item (skips and invalid lines are never asked)."""
        ...

    def logins(self, credentials: CredentialKind) -> int:
        """Logins the run sends at its start with this form of secrets (a token: none)."""
        ...

    @property
    def session_s(self) -> float | None:
        """How often a session is renewed (a login each) over a long run; None: never."""
        ...

    def alternatives(self) -> Sequence[tuple[str, RequestModel]]:
        """Other settings of the same target worth naming, as (the setting, its model):
        the plan names one when it would take far fewer requests (Quable's v4 links)."""
        ...


class BaseRequestModel:
    """Defaults: one login for any form of secrets but a token or none, no renewal, no
    alternative. A connector overrides ``cost`` (and what else differs)."""

    session_s: float | None = None

    def cost(self, item: PlannedItem) -> ItemCost:
        raise NotImplementedError

    def logins(self, credentials: CredentialKind) -> int:
        return 0 if credentials in ("token", "none") else 1

    def alternatives(self) -> Sequence[tuple[str, RequestModel]]:
        return ()
