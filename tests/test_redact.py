"""Secrets are masked in every form a server may echo them in, and before any cut."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from bulksync.spi._connector import response_error
from bulksync.spi._http import HttpResponse
from bulksync.spi._redact import MASK, body_excerpt, redact, redacted_excerpt, register_secret

SECRET = "tok/en+with=odd&chars-0123456789"


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    encoded = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),
        *encoded,
        *(e.rstrip("=") for e in encoded),
    ]


@pytest.mark.parametrize("form", forms(SECRET))
def test_every_form_of_a_secret_is_masked(form: str) -> None:
    register_secret(SECRET)
    assert redact(f"before {form} after") == f"before {MASK} after"


def test_forms_of_the_test_secret_differ() -> None:
    # Otherwise the test above would check the raw form only.
    assert len(set(forms(SECRET))) >= 5


def masked_then_cut(text: str) -> str:
    return text[:300] + ("..." if len(text) > 300 else "")


@pytest.mark.parametrize("cut", [1, 4, len(SECRET) // 2, len(SECRET) - 1])
def test_a_secret_straddling_the_cut_is_masked_whole(cut: int) -> None:
    """``cut`` characters of the secret fall before the 300th: cutting first would keep them."""
    register_secret(SECRET)
    text = "x" * (300 - cut) + SECRET + " and the rest"
    excerpt = redacted_excerpt(text, 300)
    assert excerpt == masked_then_cut("x" * (300 - cut) + MASK + " and the rest")
    body = ("y" * (300 - cut) + SECRET + "z" * 400).encode()
    for message in (body_excerpt(body), response_error(HttpResponse(400, {}, body)).error.message):
        assert message == masked_then_cut("y" * (300 - cut) + MASK + "z" * 400)
        if cut >= 4:
            assert SECRET[:cut] not in message


def test_an_excerpt_is_cut_and_stripped() -> None:
    assert redacted_excerpt("  " + "a" * 400, 300) == "a" * 300 + "..."
    assert redacted_excerpt(" short \n") == "short"
