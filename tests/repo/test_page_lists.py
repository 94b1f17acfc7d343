"""The lists of documentation pages cannot drift: the README's "Documentation" list, docs/index.md's "Pages" list
and the site navigation (mkdocs.yml) each name every page under docs/, and only pages that exist."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support.values import REPO

DOCS = REPO / "docs"
PAGES = sorted(path.name for path in DOCS.glob("*.md") if path.name != "index.md")


def _section(text: str, heading: str) -> str:
    """The text under `## heading`, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


@pytest.mark.parametrize(
    ("where", "heading", "link"),
    [("README.md", "Documentation", r"\]\(docs/([a-z0-9-]+\.md)"), ("docs/index.md", "Pages", r"\]\(([a-z0-9-]+\.md)")],
    ids=["README", "docs-index"],
)
def test_a_page_list_names_every_page(where: str, heading: str, link: str) -> None:
    listed = re.findall(link, _section((REPO / where).read_text(), heading))
    assert sorted(set(listed) - {"index.md"}) == PAGES, (
        f"{where} '## {heading}' misses {sorted(set(PAGES) - set(listed))}, names no page "
        f"{sorted(set(listed) - set(PAGES) - {'index.md'})}"
    )


def test_the_site_navigation_names_every_page() -> None:
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # noqa: S506 (no tags resolved)
    assert sorted(set(_nav_pages(config["nav"])) - {"index.md"}) == PAGES
