"""The README stays a front page, and its links into the docs lead somewhere.

The docs site itself is checked by ``mkdocs build --strict`` in CI (every page, link, anchor
and API reference); this test needs no MkDocs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move detail into docs/"


def test_relative_links_of_the_readme_and_the_docs_exist():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in pages[1:] if p.name != "index.md" and f"(docs/{p.name})" not in readme]
    assert not missing, f"README.md links to no docs page {missing}"
