"""Every relative link in README.md and docs/*.md leads somewhere: the file exists and, for `path#anchor` (or
`#anchor` alone), the file has a heading with that anchor, by GitHub's rules. Links to other sites are not
followed. A page moved or a heading renamed without its links fails here instead of in a reader's browser."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, …


def doc_files(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their numbers."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as shown, lower-case, punctuation dropped, spaces to `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char == " ":
            kept.append("-")
        elif char in "-_" or category[0] in "LMN":
            kept.append(char)
    return "".join(kept)


def anchors(path: Path) -> set[str]:
    """The anchors of a file's headings; a repeated heading gets `-1`, `-2`… as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(files: list[Path], repo: Path = REPO) -> list[str]:
    """Every relative link of these files that leads nowhere, as `file:line: target (why)`."""
    problems = []
    for source in files:
        for number, line in prose_lines(source.read_text(encoding="utf-8")):
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if EXTERNAL.match(target):
                    continue
                path_part, _, anchor = target.partition("#")
                where = f"{source.relative_to(repo)}:{number}: {target}"
                destination = (source.parent / path_part).resolve() if path_part else source
                if not destination.exists():
                    problems.append(f"{where} (no such file)")
                elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                    problems.append(f"{where} (no heading with that anchor in {destination.name})")
    return problems


def test_readme_and_docs_exist() -> None:
    assert (REPO / "README.md").is_file()
    assert len(doc_files()) > 1, "docs/*.md holds no page"


def test_every_relative_link_resolves() -> None:
    problems = broken_links(doc_files())
    assert not problems, "links that lead nowhere:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Quick start", "quick-start"),
        ("OCR defaults, and why", "ocr-defaults-and-why"),
        ("What happens to a file that is …", "what-happens-to-a-file-that-is-"),
        ("How far it scales: measured here, and on paper", "how-far-it-scales-measured-here-and-on-paper"),
        ("The pipeline's own cost", "the-pipelines-own-cost"),
        ("Why a long document stays above 0.95×", "why-a-long-document-stays-above-095"),
        ("`ROTATE_PAGES` and [more](x.md)", "rotate_pages-and-more"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Some section\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[fine](docs/page.md) [fine](docs/page.md#some-section) [fine](#title) [web](https://example.org/x)\n"
        "[gone](docs/missing.md) [no anchor](docs/page.md#other-section) [no anchor here](#nowhere)\n"
        "```\n[in code](docs/missing-too.md)\n```\n`[inline code](docs/missing-three.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links(doc_files(tmp_path), tmp_path)
    assert [p.split(" (")[0] for p in problems] == [
        "README.md:4: docs/missing.md",
        "README.md:4: docs/page.md#other-section",
        "README.md:4: #nowhere",
    ]
