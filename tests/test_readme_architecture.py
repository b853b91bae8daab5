"""The README's Architecture section names real paths, and the names it puts in them are there.

Each bullet starts from a folder (``bulksync/engine/``); a bare module name in it
(``_stages.py``) is a file of that folder, a bare folder (``propeller/``) a child or a sibling
of it, and a class-like name (``Retrier``) must be defined under it or in the SPI, the
vocabulary every layer shares.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"`([^`]+)`")
ROOTS = ("bulksync/", "examples/", "tests/", "docs/", "benchmarks/")


def architecture_bullets() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line[2:])
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
    return bullets


def checks(bullet: str) -> list[tuple[str, Path | None, str]]:
    """(token, path that must exist or None, name that must be defined under the base)."""
    tokens = TOKEN.findall(bullet)
    base = next((REPO / t for t in tokens if t.startswith(ROOTS)), None)
    assert base is not None, f"a bullet names no folder to start from: {bullet[:60]}"
    folder = base if base.is_dir() else base.parent
    found: list[tuple[str, Path | None, str]] = []
    for token in tokens:
        if token.startswith(ROOTS):
            found.append((token, REPO / token, ""))
        elif re.fullmatch(r"[\w.]+\.py", token):
            found.append((token, folder / token, ""))
        elif re.fullmatch(r"\w+/", token):
            child = folder / token
            found.append((token, child if child.exists() else folder.parent / token, ""))
        elif re.fullmatch(r"[A-Z][A-Za-z]+", token):
            found.append((token, None, token))
    return [(token, path, name) for token, path, name in found if path or name] + [
        ("(base)", folder, "")
    ]


BULLETS = architecture_bullets()


def test_the_section_is_read() -> None:
    # Guards the test: a section the parser missed would pass everything below.
    assert len(BULLETS) >= 8
    assert any("bulksync/engine/" in bullet for bullet in BULLETS)


@pytest.mark.parametrize("bullet", BULLETS, ids=lambda b: TOKEN.findall(b)[0])
def test_every_path_exists_and_every_name_is_defined_there(bullet: str) -> None:
    sources: dict[Path, str] = {}
    base = checks(bullet)[-1][1]
    assert base is not None
    for folder in (base, REPO / "bulksync" / "spi"):
        for path in folder.rglob("*.py"):
            sources[path] = path.read_text(encoding="utf-8")
    for token, path, name in checks(bullet):
        if path is not None:
            assert path.exists(), f"README Architecture names `{token}`, but {path} is missing"
        if name:
            defined = re.compile(rf"^\s*(class {name}\b|{name}\s*[:=])", re.M)
            assert any(defined.search(text) for text in sources.values()), (
                f"README Architecture says `{name}` is under {base.relative_to(REPO)}, "
                "but nothing there defines it"
            )
