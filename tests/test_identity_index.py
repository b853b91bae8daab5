"""The duplicate check every run and plan makes per line: its answers do not depend on the
in-memory filter in front of the file (a tiny filter sends every claim to the file)."""

from __future__ import annotations

import random

import pytest

from bulksync.engine._identities import WRITE_BATCH, IdentityIndex


def claims(index: IdentityIndex, lines: list[tuple[str, str]]) -> list[int | None]:
    try:
        return [index.claim(kind, identity, n) for n, (kind, identity) in enumerate(lines, 1)]
    finally:
        index.close()


def expected(lines: list[tuple[str, str]]) -> list[int | None]:
    first: dict[tuple[str, str], int] = {}
    answers: list[int | None] = []
    for n, line in enumerate(lines, 1):
        answers.append(first.get(line))
        first.setdefault(line, n)
    return answers


@pytest.mark.parametrize(
    ("filter_bits", "max_filter_bits"),
    [(8, 8), (8, 1 << 12), (1 << 10, 1 << 16), (1 << 26, 1 << 26)],
    ids=["one-byte", "grown-to-full", "grown-to-roomy", "roomy"],
)
def test_the_first_line_of_each_identity_is_named_whatever_the_filter(
    filter_bits: int, max_filter_bits: int
) -> None:
    rng = random.Random(7)
    # Past a write batch, with repeats near and far, and one identity in two kinds.
    names = [f"doc-{rng.randrange(6000)}" for _ in range(WRITE_BATCH * 2 + 500)]
    lines = [("link" if i % 3 else "asset", name) for i, name in enumerate(names)]
    lines += [("asset", "doc-0"), ("link", "doc-0"), ("link", "doc-0")]
    want = expected(lines)
    assert any(w is not None for w in want) and any(w is None for w in want)
    index = IdentityIndex(filter_bits=filter_bits, max_filter_bits=max_filter_bits)
    assert claims(index, lines) == want


def test_a_repeat_right_after_its_first_claim_is_caught_before_any_write() -> None:
    index = IdentityIndex()
    try:
        assert index.claim("link", "a", 1) is None
        assert index.claim("link", "a", 2) == 1
        assert index.claim("asset", "a", 3) is None
    finally:
        index.close()


def test_the_filter_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="powers of two"):
        IdentityIndex(filter_bits=1000)
