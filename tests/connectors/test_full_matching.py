"""--full asset comparison against the seed's rendering of attributes (unset locales as null)."""

from __future__ import annotations


def test_quable_asset_matches_when_the_pim_renders_missing_locales_as_null() -> None:
    """Seed 001's asset sample renders every locale, unset ones as null ("en_US": null).
    An input that gives only the locales it sets then never matches the listing, so every
    --full run PUTs the asset again ("a second run ... makes no write" never holds)."""
    from pathlib import Path

    from bulksync.connectors.quable._listing import QuableLister
    from bulksync.spi._connector import RemoteItem
    from bulksync.spi._records import AssetRecord, Origin

    record = AssetRecord(
        Origin("assets.jsonl", 1),
        "blueshirt",
        file=Path("shirt.jpg"),
        attributes={"media_desc": {"en_GB": "this is a blue shirt", "fr_FR": "chemise"}},
    )
    listed = RemoteItem(
        "asset",
        "blueshirt",
        "blueshirt",
        {
            "classifications": ["dam_sort"],
            "attributes": {
                "media_desc": {"en_GB": "this is a blue shirt", "en_US": None, "fr_FR": "chemise"}
            },
            "originalFilename": "shirt.jpg",
        },
    )
    assert QuableLister().matches(record, listed)
