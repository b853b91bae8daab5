"""The ``[propeller]`` table: OAuth2 client, token answer, bulk limits and seeding."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulksync.sandbox._knobs import (
    MIB,
    LatencySettings,
    RateLimitSettings,
    SettingsError,
    knob,
)

TOKEN_ANSWERS = ("current", "legacy")
LINK_IDENTITIES = ("from_to", "from_to_type", "from_to_type_subtype")


@dataclass(frozen=True, slots=True)
class PropellerSettings:
    client_id: str = knob("sandbox", "OAuth2 client id")
    client_secret: str = knob("sandbox", "OAuth2 client secret")
    tokens: tuple[str, ...] = knob((), "static bearer tokens (never expire)")
    token_lifetime_s: float = knob(1800.0, "lifetime of an access token")
    token_answer: str = knob(
        "current",
        "shape of the token answer: current (expires_in a number, token_type Bearer) or "
        "legacy (the old Apigee answer: expires_in a string, token_type BearerToken)",
    )
    auth_error_shape: str = knob(
        "apigee", "body of a 401: apigee (gateway fault) or envelope (the REST error envelope)"
    )
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    max_body_bytes: int = knob(10 * MIB, "larger request bodies get 413")
    max_items_per_call: int = knob(100, "bulk calls with more links get 400")
    reject_unknown_fields: bool = knob(True, "schema error for link fields not in the docs")
    link_identity: str = knob(
        "from_to",
        "what makes a bulk item update an existing link: from_to, "
        "from_to_type or from_to_type_subtype",
    )
    seed_products: int = knob(100, "products with ids 1..N created at start")
    seed_categories: int = knob(20, "categories with ids 1..N created at start")
    seed_accounts: int = knob(
        10, "companies, contacts and users with ids 1..N each created at start (account links)"
    )
    resources_file: str = knob("", "JSONL file of resources (product, category, ...) to create")
    source: str = knob("SANDBOX", "source of the counted seed resources")
    language: str = knob("EN", "language of the counted seed resources")

    def __post_init__(self) -> None:
        if self.max_items_per_call < 1:
            raise SettingsError("propeller.max_items_per_call must be positive")
        if self.token_answer not in TOKEN_ANSWERS:
            raise SettingsError("propeller.token_answer must be 'current' or 'legacy'")
        if self.auth_error_shape not in ("apigee", "envelope"):
            raise SettingsError("propeller.auth_error_shape must be 'apigee' or 'envelope'")
        if self.link_identity not in LINK_IDENTITIES:
            raise SettingsError(
                "propeller.link_identity must be one of " + ", ".join(LINK_IDENTITIES)
            )
