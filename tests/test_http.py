"""Tests for bulksync.spi._http: parse_retry_after and the request/response values."""

from __future__ import annotations

import email.utils
import math
from pathlib import Path

import pytest

from bulksync.spi._http import FilePart, HttpRequest, HttpResponse, parse_retry_after

# Wed, 21 Oct 2015 07:28:00 GMT
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_TS = email.utils.parsedate_to_datetime(DATE).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5), ("\t30\r\n", 30.0)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    assert DATE_TS == 1445412480.0
    assert parse_retry_after(DATE, now=DATE_TS - 30.0) == pytest.approx(30.0)
    assert parse_retry_after(DATE, now=DATE_TS) == 0.0
    assert parse_retry_after(DATE, now=DATE_TS + 3600.0) == 0.0  # in the past: go now
    # the obsolete RFC 850 and asctime forms are not required; the IMF-fixdate is
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now=DATE_TS) == pytest.approx(60.0)


def test_retry_after_http_date_without_now_uses_the_wall_clock() -> None:
    far = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert parse_retry_after(far) > 365 * 86400  # type: ignore[operator]
    assert parse_retry_after(DATE) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "soon",
        "abc123",
        "-3",
        "Wed, 99 Foo 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 25:61:00 GMT",
    ],
)
def test_retry_after_garbage_is_none(value: str) -> None:
    assert parse_retry_after(value, now=DATE_TS) is None


def test_retry_after_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after(None, now=123.0) is None


@pytest.mark.parametrize("value", ["inf", "Infinity", "+inf", "1e999"])
def test_retry_after_infinite_spellings_are_rejected(value: str) -> None:
    # RFC 9110: Retry-After = HTTP-date / delay-seconds, delay-seconds = 1*DIGIT.
    result = parse_retry_after(value)
    assert result is None or math.isfinite(result)


def test_retry_after_nan_is_garbage() -> None:
    assert parse_retry_after("nan") is None


def test_with_headers_merges_without_mutating() -> None:
    original = HttpRequest("GET", "items", headers={"Accept": "application/json", "X-A": "1"})
    merged = original.with_headers({"Authorization": "Bearer t", "X-A": "2"})
    assert merged.headers == {"Accept": "application/json", "X-A": "2", "Authorization": "Bearer t"}
    assert original.headers == {"Accept": "application/json", "X-A": "1"}
    assert merged.method == "GET" and merged.url == "items"
    assert original.with_headers({}) is original


def test_with_headers_keeps_every_other_field() -> None:
    part = FilePart("file", Path("/tmp/x.png"), "x.png", "image/png")
    request = HttpRequest(
        "POST",
        "https://h/files",
        fields={"a": "b"},
        files=[part],
        params={"q": "1"},
        timeout_s=3.0,
        authenticated=False,
    )
    merged = request.with_headers({"X": "y"})
    assert merged.fields == {"a": "b"} and list(merged.files) == [part]
    assert merged.params == {"q": "1"} and merged.timeout_s == 3.0
    assert merged.authenticated is False


@pytest.mark.parametrize(
    ("method", "write"),
    [
        ("GET", False),
        ("get", False),
        ("HEAD", False),
        ("OPTIONS", False),
        ("POST", True),
        ("put", True),
        ("PATCH", True),
        ("DELETE", True),
    ],
)
def test_is_write(method: str, write: bool) -> None:
    assert HttpRequest(method, "x").is_write is write


def test_response_helpers() -> None:
    response = HttpResponse(200, {"content-type": "application/json"}, b'{"a": [1, 2]}')
    assert response.json() == {"a": [1, 2]}
    assert response.header("Content-Type") == "application/json"
    assert response.header("missing") is None
    assert response.ok
    assert HttpResponse(204, {}).json() is None
    assert [HttpResponse(s, {}).ok for s in (199, 200, 299, 300, 404)] == [
        False,
        True,
        True,
        False,
        False,
    ]
