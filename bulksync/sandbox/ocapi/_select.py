"""A small subset of OCAPI's ``select`` property selector: ``(**)``, ``(total,count)``,
``(data.(position,type))``; enough for clients that trim list answers.
"""

from __future__ import annotations

import re
from typing import Any

Selector = dict[str, "Selector | None"] | None  # None: keep everything below this point
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALWAYS_KEPT = ("_v", "_type", "select")  # meta properties survive any selector


def parse(text: str) -> Selector:
    """Parse a selector or raise ValueError (answered as MalformedSelectorException)."""
    selector, pos = _group(text.replace(" ", ""), 0)
    if pos != len(text.replace(" ", "")):
        raise ValueError(f"unexpected text at {pos}")
    return selector


def _group(text: str, pos: int) -> tuple[Selector, int]:
    if pos >= len(text) or text[pos] != "(":
        raise ValueError(f"'(' expected at {pos}")
    pos += 1
    fields: dict[str, Selector] = {}
    keep_all = False
    while True:
        if text.startswith("**", pos):
            keep_all, pos = True, pos + 2
        else:
            match = _NAME.match(text, pos)
            if match is None:
                raise ValueError(f"property name expected at {pos}")
            name, pos = match.group(), match.end()
            sub: Selector = None
            if text.startswith(".", pos):
                sub, pos = _group(text, pos + 1)
            fields[name] = sub
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == ")":
            return (None if keep_all else fields), pos + 1
        raise ValueError(f"',' or ')' expected at {pos}")


def apply(document: Any, selector: Selector) -> Any:
    if selector is None:
        return document
    if isinstance(document, list):
        return [apply(item, selector) for item in document]
    if not isinstance(document, dict):
        return document
    kept = {k: document[k] for k in _ALWAYS_KEPT if k in document}
    for name, sub in selector.items():
        if name in document:
            kept[name] = apply(document[name], sub)
    return kept
