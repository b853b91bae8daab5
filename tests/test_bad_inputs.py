"""The bad-input corpus, run through the real engine and the fake target from the command line.

Every kind of line below is written into one file per format (JSONL and CSV, links and assets)
between good lines. Each bad line must end with exactly one failed result naming its file:line,
every good line must succeed, blank lines get no result, nothing prints a traceback and the run
ends with exit 1. Some kinds look odd but are valid (BOM, CRLF, whitespace, ids with spaces,
slashes or unicode) and must succeed: the corpus tests both directions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from bulksync.app.cli import main

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the fake target only needs some bytes


@dataclass(frozen=True)
class Case:
    name: str
    line: bytes  # one physical line (or several, for a quoted newline), newline included
    expect: str  # "ok", "bad" or "blank"
    reason: str = ""  # for "bad": a part of the failure message


def j(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def link(to: str, **fields: object) -> dict[str, object]:
    return {"from": "doc-1", "to": to, "type": "t", **fields}


def jsonl_link_cases() -> list[Case]:
    nested: bytes = b'{"a":' * 2000 + b"1" + b"}" * 2000
    return [
        Case("bom-first-line", b"\xef\xbb\xbf" + j(link("bom")), "ok"),
        Case("plain", j(link("plain")), "ok"),
        Case("crlf", j(link("crlf"))[:-1] + b"\r\n", "ok"),
        Case("inner-whitespace", b'  { "from" : "doc-1" , "to" : "ws", "type" : "t" }  \n', "ok"),
        Case("unicode-id", j(link("ünï-çødé-日本-🙂")), "ok"),
        Case("id-with-spaces", j(link("an id with spaces")), "ok"),
        Case("id-with-slashes", j(link("a/b/../c")), "ok"),
        Case("id-with-url-chars", j(link("x?y#z%41&")), "ok"),
        Case("id-with-colons", j(link("urn:x:y:z")), "ok"),
        Case("id-with-newline", j(link("line\nbreak")), "ok"),
        Case("sequence-zero", j(link("seq0", sequence=0)), "ok"),
        Case("sequence-negative", j(link("seqneg", sequence=-5)), "ok"),
        Case("sequence-int32-max", j(link("seqmax", sequence=2**31 - 1)), "ok"),
        Case("null-optionals", j(link("nulls", sequence=None, subtype=None)), "ok"),
        Case("nested-attributes", j(link("attrs", attributes={"a": {"b": [1, "x:y"]}})), "ok"),
        Case("endpoint-object", j(link({"class": "product", "id": 12}, type="t")), "ok"),  # type: ignore[arg-type]
        Case("unknown-field-warns", j(link("typo", sequnce=3)), "ok"),
        Case("empty-line", b"\n", "blank"),
        Case("whitespace-line", b"  \t  \n", "blank"),
        Case("crlf-empty-line", b"\r\n", "blank"),
        Case("truncated-json", b'{"from": "doc-1", "to": \n', "bad", "invalid JSON"),
        Case("array", b"[1, 2]\n", "bad", "expected a JSON object, got array"),
        Case("number", b"42\n", "bad", "got integer"),
        Case("null", b"null\n", "bad", "got null"),
        Case("string", b'"x"\n', "bad", "got string"),
        Case("boolean", b"true\n", "bad", "got boolean"),
        Case(
            "nan", b'{"from": "doc-1", "to": "nan", "type": "t", "sequence": NaN}\n', "bad", "JSON"
        ),
        Case(
            "infinity-number",
            b'{"from":"doc-1","to":"inf","type":"t","sequence":1e400}\n',
            "bad",
            "JSON",
        ),
        Case("trailing-garbage", j(link("garbage"))[:-1] + b" x\n", "bad", "invalid JSON"),
        Case("raw-nul-byte", b'{"from": "doc-1", "to": "a\x00b", "type": "t"}\n', "bad", "JSON"),
        Case("escaped-nul-in-id", j(link("a\x00b")), "bad", "field 'to' contains a NUL byte"),
        Case(
            "escaped-nul-in-endpoint",
            j({"from": {"class": "p", "source": "S\x00", "sourceId": "1"}, "to": "x", "type": "t"}),
            "bad",
            "field 'from.source' contains a NUL byte",
        ),
        Case("invalid-utf8", b'{"from": "doc-1", "to": "\xff\xfe", "type": "t"}\n', "bad", "UTF-8"),
        Case(
            "deep-nesting",
            b'{"from":"doc-1","to":"deep","type":"t","attributes":' + nested + b"}\n",
            "bad",
            "JSON",
        ),
        Case(
            "duplicate-key",
            b'{"from": "doc-1", "to": "d1", "to": "d2", "type": "t"}\n',
            "bad",
            "duplicate key 'to'",
        ),
        Case(
            "duplicate-nested-key",
            b'{"from":"doc-1","to":"d3","type":"t","attributes":{"k":1,"k":2}}\n',
            "bad",
            "duplicate key 'k'",
        ),
        Case(
            "duplicate-key-escaped",
            b'{"from":"doc-1","to":"d4","t\\u0079pe":"t","type":"u"}\n',
            "bad",
            "duplicate key 'type'",
        ),
        Case(
            "type-number", j(link("tn", type=7)), "bad", "field 'type' must be a non-empty string"
        ),
        Case("from-number", j({"from": 12, "to": "fn", "type": "t"}), "bad", "field 'from'"),
        Case("from-empty", j({"from": "", "to": "fe", "type": "t"}), "bad", "field 'from'"),
        Case("missing-to", j({"from": "doc-1", "type": "t"}), "bad", "missing field 'to'"),
        Case("sequence-huge", j(link("sh", sequence=2**40)), "bad", "out of range"),
        Case(
            "sequence-over-64-bits",
            b'{"from":"doc-1","to":"s64","type":"t","sequence":123456789012345678901234567890}\n',
            "bad",
            "out of range",
        ),
        Case(
            "sequence-u64",
            b'{"from":"doc-1","to":"su64","type":"t","sequence":18446744073709551615}\n',
            "bad",
            "out of range",
        ),
        Case(
            "sequence-float", j(link("sf", sequence=1.5)), "bad", "must be an integer, got number"
        ),
        Case(
            "sequence-string", j(link("ss", sequence="5")), "bad", "must be an integer, got string"
        ),
        Case(
            "sequence-boolean",
            j(link("sb", sequence=True)),
            "bad",
            "must be an integer, got boolean",
        ),
        Case("is-default-string", j(link("ids", isDefault="yes")), "bad", "must be a boolean"),
        Case("attributes-array", j(link("aa", attributes=[1])), "bad", "field 'attributes'"),
        Case("endpoint-bad-keys", j(link({"foo": 1})), "bad", "must be an object with keys"),  # type: ignore[arg-type]
        Case("endpoint-id-float", j(link({"class": "p", "id": 1.5})), "bad", "field 'to.id'"),  # type: ignore[arg-type]
        Case("endpoint-id-huge", j(link({"class": "p", "id": 2**63 + 5})), "bad", "out of range"),  # type: ignore[arg-type]
        Case("id-10k-chars", j(link("x" * 10_000)), "bad", "over 1000"),
        Case("type-dot", j(link("dot", type=".")), "bad", "cannot be '.'"),
        Case("type-dotdot", j(link("dotdot", type="..")), "bad", "cannot be '..'"),
        Case(
            "line-10-mb",
            j(link("big", attributes={"blob": "x" * (10 << 20)})),
            "bad",
            "a record may take",
        ),
        Case("duplicate-of-line-2", j(link("plain")), "bad", "duplicate of line 2"),
        Case("last-good", j(link("last")), "ok"),
    ]


def jsonl_asset_cases(media: Path) -> list[Case]:
    (media / "a.png").write_bytes(PNG)
    (media / "my file.png").write_bytes(PNG)
    (media / "ünï.png").write_bytes(PNG)
    (media / "empty.png").write_bytes(b"")
    (media / "folder.png").mkdir()
    os.symlink("loop.png", media / "loop.png")
    return [
        Case("file", j({"id": "a1", "file": "media/a.png"}), "ok"),
        Case("remote-path", j({"id": "a2", "remotePath": "https://cdn.example.com/a.png"}), "ok"),
        Case("file-with-space", j({"id": "a3", "file": "media/my file.png"}), "ok"),
        Case("file-unicode", j({"id": "a4", "file": "media/ünï.png"}), "ok"),
        Case("id-unicode", j({"id": "ässet 5/β", "file": "media/a.png"}), "ok"),
        Case("nul-in-file", j({"id": "b1", "file": "media/a\x00.png"}), "bad", "NUL byte"),
        Case("nul-in-folder", j({"id": "b2", "file": "med\x00ia/a.png"}), "bad", "NUL byte"),
        Case("escapes-root", j({"id": "b3", "file": "../../etc/passwd"}), "bad", "escapes"),
        Case("directory", j({"id": "b4", "file": "media/folder.png"}), "bad", "is a folder"),
        Case("symlink-loop", j({"id": "b5", "file": "media/loop.png"}), "bad", "cannot be read"),
        Case(
            "zero-byte-file", j({"id": "b6", "file": "media/empty.png"}), "bad", "empty (0 bytes)"
        ),
        Case("lf-in-name", j({"id": "b7", "file": "media/a\nb.png"}), "bad", "line break"),
        Case("cr-in-name", j({"id": "b8", "file": "media/a\rb.png"}), "bad", "line break"),
        Case("file-url", j({"id": "b9", "remotePath": "file:///etc/passwd"}), "bad", "http"),
        Case(
            "javascript-url", j({"id": "b10", "remotePath": "javascript:alert(1)"}), "bad", "http"
        ),
        Case(
            "metadata-ip",
            j({"id": "b11", "remotePath": "http://169.254.169.254/latest"}),
            "bad",
            "link-local",
        ),
        Case(
            "link-local-v6",
            j({"id": "b12", "remotePath": "http://[fe80::1]/x.png"}),
            "bad",
            "link-local",
        ),
        Case(
            "localhost",
            j({"id": "b13", "remotePath": "http://localhost:8080/x.png"}),
            "bad",
            "own host",
        ),
        Case(
            "loopback", j({"id": "b14", "remotePath": "https://127.0.0.2/x.png"}), "bad", "loopback"
        ),
        Case(
            "mapped-loopback",
            j({"id": "b15", "remotePath": "http://[::ffff:127.0.0.1]/x"}),
            "bad",
            "loopback",
        ),
        Case(
            "credentials-url",
            j({"id": "b16", "remotePath": "https://u:pw@cdn.example.com/x"}),
            "bad",
            "password",
        ),
        Case("no-host", j({"id": "b17", "remotePath": "https:///x.png"}), "bad", "no host"),
        Case(
            "file-and-remote",
            j({"id": "b18", "file": "media/a.png", "remotePath": "https://x.example/a"}),
            "bad",
            "both set",
        ),
        Case("neither", j({"id": "b19"}), "bad", "missing field 'file' or 'remotePath'"),
        Case("id-number", j({"id": 7, "file": "media/a.png"}), "bad", "field 'id'"),
        Case("id-10k", j({"id": "i" * 10_000, "file": "media/a.png"}), "bad", "over 1000"),
        Case("asset-last", j({"id": "a9", "remotePath": "https://cdn.example.com/z.png"}), "ok"),
    ]


def csv_link_cases() -> list[Case]:
    # Semicolons and capitalised column names: both detected from the header.
    return [
        Case("header", b"From;TO;type;sequence;isDefault\n", "blank"),
        Case("plain", b"doc-1;c1;t;1;\n", "ok"),
        Case("crlf", b"doc-1;c2;t;2;true\r\n", "ok"),
        Case("quoted-delimiter", b'doc-1;"c3;x";t;;\n', "ok"),
        Case("quoted-newline", b'doc-1;"c4\nsecond line";t;;\n', "ok"),
        Case("unicode", "doc-1;ç5-日本;t;;no\n".encode(), "ok"),
        Case("blank-row", b"\n", "blank"),
        Case("delimiters-only", b";;;;\n", "blank"),
        Case("too-few-cells", b"doc-1;b1;t\n", "bad", "row has 3 cells but the header has 5"),
        Case("too-many-cells", b"doc-1;b2;t;1;;extra\n", "bad", "row has 6 cells"),
        Case("sequence-word", b"doc-1;b3;t;abc;\n", "bad", "must be an integer"),
        Case(
            "sequence-over-64-bits", b"doc-1;b4;t;99999999999999999999999;\n", "bad", "out of range"
        ),
        Case("sequence-float", b"doc-1;b5;t;1.5;\n", "bad", "must be an integer"),
        Case("bool-word", b"doc-1;b6;t;;maybe\n", "bad", "true/false"),
        Case("invalid-utf8", b"doc-1;b7\xff;t;;\n", "bad", "UTF-8"),
        Case("quote-inside-field", b'doc-1;b"8";t;;\n', "ok"),  # a literal quote
        Case("text-after-quote", b'doc-1;"b9"x;t;;\n', "bad", "malformed CSV row"),
        Case(
            "huge-cell",
            b"doc-1;" + b"y" * 200_000 + b";t;;\n",
            "bad",
            "field larger than field limit",
        ),
        Case("bad-json-endpoint", b"{bad;b10;t;;\n", "bad", "not valid JSON"),
        Case("json-endpoint-broken", b'"{""class"": 1";b11;t;;\n', "bad", "not valid JSON"),
        Case("type-dotdot", b"doc-1;b12;..;;\n", "bad", "cannot be '..'"),
        Case("duplicate-row", b"doc-1;c1;t;1;\n", "bad", "duplicate of line 2"),
        Case("last-good", b"doc-1;c13;t;;\n", "ok"),
        # A stray opening quote: it swallows every later line up to the end of the file.
        Case(
            "stray-quote",
            b'doc-1;"s1;t;;\n',
            "bad",
            "lines 25-27: unterminated quoted field swallows 3",
        ),
        Case("swallowed-1", b"doc-1;s2;t;;\n", "bad", "swallowed by the failed row at lines 25-27"),
        Case("swallowed-2", b"doc-1;s3;t;;\n", "bad", "swallowed by the failed row at lines 25-27"),
    ]


def csv_asset_cases(media: Path) -> list[Case]:
    return [
        Case("header", b"ID\tfile\tremotePath\n", "blank"),
        Case("file", b"c1\tmedia/a.png\t\n", "ok"),
        Case("remote", b"c2\t\thttps://cdn.example.com/c2.png\n", "ok"),
        Case("nul-in-file", b"c3\tmedia/a\x00.png\t\n", "bad", "NUL byte"),
        Case("javascript", b"c4\t\tjavascript:alert(1)\n", "bad", "http"),
        Case("directory", b"c5\tmedia/folder.png\t\n", "bad", "is a folder"),
        Case("no-id", b"\tmedia/a.png\t\n", "bad", "missing field 'id'"),
        Case("asset-last", b"c6\tmedia/my file.png\t\n", "ok"),
    ]


def write_cases(path: Path, cases: list[Case]) -> dict[int, Case]:
    """Write the cases one after the other; returns each case by its first line number."""
    by_line: dict[int, Case] = {}
    line = 1
    with open(path, "wb") as out:
        for case in cases:
            by_line[line] = case
            out.write(case.line)
            line += case.line.count(b"\n")
    return by_line


def run_corpus(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], files: dict[str, str], *extra: str
) -> tuple[int, list[dict[str, object]], str]:
    config = tmp_path / "job.toml"
    inputs = "\n".join(f'{kind} = "{name}"' for kind, name in files.items())
    config.write_text(
        f"""
[target]
kind = "fake"
[inputs]
{inputs}
[limits]
concurrency = 4
max_elapsed_s = 30
[output]
results = "out/results.jsonl"
progress = false
""",
        encoding="utf-8",
    )
    code = main(["run", "--config", str(config), *extra])
    err = capfd.readouterr().err
    results = [
        orjson.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    ]
    return code, results, err


def check(results: list[dict[str, object]], path: Path, cases: dict[int, Case]) -> int:
    """Each line's results match its case; returns how many bad lines there were."""
    mine = [r for r in results if r["source"] == str(path)]
    by_line: dict[int, list[dict[str, object]]] = {}
    for result in mine:
        by_line.setdefault(int(result["line"]), []).append(result)  # type: ignore[call-overload]
    bad = 0
    for line, case in cases.items():
        got = by_line.pop(line, [])
        if case.expect == "blank":
            assert got == [], (case.name, got)
            continue
        assert len(got) == 1, (case.name, line, got)
        result = got[0]
        if case.expect == "ok":
            assert result["status"] == "succeeded", (case.name, result)
            continue
        bad += 1
        assert result["status"] == "failed", (case.name, result)
        message = result["error"]["message"]  # type: ignore[index]
        assert f"{path}:{line}" in message, (case.name, message)
        assert case.reason in message, (case.name, case.reason, message)
    assert by_line == {}, f"results for lines no case starts on: {by_line}"
    return bad


def test_the_jsonl_corpus(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    media = tmp_path / "media"
    media.mkdir()
    link_cases, asset_cases = jsonl_link_cases(), jsonl_asset_cases(media)
    links = write_cases(tmp_path / "links.jsonl", link_cases)
    assets = write_cases(tmp_path / "assets.jsonl", asset_cases)
    code, results, err = run_corpus(
        tmp_path, capfd, {"links": "links.jsonl", "assets": "assets.jsonl"}
    )
    assert "Traceback" not in err
    assert code == 1
    bad = check(results, tmp_path / "links.jsonl", links)
    bad += check(results, tmp_path / "assets.jsonl", assets)
    assert len(results) == sum(c.expect != "blank" for c in link_cases + asset_cases)
    assert bad == sum(c.expect == "bad" for c in link_cases + asset_cases)
    # The unknown field is warned about once, by name, with the likely meant one.
    assert err.count("unknown field 'sequnce' (did you mean 'sequence'?)") == 1
    assert len(link_cases) + len(asset_cases) >= 60


def test_the_csv_corpus(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.png").write_bytes(PNG)
    (media / "my file.png").write_bytes(PNG)
    (media / "folder.png").mkdir()
    link_cases, asset_cases = csv_link_cases(), csv_asset_cases(media)
    links = write_cases(tmp_path / "links.csv", link_cases)
    assets = write_cases(tmp_path / "assets.csv", asset_cases)
    code, results, err = run_corpus(tmp_path, capfd, {"links": "links.csv", "assets": "assets.csv"})
    assert "Traceback" not in err
    assert code == 1
    bad = check(results, tmp_path / "links.csv", links)
    bad += check(results, tmp_path / "assets.csv", assets)
    assert bad == sum(c.expect == "bad" for c in link_cases + asset_cases)
    swallowed = {r["line"]: r["key"] for r in results if "swallowed by" in str(r["error"])}
    assert swallowed == {26: "doc-1->s2:t", 27: "doc-1->s3:t"}  # named by what they hold


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", b""), ("blank.jsonl", b"\n \n"), ("header-only.csv", b"from,to,type\n")],
)
def test_a_file_without_records_is_a_run_with_nothing_to_do(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, content: bytes
) -> None:
    (tmp_path / name).write_bytes(content)
    code, results, err = run_corpus(tmp_path, capfd, {"links": name})
    assert (code, results) == (0, [])
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "CSV file has no header row"),
        (b"from,to\nA,B\n", "lacks required column(s) 'type' for links (header read: 'from,to'"),
    ],
)
def test_a_csv_without_a_usable_header_stops_with_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    (tmp_path / "links.csv").write_bytes(content)
    (tmp_path / "job.toml").write_text(
        '[target]\nkind = "fake"\n[inputs]\nlinks = "links.csv"\n[output]\nresults = "r.jsonl"\n'
    )
    assert main(["run", "--config", str(tmp_path / "job.toml")]) == 2
    err = capfd.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("line", "duplicate"),
    [
        (b'{"from": "a:b", "to": "c", "to": "d", "type": "t"}', "to"),  # colons in a value
        (b'{"from": "https://x/y", "to": "c", "type": "t"}', None),  # colons, no repeat
        (b'{"from": "a", "to": {"class": "p", "id": 1, "id": 2}, "type": "t"}', "id"),
        (b'{"from": "a", "to": "b", "type": "t", "attributes": {"x:y": 1, "x:y": 2}}', "x:y"),
        (b'{"from": "a\\u003ab", "to": "b", "type": "t"}', None),  # an escaped colon
    ],
)
def test_duplicate_keys_are_found_whatever_the_colons(
    tmp_path: Path, line: bytes, duplicate: str | None
) -> None:
    from bulksync.inputs.readers import read_records
    from bulksync.spi._records import BadRecord

    (tmp_path / "l.jsonl").write_bytes(line + b"\n")
    with read_records(tmp_path / "l.jsonl", "link") as stream:
        [record] = list(stream)
    if duplicate is None:
        assert not isinstance(record, BadRecord), record
    else:
        assert isinstance(record, BadRecord)
        assert record.reason == f"duplicate key {duplicate!r} in an object"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("from|to|type\na|b|t\n", None),
        ("from\tto\ttype\na\tb\tt\n", None),
        ("FROM;To;Type\na;b;t\n", None),
        ("from|to|type\na|b|t\n", "|"),
    ],
)
def test_the_csv_delimiter_and_header_case_are_detected_or_given(
    tmp_path: Path, text: str, delimiter: str | None
) -> None:
    from bulksync.inputs.readers import read_records
    from bulksync.spi._records import LinkRecord

    (tmp_path / "l.csv").write_text(text)
    with read_records(tmp_path / "l.csv", "link", csv_delimiter=delimiter) as stream:
        [record] = list(stream)
    assert isinstance(record, LinkRecord) and record.key == "a->b:t"


def test_a_wrong_given_delimiter_shows_the_header_read(tmp_path: Path) -> None:
    from bulksync.inputs.readers import read_records
    from bulksync.spi._errors import InputFileError

    (tmp_path / "l.csv").write_text("from;to;type\na;b;t\n")
    with pytest.raises(InputFileError) as info:
        read_records(tmp_path / "l.csv", "link", csv_delimiter=",")
    assert "(header read: 'from;to;type', delimiter ',')" in str(info.value)
    with pytest.raises(InputFileError, match="CSV delimiter must be one of"):
        read_records(tmp_path / "l.csv", "link", csv_delimiter="x")
