"""The reader checks link lines against the shape the run's target declares (InputShape), and
the content hash of a record read from the same line stays what it was before shapes existed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.app.cli import main
from bulksync.connectors.fake._shape import FAKE_SHAPE
from bulksync.connectors.ocapi._shape import OCAPI_SHAPE
from bulksync.connectors.propeller._shape import PROPELLER_SHAPE
from bulksync.connectors.quable._shape import QUABLE_SHAPE
from bulksync.inputs._shape_rules import ANY_BUILT_IN
from bulksync.inputs.readers import read_records
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Origin
from bulksync.spi._shapes import INT32, STRING, EndpointForm, InputShape, LinkField, union
from bulksync.store.state import content_hash

Item = AssetRecord | LinkRecord | BadRecord

# A third party's target: its own endpoint form and link fields, known to no core module.
SHOP = InputShape(
    endpoint_objects=(EndpointForm(("sku", "market"), numeric=frozenset({"sku"})),),
    link_fields={"weight": LinkField("integer", (0, 100)), "note": STRING},
)


def read(tmp_path: Path, name: str, text: str, kind: Kind = "link", **kw: Any) -> list[Item]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with read_records(path, kind, **kw) as stream:
        return list(stream)


def jsonl(*rows: dict[str, Any]) -> str:
    return "".join(orjson.dumps(row).decode() + "\n" for row in rows)


# --- the state's hashes across the upgrade ---------------------------------------------------

# Computed by the code before InputShape (commit 0ff91dd) for these very lines: a state
# written then must find every line unchanged now, or a resync would push it all again.
V1_HASHES = [
    (
        {"from": "doc-1", "to": "doc-2", "type": "ref", "sequence": 3},
        "b6b54a52475d0674e2f9c775849dd250",
    ),
    (
        {"from": "doc-1", "to": "asset-9", "type": "image", "attributes": {"b": 1, "a": [1, "x"]}},
        "d494975141df5dfce5373cf2be1d55ce",
    ),
    (
        {
            "from": {"class": "product", "id": 42},
            "to": {"class": "category", "source": "erp", "sourceId": "C7", "language": "NL"},
            "type": "parent",
            "subtype": "main",
            "priority": 5,
            "isDefault": True,
            "isActive": False,
        },
        "98675194822e2e11081cd87cb76757d3",
    ),
    (
        {
            "from": {"class": "product", "id": "42"},
            "to": {"class": "product", "id": 43},
            "type": "related",
            "sequence": 0,
            "subtype": "x",
        },
        "1aa05fa7ba44877bd3731f8a3d918f5c",
    ),
    (
        {
            "from": {"catalog": "cat", "category": "shoes"},
            "to": "P-1",
            "type": "other",
            "sequence": 2,
        },
        "645299e6c7ed88b3426c7f98bd758253",
    ),
    (
        {
            "from": {"class": "product", "id": 1},
            "to": {"class": "product", "id": 2},
            "type": "related",
            "priority": -7,
            "isActive": True,
            "isDefault": None,
            "attributes": {"k": "v"},
        },
        "edaeca078ec3afd4e705dd0ec63368d9",
    ),
]
V1_ASSET_HASHES = [
    (
        {
            "id": "A1",
            "remotePath": "https://cdn.example/x.png",
            "classification": "images",
            "attributes": {"alt": "x"},
        },
        "67df0ca3be6a20bbfabab8e5a37e980f",
    ),
    ({"id": "A2", "remotePath": "https://cdn.example/y.png"}, "65d80710880a605ed90b0a689067049b"),
]


@pytest.mark.parametrize(
    "shape", [None, PROPELLER_SHAPE, FAKE_SHAPE], ids=["none", "propeller", "fake"]
)
def test_links_read_now_hash_as_they_did_before_shapes(
    tmp_path: Path, shape: InputShape | None
) -> None:
    items = read(tmp_path, "l.jsonl", jsonl(*(row for row, _ in V1_HASHES)), shape=shape)
    if shape is PROPELLER_SHAPE:  # the OCAPI line is no Propeller line
        assert isinstance(items[4], BadRecord)
        del items[4]
        expected = [digest for n, (_, digest) in enumerate(V1_HASHES) if n != 4]
    else:
        expected = [digest for _, digest in V1_HASHES]
    assert [content_hash(item) for item in items if not isinstance(item, BadRecord)] == expected


# Lines the Quable and OCAPI readers took before shapes, with the link fields every v1 target
# read (and these two ignored): computed by the code before InputShape (commit 2350319). A
# state written then must find them unchanged, or a resync after the upgrade pushes them all.
V1_CODE_LINK_HASHES = [
    (
        {"from": "A", "to": "B", "type": "rel", "priority": 3, "isActive": True},
        "396da50512a47edcd9be56959ddd358e",
    ),
]


@pytest.mark.parametrize("shape", [QUABLE_SHAPE, OCAPI_SHAPE], ids=["quable", "ocapi"])
def test_code_links_with_v1_link_fields_hash_as_before_shapes(
    tmp_path: Path, shape: InputShape
) -> None:
    items = read(tmp_path, "l.jsonl", jsonl(*(row for row, _ in V1_CODE_LINK_HASHES)), shape=shape)
    assert [content_hash(item) for item in items if not isinstance(item, BadRecord)] == [
        digest for _, digest in V1_CODE_LINK_HASHES
    ]


def test_assets_read_now_hash_as_they_did_before_shapes(tmp_path: Path) -> None:
    items = read(tmp_path, "a.jsonl", jsonl(*(row for row, _ in V1_ASSET_HASHES)), "asset")
    assert [content_hash(item) for item in items] == [digest for _, digest in V1_ASSET_HASHES]


def _v1_content_hash(record: AssetRecord | LinkRecord, extra: dict[str, Any]) -> str:
    """The content hash as it was written before InputShape, field by field (frozen copy)."""
    if isinstance(record, AssetRecord):
        stamp: object = None
        if record.file is not None:
            info = record.file.stat()
            stamp = [str(record.file), info.st_size, info.st_mtime_ns]
        doc: object = [
            record.id,
            stamp,
            record.remote_path,
            record.classification,
            record.attributes,
        ]
    else:
        names = ("subtype", "priority", "isDefault", "isActive")
        doc = [record.from_, record.to, record.type, record.sequence]
        doc += [extra.get(name) for name in names] + [record.attributes]
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def test_a_local_file_asset_hashes_by_path_size_and_mtime_as_before(tmp_path: Path) -> None:
    media = tmp_path / "img.png"
    media.write_bytes(b"\x89PNG data")
    os.utime(media, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    items = read(
        tmp_path, "a.jsonl", jsonl({"id": "F1", "file": "img.png", "attributes": {"x": 1}}), "asset"
    )
    record = items[0]
    assert isinstance(record, AssetRecord)
    before = content_hash(record)
    assert before == _v1_content_hash(record, {})
    media.write_bytes(b"\x89PNG other data")  # another size: another hash, the v1 way too
    assert content_hash(record) != before
    assert content_hash(record) == _v1_content_hash(record, {})


def test_a_field_no_v1_target_had_changes_the_hash_and_only_when_given() -> None:
    origin = Origin("l.jsonl", 1)
    plain = LinkRecord(origin, "a", "b", "t", 1)
    weighted = LinkRecord(origin, "a", "b", "t", 1, extra={"weight": 3})
    assert content_hash(plain) == _v1_content_hash(plain, {})
    assert content_hash(weighted) != content_hash(plain)
    assert content_hash(weighted) != content_hash(
        LinkRecord(origin, "a", "b", "t", 1, extra={"weight": 4})
    )
    assert content_hash(weighted) == content_hash(
        LinkRecord(Origin("m", 9), "a", "b", "t", 1, extra={"weight": 3})
    )
    # A v1 field keeps its v1 place, whichever other field comes with it.
    both = LinkRecord(origin, "a", "b", "t", 1, extra={"subtype": "s", "weight": 3})
    assert content_hash(both) != content_hash(
        LinkRecord(origin, "a", "b", "t", 1, extra={"subtype": "s"})
    )


# --- the built-in shapes ----------------------------------------------------------------------


def test_no_target_and_the_fake_accept_what_any_built_in_target_does() -> None:
    built_ins = union(PROPELLER_SHAPE, OCAPI_SHAPE, QUABLE_SHAPE)
    assert built_ins == ANY_BUILT_IN
    assert built_ins == FAKE_SHAPE


def test_the_message_for_unknown_endpoint_keys_names_every_form_of_the_shape(
    tmp_path: Path,
) -> None:
    row = {"from": {"foo": 1}, "to": "x", "type": "t"}
    (none,) = read(tmp_path, "l.jsonl", jsonl(row))
    assert isinstance(none, BadRecord)
    assert none.reason == (
        "field 'from' must be an object with keys {class, id}, "
        "{class, source, sourceId[, language]} or {catalog, category}, got keys {foo}"
    )
    (ocapi,) = read(tmp_path, "l.jsonl", jsonl(row), shape=OCAPI_SHAPE)
    assert isinstance(ocapi, BadRecord)
    assert (
        ocapi.reason
        == "field 'from' must be an object with keys {catalog, category}, got keys {foo}"
    )


def test_quable_lines_take_codes_only_and_the_v1_link_fields_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"from": {"class": "product", "id": 1}, "to": "x", "type": "t"},
        {"from": "P1", "to": "A1", "type": "t", "subtype": "s", "priority": "high"},
        {"from": "P1", "to": "A2", "type": "t", "subtype": "s", "colour": "red"},
    ]
    obj, typed, coded = read(tmp_path, "l.jsonl", jsonl(*rows), shape=QUABLE_SHAPE)
    assert isinstance(obj, BadRecord)
    assert obj.reason == "field 'from' must be a non-empty string, got object"
    # The link fields every target read before shapes are read, and checked, as they were.
    assert isinstance(typed, BadRecord)
    assert typed.reason == "field 'priority' must be an integer, got string"
    assert isinstance(coded, LinkRecord) and coded.extra == {"subtype": "s"}
    # Any other field is no Quable field: ignored with a warning.
    assert "unknown field 'colour'" in capsys.readouterr().err
    *_, strict = read(tmp_path, "l.jsonl", jsonl(*rows), shape=QUABLE_SHAPE, strict_fields=True)
    assert isinstance(strict, BadRecord)
    assert strict.reason == "unknown field 'colour'"
    assert strict.key == "P1->A2:t"


# --- a third party's shape --------------------------------------------------------------------


def test_a_shape_of_its_own_drives_endpoints_fields_and_bounds(tmp_path: Path) -> None:
    end = {"sku": 123, "market": "nl"}
    rows = [
        {"from": end, "to": {"sku": "9", "market": "be"}, "type": "t", "weight": 100, "note": "n"},
        {"from": end, "to": "x", "type": "t", "weight": 101},
        {"from": end, "to": "x", "type": "t", "note": 5},
        {"from": {"sku": 1, "market": 2}, "to": "x", "type": "t"},
        {"from": {"class": "product", "id": 1}, "to": "x", "type": "t"},
    ]
    good, heavy, note, market, propeller = read(tmp_path, "l.jsonl", jsonl(*rows), shape=SHOP)
    assert isinstance(good, LinkRecord)
    assert good.extra == {"weight": 100, "note": "n"}
    assert good.from_ == end
    assert (
        isinstance(heavy, BadRecord)
        and heavy.reason == "field 'weight' is out of range: 0 to 100, got 101"
    )
    assert heavy.key == '{"market":"nl","sku":123}->x:t'  # still named by its endpoints
    assert (
        isinstance(note, BadRecord) and note.reason == "field 'note' must be a string, got integer"
    )
    assert isinstance(market, BadRecord)
    assert market.reason == "field 'from.market' must be a non-empty string, got integer"
    assert isinstance(propeller, BadRecord)
    assert (
        propeller.reason
        == "field 'from' must be an object with keys {sku, market}, got keys {class, id}"
    )


def test_csv_cells_are_converted_by_the_types_the_shape_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "from,to,type,Weight,note,wieght\n"
        '"{""sku"": 1, ""market"": ""m""}",x,t, 7 ,12,\n'
        "P,x,t,heavy,,\n"
    )
    first, second = read(tmp_path, "l.csv", text, shape=SHOP)
    assert isinstance(first, LinkRecord)
    assert first.extra == {"weight": 7, "note": "12"}  # a declared string stays a string
    assert isinstance(second, BadRecord)
    assert second.reason == "field 'weight' must be an integer, got 'heavy'"
    assert "unknown CSV column 'wieght' (did you mean 'weight'?)" in capsys.readouterr().err


def test_a_shape_cannot_redeclare_generic_fields_nor_clash_in_a_union() -> None:
    with pytest.raises(ValueError, match="generic"):
        InputShape(link_fields={"sequence": INT32})
    with pytest.raises(ValueError, match="declared as"):
        union(SHOP, InputShape(link_fields={"note": INT32}))
    with pytest.raises(ValueError, match="distinct keys"):
        EndpointForm(("a", "a"))
    with pytest.raises(ValueError, match="only an integer"):
        LinkField("string", (0, 1))
    assert EndpointForm(("a",), optional=("b", "c")).text() == "{a[, b][, c]}"
    assert set(EndpointForm(("a",), optional=("b",)).key_sets()) == {
        frozenset("a"),
        frozenset("ab"),
    }


# --- the run gives the reader its target's shape -----------------------------------------------


def _job(tmp_path: Path, kind: str, rows: list[dict[str, Any]]) -> Path:
    (tmp_path / "links.jsonl").write_text(jsonl(*rows), encoding="utf-8")
    base = "http://127.0.0.1:1/v2" if kind == "propeller" else "http://127.0.0.1:1"
    config = tmp_path / "job.toml"
    config.write_text(
        f'[target]\nkind = "{kind}"\nbase_url = "{base}"\nallow_http = true\n'
        '[inputs]\nlinks = "links.jsonl"\n'
        '[output]\nresults = "results.jsonl"\nprogress = false\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("kind", ["propeller", "quable"])
def test_a_dry_run_reads_lines_by_its_target_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # A plan needs no secrets (and sends nothing: port 1 would refuse it).
    ends = {"from": {"class": "product", "id": 1}, "to": {"class": "product", "id": 2}}
    rows = [{**ends, "type": "parts", "subtype": "s", "priority": "high"}]
    assert main(["run", "--config", str(_job(tmp_path, kind, rows)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    if kind == "propeller":
        assert "links.jsonl:1: field 'priority' must be an integer, got string" in out
    else:  # Quable: codes only, and no 'priority' of its own to check
        assert "links.jsonl:1: field 'from' must be a non-empty string, got object" in out
    assert "0 create, 0 update, 0 skip, 1 invalid" in out


def test_a_link_field_of_an_unknown_type_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="not 'int'"):
        LinkField("int")  # type: ignore[arg-type]
