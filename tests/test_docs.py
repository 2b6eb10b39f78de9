"""The README and docs/*.md: every relative link points to a file of the repository, every #anchor to a
heading of its target (GitHub's slugs), and the README stays a front door (at most 220 lines).

Fast and offline: reads Markdown files only, loads no model."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"(?<!\\)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation but - and _ removed,
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for m in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """'target: why' for each relative link of `path` that does not resolve inside `root`."""
    problems = []
    for m in LINK.finditer(_prose(path.read_text(encoding="utf-8"))):
        target = m.group(1)
        if EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: no file {dest.relative_to(root) if dest.is_relative_to(root) else dest}")
            continue
        if not dest.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
            continue
        if anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(root)}")
    return problems


def test_slug_follows_github():
    assert slug("Why Milvus Lite 2.5.1, not 3.x") == "why-milvus-lite-251-not-3x"
    assert slug("Exact terms (`rag/exact_terms.py`, setting `term_weight`)") == "exact-terms-ragexact_termspy-setting-term_weight"
    assert slug("Passage states: the first token from work done once") == "passage-states-the-first-token-from-work-done-once"
    assert slug("Near-miss unanswerable questions (`eval --drop-gold`)") == "near-miss-unanswerable-questions-eval---drop-gold"


def test_broken_links_are_found(tmp_path):
    """The check itself fails on a missing file, a missing heading and a path out of the repository."""
    (tmp_path / "a.md").write_text("# Title\n\n## Some section\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#some-section) [ok](#here) [web](https://example.com/x.md)\n"
        "`[code](nowhere.md)`\n\n```\n[fenced](nowhere.md)\n```\n\n"
        "[gone](missing.md) [bad anchor](a.md#no-such-section) [out](../)\n\n## Here\n",
        encoding="utf-8",
    )
    assert broken_links(page, root=tmp_path) == [
        "missing.md: no file missing.md",
        "a.md#no-such-section: no heading #no-such-section in a.md",
        "../: outside the repository",
    ]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    assert broken_links(path) == []


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_doc_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{p.name}" not in readme]
    assert unlinked == []
