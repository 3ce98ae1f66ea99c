"""Every ``python`` snippet under docs/ runs (snippets of a page share one namespace), and the
apps they build answer as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("migrating/*.md"))
IDS = [str(p.relative_to(DOCS).with_suffix("")) for p in PAGES]


def snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)  # "python no-run" skipped


def test_there_are_docs_with_snippets() -> None:
    assert sum(len(snippets(page)) for page in PAGES) >= 5


CONTINUES = "# continues the example above"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_each_snippet_runs_alone_unless_it_says_it_continues(page: Path) -> None:
    """A snippet copied as written works (the machine-to-machine one once raised
    ``NameError: app``); one that builds on the previous says so in its first line."""
    for code in snippets(page):
        if not code.startswith(CONTINUES):
            exec(compile(code, str(page), "exec"), {"__name__": f"alone_{page.stem}"})  # noqa: S102


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_snippets_run(page: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for code in snippets(page):
        exec(compile(code, str(page), "exec"), namespace)  # noqa: S102
    app = namespace.get("app")
    if isinstance(app, FastAPI):
        # No lifespan (no start-up fetch): the documented hosts are not contacted. Requests
        # without credentials never need the provider.
        client = TestClient(app)
        for route in app.routes:
            path = getattr(route, "path", "")
            methods = getattr(route, "methods", None) or {"GET"}
            if path.startswith("/api/") and "{" not in path:
                response = client.request(sorted(methods)[0], path, follow_redirects=False)
                assert response.status_code in (200, 401), (path, response.text)


ROOT = DOCS.parent
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_relative_links_resolve() -> None:
    """Every relative link of the README and docs/ names a file that exists, and a heading of
    it when it has an anchor (the migration pages link into the provider guides and back)."""
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for target, anchor in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (page.parent / target) if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)} -> {target}#{anchor}")
    assert broken == []
