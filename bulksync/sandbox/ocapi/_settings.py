"""The ``[ocapi]`` table: API client, paging and batch limits, answers' shapes, seeding."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulksync.sandbox._knobs import (
    MIB,
    LatencySettings,
    RateLimitSettings,
    SettingsError,
    knob,
)


@dataclass(frozen=True, slots=True)
class OcapiSettings:
    client_id: str = knob("sandbox", "API client id (Basic auth user)")
    client_secret: str = knob("sandbox", "API client secret (Basic auth password)")
    tokens: tuple[str, ...] = knob((), "static bearer tokens (never expire)")
    token_lifetime_s: float = knob(1799.0, "lifetime of an access token")
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    max_body_bytes: int = knob(5 * MIB, "larger bodies are refused (batch: 400, others: 413)")
    max_batch_parts: int = knob(50, "more subrequests in one batch get 400")
    default_count: int = knob(25, "page size of a list when no count is given")
    max_count: int = knob(200, "largest accepted count")
    max_start: int = knob(999, "largest accepted start")
    resource_state_in_body: bool = knob(
        False, "also put _resource_state in category_link bodies (the header is always sent)"
    )
    put_created_status: int = knob(
        200, "status of a PUT that creates a link: 200 as the Data API spec lists, or 201"
    )
    list_link_property: bool = knob(
        True, "listed category links carry their optional link URL; false leaves it out"
    )
    seed_catalogs: int = knob(2, "catalogs catalog-1..N created at start")
    seed_categories: int = knob(20, "categories category-0001..N (plus root) per catalog")
    catalogs_file: str = knob("", "JSONL file of catalogs/categories to create at start")

    def __post_init__(self) -> None:
        if self.put_created_status not in (200, 201):
            raise SettingsError("ocapi.put_created_status must be 200 or 201")
