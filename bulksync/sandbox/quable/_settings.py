"""The ``[quable]`` table: credentials, sessions, limits and the v5/v4 answers' knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from bulksync.sandbox._knobs import (
    MIB,
    LatencySettings,
    RateLimitSettings,
    RateWindow,
    SettingsError,
    knob,
)

_QUABLE_WINDOWS = RateLimitSettings(windows=(RateWindow(6000, 600.0), RateWindow(300000, 86400.0)))


@dataclass(frozen=True, slots=True)
class QuableSettings:
    instance: str = knob("sandbox", "instance name used in JSON-LD contexts and asset URLs")
    tokens: tuple[str, ...] = knob(("sandbox-token",), "static API tokens (never expire)")
    read_only_tokens: tuple[str, ...] = knob((), "static tokens refused (403) on writes")
    read_only_status: int = knob(
        403, "status refusing a read-only token's write: 403, or 405 (the error page's reading)"
    )
    username: str = knob("sandbox", "login for POST /api_1.php/sessions")
    password: str = knob("sandbox", "password for POST /api_1.php/sessions")
    session_lifetime_s: float = knob(3600.0, "lifetime of a session access token")
    remember_lifetime_s: float = knob(2592000.0, "lifetime of the quable-remember-me token")
    session_status: int = knob(201, "HTTP status of a successful POST /api_1.php/sessions")
    refresh_invalidates_previous: bool = knob(
        True, "a remember-me refresh also invalidates the user's previous token"
    )
    latency: LatencySettings = field(default_factory=LatencySettings)
    rate_limit: RateLimitSettings = field(default_factory=lambda: _QUABLE_WINDOWS)
    max_body_bytes: int = knob(100 * MIB, "larger request bodies get 413")
    default_page_size: int = knob(30, "collection page size when no limit is given")
    max_page_size: int = knob(100, "a larger limit is clamped to this (API Platform style)")
    validation_status: int = knob(
        400, "status of a ConstraintViolationList: 400 as the docs say, or 422 (API Platform)"
    )
    duplicate_status: int = knob(409, "status when creating an id that already exists")
    unknown_reference_status: int = knob(400, "status for an unknown file, origin or target")
    duplicate_links: str = knob("reject", "a second identical v5 link: reject or allow")
    link_types: tuple[str, ...] = knob((), "known link type codes; empty = any code")
    classifications: tuple[str, ...] = knob((), "known classification ids; empty = any id")
    require_asset_id: bool = knob(True, "POST /api/assets must carry an id")
    require_classification: bool = knob(False, "POST /api/assets must carry a classification")
    seed_documents: int = knob(100, "documents doc-00001... created at start")
    documents_file: str = knob("", "JSONL file of documents to create at start")
    document_type: str = knob("product", "documentType of the counted seed documents")
    v4_success_status: int = knob(200, "status of a successful v4 links call")
    v4_update_existing: str = knob(
        "keep", "v4 mode update on an existing link: keep its sequence, or edit it"
    )

    def __post_init__(self) -> None:
        if self.duplicate_links not in ("reject", "allow"):
            raise SettingsError("quable.duplicate_links must be 'reject' or 'allow'")
        if self.read_only_status not in (403, 405):
            raise SettingsError("quable.read_only_status must be 403 or 405")
        if self.v4_update_existing not in ("keep", "edit"):
            raise SettingsError("quable.v4_update_existing must be 'keep' or 'edit'")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise SettingsError("quable page sizes: need 1 <= default_page_size <= max_page_size")
