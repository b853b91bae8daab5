"""Tests for the streaming JSONL/CSV readers in bulksync.inputs.readers."""

from __future__ import annotations

import os
import re
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulksync.inputs.readers import read_records
from bulksync.spi._errors import InputFileError
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, link_key

Item = AssetRecord | LinkRecord | BadRecord


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def jsonl(*objects: Any) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def read(path: Path, kind: Kind, **kwargs: Any) -> list[Item]:
    with read_records(path, kind, **kwargs) as stream:
        return list(stream)


def lines_and_types(items: list[Item]) -> list[tuple[int, str]]:
    return [(item.origin.line, type(item).__name__) for item in items]


def only(items: list[Item]) -> Item:
    assert len(items) == 1, items
    return items[0]


def bad(items: list[Item]) -> BadRecord:
    item = only(items)
    assert isinstance(item, BadRecord), item
    return item


# --- JSONL assets ------------------------------------------------------------------------------


def test_jsonl_assets_good(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in" / "assets.jsonl",
        jsonl(
            {"id": "a1", "file": "img/a.jpg", "classification": "photo", "attributes": {"k": 1}},
            {"id": "a2", "remotePath": "https://cdn.example.com/b.png", "extra": "ignored"},
            {"id": "a3", "remotePath": "HTTP://cdn.example.com/c.png"},
        ),
    )
    items = read(path, "asset")
    assert lines_and_types(items) == [(1, "AssetRecord"), (2, "AssetRecord"), (3, "AssetRecord")]
    a1, a2, a3 = items
    assert isinstance(a1, AssetRecord) and isinstance(a2, AssetRecord)
    assert a1.origin.path == str(path)
    assert a1.id == "a1"
    assert a1.file == (tmp_path / "in" / "img" / "a.jpg").resolve()
    assert a1.file.is_absolute()
    assert a1.remote_path is None
    assert a1.classification == "photo"
    assert a1.attributes == {"k": 1}
    assert a2.file is None
    assert a2.remote_path == "https://cdn.example.com/b.png"
    assert a2.classification is None
    assert a2.attributes == {}
    assert isinstance(a3, AssetRecord) and a3.remote_path == "HTTP://cdn.example.com/c.png"


def test_missing_asset_file_is_not_checked_here(tmp_path: Path) -> None:
    path = write(tmp_path / "assets.jsonl", jsonl({"id": "a", "file": "nowhere/none.jpg"}))
    item = only(read(path, "asset"))
    assert isinstance(item, AssetRecord)
    assert item.file == tmp_path.resolve() / "nowhere" / "none.jpg"


def test_media_root(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    path = write(
        tmp_path / "in" / "assets.jsonl",
        jsonl({"id": "a", "file": "x/a.jpg"}, {"id": "b", "file": str(media / "b.jpg")}),
    )
    a, b = read(path, "asset", media_root=media)
    assert isinstance(a, AssetRecord) and a.file == media.resolve() / "x" / "a.jpg"
    # An absolute path is fine as long as it stays inside the root.
    assert isinstance(b, AssetRecord) and b.file == media.resolve() / "b.jpg"


@pytest.mark.parametrize(
    "file_value",
    ["../a.jpg", "x/../../a.jpg", "/etc/passwd", "OUTSIDE"],
)
def test_path_escape(tmp_path: Path, file_value: str) -> None:
    media = tmp_path / "media"
    media.mkdir()
    if file_value == "OUTSIDE":
        file_value = str(tmp_path / "other" / "a.jpg")
    path = write(tmp_path / "assets.jsonl", jsonl({"id": "a", "file": file_value}))
    record = bad(read(path, "asset", media_root=media))
    assert record.reason == f"file path '{file_value}' escapes the media root"
    assert record.key == "a"
    assert record.kind == "asset"


def test_a_file_name_with_a_line_break_is_refused_on_its_line(tmp_path: Path) -> None:
    """The name goes into the upload's Content-Disposition, where CR/LF would end the header."""
    path = write(
        tmp_path / "assets.jsonl",
        jsonl(
            {"id": "ok", "file": 'photo été "1".png'},
            {"id": "lf", "file": "evil\nContent-Type: x.png"},
            {"id": "cr", "file": "x/evil\r.png"},
            {"id": "tab", "file": "tab\there.png"},
        ),
    )
    ok, lf, cr, tab = read(path, "asset")
    assert isinstance(ok, AssetRecord) and ok.file is not None
    assert ok.file.name == 'photo été "1".png'
    for record, name in ((lf, "evil\nContent-Type: x.png"), (cr, "evil\r.png")):
        assert isinstance(record, BadRecord), record
        assert record.reason == (
            f"file name {name!r} contains a line break or another control character; "
            "it cannot be sent as an upload's file name"
        )
        assert "\n" not in record.reason and "\r" not in record.reason  # one line
    assert (lf.origin.line, cr.origin.line) == (2, 3)
    assert isinstance(tab, AssetRecord)  # a tab is a valid header character


def test_path_escape_relative_to_input_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "in" / "assets.jsonl", jsonl({"id": "a", "file": "../a.jpg"}))
    assert "escapes the media root" in bad(read(path, "asset")).reason


def test_symlink_escape(tmp_path: Path) -> None:
    media = tmp_path / "media"
    outside = tmp_path / "outside"
    media.mkdir()
    write(outside / "secret.jpg", b"x")
    write(media / "real.jpg", b"x")
    (media / "evil.jpg").symlink_to(outside / "secret.jpg")
    (media / "evil_dir").symlink_to(outside, target_is_directory=True)
    (media / "ok.jpg").symlink_to(media / "real.jpg")
    write(outside / "deep" / "er" / "x.jpg", b"x")
    (media / "deep_link").symlink_to(outside / "deep" / "er", target_is_directory=True)
    (media / "sub").mkdir()
    path = write(
        tmp_path / "assets.jsonl",
        jsonl(
            {"id": "a", "file": "evil.jpg"},
            {"id": "b", "file": "evil_dir/secret.jpg"},
            {"id": "c", "file": "ok.jpg"},
            # ".." after a symlink climbs from the link's target: outside/deep/x.jpg.
            {"id": "d", "file": "deep_link/../x.jpg"},
            {"id": "e", "file": "sub/../real.jpg"},
            {"id": "f", "file": "evil.jpg"},  # a second time, once the folder is cached
        ),
    )
    a, b, c, d, e, f = read(path, "asset", media_root=media)
    assert isinstance(a, BadRecord) and a.reason == "file path 'evil.jpg' escapes the media root"
    assert isinstance(b, BadRecord) and "escapes the media root" in b.reason
    assert isinstance(c, AssetRecord) and c.file == (media / "real.jpg").resolve()
    assert isinstance(d, BadRecord) and "escapes the media root" in d.reason
    assert isinstance(e, AssetRecord) and e.file == (media / "real.jpg").resolve()
    assert isinstance(f, BadRecord) and "escapes the media root" in f.reason


def test_remote_path_must_be_http(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"id": "a", "remotePath": "ftp://x/y.jpg"}))
    record = bad(read(path, "asset"))
    assert record.reason == "field 'remotePath' must start with http:// or https://"
    assert record.key == "a"


# --- the malformed corpus ----------------------------------------------------------------------


def test_malformed_jsonl_corpus(tmp_path: Path) -> None:
    good = b'{"id": "g%d", "remotePath": "https://x/%d.jpg"}\n'
    lines = [
        good % (1, 1),  # 1
        b'{"id": "x", "remotePath": \n',  # 2 invalid JSON
        good % (3, 3),  # 3
        b'{"id": "caf\xe9", "remotePath": "https://x"}\n',  # 4 latin-1, not UTF-8
        b"\n",  # 5 blank
        b'["id", "x"]\n',  # 6 not an object
        good % (7, 7),  # 7
        b'{"remotePath": "https://x/8.jpg"}\n',  # 8 missing id
        b'{"id": 9, "remotePath": "https://x/9.jpg"}\n',  # 9 mistyped id
        b'{"id": "b", "file": "b.jpg", "remotePath": "https://x/b.jpg"}\n',  # 10 both
        b'{"id": "n"}\n',  # 11 neither
        b"   \t \n",  # 12 whitespace only
        good % (13, 13),  # 13
        b'"just a string"\n',  # 14 not an object
        b'{"id": "c", "remotePath": "https://x/c.jpg", "attributes": [1]}\n',  # 15
        good % (16, 16),  # 16, no trailing newline follows
    ]
    path = write(tmp_path / "assets.jsonl", b"".join(lines).rstrip(b"\n"))
    items = read(path, "asset")
    by_line = {item.origin.line: item for item in items}
    assert len(by_line) == len(items)
    assert sorted(by_line) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16]
    for line in (1, 3, 7, 13, 16):
        item = by_line[line]
        assert isinstance(item, AssetRecord) and item.id == f"g{line}"
    expected = {
        2: ("invalid JSON: ", None),
        4: ("line is not valid UTF-8 (byte 0xe9 at column 12)", None),
        6: ("expected a JSON object, got array", None),
        8: ("missing field 'id'", None),
        9: ("field 'id' must be a non-empty string, got integer", None),
        10: ("fields 'file' and 'remotePath' are both set; give exactly one", "b"),
        11: ("missing field 'file' or 'remotePath'", "n"),
        14: ("expected a JSON object, got string", None),
        15: ("field 'attributes' must be an object, got array", "c"),
    }
    for line, (reason, key) in expected.items():
        item = by_line[line]
        assert isinstance(item, BadRecord), (line, item)
        assert item.reason.startswith(reason), (line, item.reason)
        assert item.key == key, line
        assert item.kind == "asset"
        assert item.origin.path == str(path)


def test_blank_lines_skipped_but_counted(tmp_path: Path) -> None:
    content = (
        b'\n  \n{"id":"a","remotePath":"http://x"}\r\n\t\n\n{"id":"b","remotePath":"http://y"}\n\n'
    )
    path = write(tmp_path / "a.ndjson", content)
    items = read(path, "asset")
    assert [(i.origin.line, i.key) for i in items] == [(3, "a"), (6, "b")]


def test_utf8_bom_on_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"id":"a","remotePath":"http://x"}\n')
    assert isinstance(only(read(path, "asset")), AssetRecord)


# --- JSONL links -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "SKU-1",
        {"class": "product", "id": 42},
        {"class": "product", "id": "42"},
        {"class": "product", "source": "erp", "sourceId": "P-1"},
        {"class": "product", "source": "erp", "sourceId": "P-1", "language": "en"},
        {"catalog": "master", "category": "shoes"},
    ],
)
def test_link_endpoint_shapes(tmp_path: Path, endpoint: Any) -> None:
    path = write(
        tmp_path / "links.jsonl",
        jsonl({"from": endpoint, "to": {"class": "asset", "id": 7}, "type": "image"}),
    )
    item = only(read(path, "link"))
    assert isinstance(item, LinkRecord)
    assert item.from_ == endpoint
    assert item.to == {"class": "asset", "id": 7}
    assert item.type == "image"
    assert item.key == link_key(endpoint, {"class": "asset", "id": 7}, "image")


def test_link_all_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "links.jsonl",
        jsonl(
            {
                "from": "P1",
                "to": "A1",
                "type": "media",
                "sequence": 3,
                "subtype": "main",
                "priority": -1,
                "isDefault": True,
                "isActive": False,
                "attributes": {"alt": "x"},
                "unknown": [1, 2],
            },
            {"from": "P1", "to": "A2", "type": "media", "sequence": None, "subtype": None},
        ),
    )
    full, minimal = read(path, "link")
    assert full == LinkRecord(
        origin=full.origin,
        from_="P1",
        to="A1",
        type="media",
        sequence=3,
        extra={"subtype": "main", "priority": -1, "isDefault": True, "isActive": False},
        attributes={"alt": "x"},
    )
    assert full.origin.line == 1
    assert isinstance(minimal, LinkRecord)
    assert (minimal.sequence, minimal.extra) == (None, {})
    assert minimal.attributes == {}


GOOD_LINK: dict[str, Any] = {"from": "P1", "to": "A1", "type": "media"}


@pytest.mark.parametrize(
    ("change", "reason", "has_key"),
    [
        ({"type": None}, "field 'type' must be a non-empty string, got null", False),
        ({"type": ""}, "field 'type' must be a non-empty string, got empty string", False),
        ({"sequence": "2"}, "field 'sequence' must be an integer, got string", True),
        ({"sequence": True}, "field 'sequence' must be an integer, got boolean", True),
        ({"priority": 1.5}, "field 'priority' must be an integer, got number", True),
        ({"isDefault": "yes"}, "field 'isDefault' must be a boolean, got string", True),
        ({"isActive": 1}, "field 'isActive' must be a boolean, got integer", True),
        ({"subtype": 3}, "field 'subtype' must be a string, got integer", True),
        ({"attributes": "x"}, "field 'attributes' must be an object, got string", True),
        ({"to": ""}, "field 'to' must be a non-empty string or an object, got empty string", False),
        ({"from": 5}, "field 'from' must be a non-empty string or an object, got integer", False),
        ({"from": {"class": "p", "id": True}}, "field 'from.id' must be an integer", False),
        ({"from": {"class": "", "id": 1}}, "field 'from.class' must be a non-empty string", False),
        ({"to": {"catalog": "c", "category": 3}}, "field 'to.category' must be a non-empty", False),
        ({"to": {"class": "p", "id": 1, "x": 2}}, "field 'to' must be an object with keys", False),
        ({"from": {"class": "p"}}, "field 'from' must be an object with keys", False),
    ],
)
def test_link_mistyped_fields(
    tmp_path: Path, change: dict[str, Any], reason: str, has_key: bool
) -> None:
    path = write(tmp_path / "links.jsonl", jsonl(GOOD_LINK, {**GOOD_LINK, **change}, GOOD_LINK))
    first, record, last = read(path, "link")
    assert isinstance(first, LinkRecord) and isinstance(last, LinkRecord)
    assert isinstance(record, BadRecord)
    assert record.reason.startswith(reason), record.reason
    assert record.origin.line == 2
    assert record.kind == "link"
    assert record.key == (link_key("P1", "A1", "media") if has_key else None)


@pytest.mark.parametrize("field", ["from", "to", "type"])
def test_link_missing_field(tmp_path: Path, field: str) -> None:
    obj = {k: v for k, v in GOOD_LINK.items() if k != field}
    path = write(tmp_path / "links.jsonl", jsonl(obj))
    record = bad(read(path, "link"))
    assert record.reason == f"missing field '{field}'"
    assert record.key is None


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_assets(tmp_path: Path) -> None:
    path = write(
        tmp_path / "assets.csv",
        "id,file,remotePath,classification,attributes,notes\n"
        'a1,img/a.jpg,,photo,"{""k"": 1}",whatever\n'
        "a2,,https://x/b.jpg,,,\n"
        "a3,img/c.jpg,https://x/c.jpg,,,\n",
    )
    a1, a2, a3 = read(path, "asset")
    assert isinstance(a1, AssetRecord)
    assert a1.origin.line == 2 and a1.origin.path == str(path)
    assert a1.file == tmp_path.resolve() / "img" / "a.jpg"
    assert a1.classification == "photo"
    assert a1.attributes == {"k": 1}
    assert isinstance(a2, AssetRecord)
    assert (a2.file, a2.remote_path, a2.classification) == (None, "https://x/b.jpg", None)
    assert isinstance(a3, BadRecord) and a3.origin.line == 4
    assert "both set" in a3.reason and a3.key == "a3"


def test_csv_links_json_cells_and_conversions(tmp_path: Path) -> None:
    path = write(
        tmp_path / "links.csv",
        "from,to,type,sequence,priority,isDefault,isActive,subtype,attributes\r\n"
        '"{""class"": ""product"", ""id"": 42}",A1,image, 2 ,-3,YES,0,main,"{""a"": [1]}"\r\n'
        'P2,"{""catalog"": ""m"", ""category"": ""c""}",image,,,,,,\r\n',
    )
    first, second = read(path, "link")
    assert first == LinkRecord(
        origin=first.origin,
        from_={"class": "product", "id": 42},
        to="A1",
        type="image",
        sequence=2,
        extra={"priority": -3, "isDefault": True, "isActive": False, "subtype": "main"},
        attributes={"a": [1]},
    )
    assert first.origin.line == 2
    assert second == LinkRecord(
        origin=second.origin, from_="P2", to={"catalog": "m", "category": "c"}, type="image"
    )
    assert second.origin.line == 3


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("False", False), ("1", True), ("0", False), ("Yes", True), ("NO", False)],
)
def test_csv_bool_words(tmp_path: Path, word: str, value: bool) -> None:
    path = write(tmp_path / "l.csv", f"from,to,type,isDefault\nP,A,t,{word}\n")
    item = only(read(path, "link"))
    assert isinstance(item, LinkRecord) and item.extra["isDefault"] is value


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("P,A,t,abc,,", "field 'sequence' must be an integer, got 'abc'"),
        ("P,A,t,1.5,,", "field 'sequence' must be an integer, got '1.5'"),
        ("P,A,t,,maybe,", "field 'isDefault' must be true/false, 1/0 or yes/no, got 'maybe'"),
        ("P,A,t,,,[1]", "field 'attributes' must be a JSON object"),
        ("P,A,t,,,{bad", "field 'attributes' is not valid JSON: "),
        ('"{""class"": 1",A,t,,,', "field 'from' is not valid JSON: "),
        ('"{""class"": ""p""}",A,t,,,', "field 'from' must be an object with keys"),
        ("P,A,,,,", "missing field 'type'"),
    ],
)
def test_csv_bad_cells(tmp_path: Path, cells: str, reason: str) -> None:
    path = write(
        tmp_path / "l.csv",
        f"from,to,type,sequence,isDefault,attributes\nP,A,t,,,\n{cells}\nP,B,t,,,\n",
    )
    first, record, last = read(path, "link")
    assert isinstance(first, LinkRecord) and isinstance(last, LinkRecord)
    assert isinstance(record, BadRecord)
    assert record.origin.line == 3
    assert record.reason.startswith(reason), record.reason


def test_csv_multiline_cells_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "id,remotePath,classification\n"  # 1
        "a,http://x/a,\n"  # 2
        '"b\nstill b",http://x/b,"two\n'  # 3-4
        'more\nlines"\n'  # 5-6
        "\n"  # 7 blank
        "c,http://x/c,\n",  # 8
    )
    items = read(path, "asset")
    assert [(i.origin.line, i.key) for i in items] == [(2, "a"), (3, "b\nstill b"), (8, "c")]
    assert all(isinstance(i, AssetRecord) for i in items)
    assert isinstance(items[1], AssetRecord)
    assert items[1].classification == "two\nmore\nlines"


def test_csv_invalid_utf8_spoils_only_its_row(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        b"id,remotePath,classification\n"
        b"a,http://x/a,\n"
        b"b,http://x/b,caf\xe9\n"  # 3
        b'c,http://x/c,"multi\n'  # 4
        b'line \xff"\n'  # 5: the bad byte is on the record's second line
        b"d,http://x/d,\n",  # 6
    )
    a, b, c, d = read(path, "asset")
    assert isinstance(a, AssetRecord) and a.origin.line == 2
    assert isinstance(b, BadRecord) and b.origin.line == 3
    assert b.reason == "line is not valid UTF-8 (byte 0xe9 at column 17)"
    assert b.key == "b"
    assert isinstance(c, BadRecord) and c.origin.line == 4
    assert c.reason == "line 5 is not valid UTF-8 (byte 0xff at column 6)"
    assert isinstance(d, AssetRecord) and d.origin.line == 6 and d.id == "d"


def test_csv_invalid_utf8_in_key_gives_no_key(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", b"id,remotePath\n\xffa,http://x/a\n")
    record = bad(read(path, "asset"))
    assert record.reason.startswith("line is not valid UTF-8")
    assert record.key is None


def test_csv_rows_of_empty_cells_are_blank_lines(tmp_path: Path) -> None:
    # Spreadsheet exports often end with rows of separators only.
    path = write(tmp_path / "a.csv", "id,remotePath\na,http://x/a\n,\n , \n\nb,http://x/b\n,\n")
    items = read(path, "asset")
    assert [(i.origin.line, type(i).__name__, i.key) for i in items] == [
        (2, "AssetRecord", "a"),
        (6, "AssetRecord", "b"),
    ]


def test_csv_wrong_cell_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "id,remotePath\na,http://x/a\nb,http://x/b,extra\nc\nd,http://x/d\n",
    )
    items = read(path, "asset")
    assert lines_and_types(items) == [
        (2, "AssetRecord"),
        (3, "BadRecord"),
        (4, "BadRecord"),
        (5, "AssetRecord"),
    ]
    assert isinstance(items[1], BadRecord)
    assert items[1].reason == "row has 3 cells but the header has 2 columns"
    assert isinstance(items[2], BadRecord)
    assert items[2].reason == "row has 1 cells but the header has 2 columns"


@pytest.mark.parametrize(
    ("kind", "header", "missing"),
    [
        ("asset", "file,remotePath", ["'id'"]),
        ("asset", "id,classification", ["'file' or 'remotePath'"]),
        ("link", "from,type", ["'to'"]),
        ("link", "source,target,kind", ["'from'", "'to'", "'type'"]),
    ],
)
def test_csv_missing_header_columns(
    tmp_path: Path, kind: Kind, header: str, missing: list[str]
) -> None:
    path = write(tmp_path / "x.csv", f"{header}\nv1,v2\n")
    with pytest.raises(InputFileError) as info:
        read_records(path, kind)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for name in missing:
        assert name in message


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_csv_without_header(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "x.csv", content)
    with pytest.raises(InputFileError, match="no header"):
        read_records(path, "asset")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"id,r\xe9motePath\n", "CSV header line 1 is not valid UTF-8 (byte 0xe9 at column 5)"),
        (
            b"id,remotePath,id\n",
            "CSV header repeats column(s) id (header read: 'id,remotePath,id', delimiter ',')",
        ),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: bytes, message: str) -> None:
    path = write(tmp_path / "x.csv", header + b"a,http://x/a\n")
    with pytest.raises(InputFileError) as info:
        read_records(path, "asset")
    assert str(info.value) == f"{path}: {message}"


def test_csv_header_only_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "\ufeffid,remotePath\n")
    assert read(path, "asset") == []


def test_fmt_override_and_auto(tmp_path: Path) -> None:
    csv_text = "id,remotePath\na,http://x/a\n"
    as_txt = write(tmp_path / "assets.txt", csv_text)
    item = only(read(as_txt, "asset", fmt="csv"))
    assert isinstance(item, AssetRecord) and item.origin.line == 2
    # The same text read as JSONL is two lines of invalid JSON.
    assert lines_and_types(read(as_txt, "asset")) == [(1, "BadRecord"), (2, "BadRecord")]
    upper = write(tmp_path / "ASSETS.CSV", csv_text)
    assert isinstance(only(read(upper, "asset")), AssetRecord)


# --- files that cannot be read -----------------------------------------------------------------


def test_missing_file_raises_eagerly(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputFileError) as info:
        read_records(path, "asset")  # no next(): the error comes from the call itself
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=re.escape(str(tmp_path))):
        read_records(tmp_path, "link")


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="root (or Windows) ignores file modes",
)
def test_unreadable_file_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "id,file\n")
    path.chmod(0)
    try:
        with pytest.raises(InputFileError, match=r"a\.csv"):
            read_records(path, "asset")
    finally:
        path.chmod(0o600)


def test_close_before_iterating(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"id": "a", "remotePath": "http://x"}))
    stream = read_records(path, "asset")
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


# --- streaming ---------------------------------------------------------------------------------

LINES = 200_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "links.jsonl"
    with path.open("wb") as f:
        for n in range(LINES):
            f.write(
                b'{"from":{"class":"product","id":%d},"to":"ASSET-%d","type":"image",'
                b'"sequence":%d,"attributes":{"alt":"picture number %d"}}\n' % (n, n, n, n)
            )
    return path


def test_first_record_without_reading_the_rest(big_file: Path) -> None:
    assert big_file.stat().st_size > 20_000_000
    tracemalloc.start()
    try:
        stream = read_records(big_file, "link")
        first = next(stream)
        _, peak = tracemalloc.get_traced_memory()
        stream.close()
    finally:
        tracemalloc.stop()
    assert isinstance(first, LinkRecord) and first.origin.line == 1
    assert peak < 1_000_000


def test_whole_file_streams_with_flat_memory(big_file: Path) -> None:
    count = 0
    last_line = 0
    tracemalloc.start()
    try:
        for record in read_records(big_file, "link"):
            assert isinstance(record, LinkRecord)
            count += 1
            last_line = record.origin.line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == LINES and last_line == LINES
    assert peak < 5_000_000


def test_csv_streams_with_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "links.csv"
    with path.open("wb") as f:
        f.write(b"from,to,type,sequence\n")
        for n in range(LINES // 2):
            f.write(b'P%d,"{""class"": ""asset"", ""id"": %d}",image,%d\n' % (n, n, n))
    count = 0
    tracemalloc.start()
    try:
        for record in read_records(path, "link"):
            assert isinstance(record, LinkRecord)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == LINES // 2
    assert peak < 5_000_000


def test_unknown_field_warnings_stop_after_a_bounded_number_of_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new unknown key on every line must not print a warning per line."""
    from bulksync.inputs._validate import MAX_WARNED_FIELDS

    path = tmp_path / "links.jsonl"
    lines = [f'{{"from": "a", "to": "b{i}", "type": "t", "extra{i}": 1}}' for i in range(200)]
    path.write_text("\n".join(lines) + "\n")
    records = list(read_records(path, "link"))
    assert len(records) == 200 and all(isinstance(r, LinkRecord) for r in records)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == MAX_WARNED_FIELDS + 1, warnings
    assert "no more are reported" in warnings[-1]
