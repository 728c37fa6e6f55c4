"""Every Markdown file the code cites is in the repository, and so is every section it names.

Docstrings and comments cite the contracts (``RECORDS.md "Reverse zones"``, ``STYLE.md #5``)
at the line that implements them; a citation that leads nowhere is a rule nobody can
check. A bare file name resolves under ``docs/`` (or the repository root, for README.md);
a path resolves from the repository root and must stay inside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

SOURCES = [ROOT / "cli.py", *sorted((ROOT / "zonegen").rglob("*.py")),
           *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py")),
           *sorted((ROOT / "migrations").rglob("*.py"))]
MD = r"\.md"
# A cited file: a path of word characters, dots, dashes and slashes ending in .md, then
# optionally the section it names: a quoted heading or phrase, or a numbered rule.
CITATION = re.compile(r"(?<![\w./-])(?P<path>[\w./-]*\w" + MD + r")\b"
                      r"(?:[,:]? ?(?:\"(?P<quote>[A-Za-z][^\"]*)\"|#(?P<rule>\d+)))?")
URL = re.compile(r"\w+://\S+")


def citations() -> list[tuple[str, str, str | None, str | None]]:
    """(citing file, cited path, quoted section or phrase, rule number) for every citation."""
    found = []
    for source in SOURCES:
        text = URL.sub(" ", re.sub(r"\s+", " ", source.read_text()))
        for m in CITATION.finditer(text):
            found.append((str(source.relative_to(ROOT)), m["path"], m["quote"], m["rule"]))
    return found


def resolve(path: str) -> Path | None:
    """The repository file a citation means, or None when there is none inside it."""
    candidates = [ROOT / "docs" / path, ROOT / path] if "/" not in path else [ROOT / path]
    for candidate in candidates:
        real = candidate.resolve()
        if real.is_relative_to(ROOT) and real.is_file():
            return real
    return None


def flat(text: str) -> str:
    """Text as a reader sees it: lowercase, Markdown emphasis and code marks dropped, any
    run of whitespace one space."""
    return re.sub(r"\s+", " ", re.sub(r"[*`_]", "", text)).lower()


def test_the_code_cites_the_contracts() -> None:
    """Guards the scan itself: it finds the citations the code is known to make."""
    cited = {(path, quote, rule) for _, path, quote, rule in citations()}
    records, style = "RECORDS" + ".md", "STYLE" + ".md"  # not citations themselves
    assert (records, "Reverse zones", None) in cited
    assert (style, None, "5") in cited
    assert len(citations()) > 60


def test_every_cited_markdown_file_is_in_the_repository() -> None:
    missing = sorted({f"{source}: {path}" for source, path, _, _ in citations()
                      if resolve(path) is None})
    assert missing == []


def test_every_cited_section_exists() -> None:
    missing = []
    for source, path, quote, rule in citations():
        doc = resolve(path)
        if doc is None or (quote is None and rule is None):
            continue
        text = doc.read_text()
        if quote is not None and flat(quote) not in flat(text):
            missing.append(f"{source}: {path} \"{quote}\"")
        if rule is not None and not re.search(rf"^{rule}\. ", text, re.MULTILINE):
            missing.append(f"{source}: {path} #{rule}")
    assert missing == []


@pytest.mark.parametrize("name", ["RECORDS", "DESIGN", "STYLE", "PERFORMANCE", "SECONDARIES"])
def test_contract_links_between_docs_resolve(name: str) -> None:
    doc = ROOT / "docs" / f"{name}.md"
    for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text()):
        assert (doc.parent / target).is_file(), f"{doc.name} links to missing {target}"
