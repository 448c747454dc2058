"""Every repository path that README.md and the documentation cite exists.

A path is cited as ``benchmarks/...``, ``configs/...``, ``docs/...``, ``src/...``, ``tests/...`` or
``.ci/...`` anywhere in the text (code spans, links, commands); ``*`` patterns must match at least one
file. Links between documentation pages are checked by ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PATH = re.compile(r"(?<![\w./\-])((?:benchmarks|configs|docs|src|tests|\.ci)/[\w./*\-]*[\w*/])")


def cited_paths(text: str) -> set[str]:
    """The repository paths cited in ``text`` (a trailing full stop is not part of a path)."""
    return {m.rstrip(".") for m in PATH.findall(text)}


def _exists(path: str) -> bool:
    if "*" in path:
        return any(REPO.glob(path.rstrip("/")))
    return (REPO / path).exists()


def test_cited_paths_are_found() -> None:
    assert cited_paths("see `benchmarks/results/cpu/recipes.csv`, and src/medssl/config.py.") == {
        "benchmarks/results/cpu/recipes.csv",
        "src/medssl/config.py",
    }
    assert cited_paths("runs/cpu/benchmarks/x and ../shared/data") == set()
    assert cited_paths("[fig](docs/figures/recipes.png) configs/benchmark_*.yaml") == {
        "docs/figures/recipes.png",
        "configs/benchmark_*.yaml",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_cited_path_exists(page: Path) -> None:
    missing = sorted(p for p in cited_paths(page.read_text(encoding="utf-8")) if not _exists(p))
    assert not missing, f"{page.relative_to(REPO)} cites paths that do not exist: {missing}"


def test_pages_are_found() -> None:
    assert (REPO / "README.md") in PAGES and len(PAGES) > 10
