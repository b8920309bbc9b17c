"""Checks of the built HTML book (what a reader sees), run by make check-html.

The checks on the built pages are skipped, with the reason, when ``book/_build/html``
does not exist (build it with ``make test-book`` or ``make book``). The checker itself
is tested on planted violations in every run.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bs4 import BeautifulSoup

HTML = Path(__file__).resolve().parents[1] / "book" / "_build" / "html"

# Words about how the companion was built, which have no place on a reader page. Each is
# a regular expression
# matched case-insensitively on the visible text of a page's article (code included:
# readers can open it).
# Kept narrow on purpose: "task", "target", "run" and "profile" are words of the science
# and of re-running.
BANNED = {
    "nbval": r"\bnbval\b",
    "NBVAL marker": r"NBVAL_",
    "issue": r"\bissues?\b",
    "commit": r"\bcommits?\b",
    "CI": r"\bCI\b",
    "TODO": r"\bTODO\b",
    "FIXME": r"\bFIXME\b",
    "pull request": r"\bpull requests?\b",
    "session": r"\bsessions?\b",
    "lead engineer": r"\blead engineer\b",
    "other jobs": r"\bother (?:people's )?jobs\b",
}
# Pages exempt from some words, with the reason:
EXEMPT = {
    # the build-information page names the commit the book was built from (that is its
    # purpose)
    "build_info.html": {"commit"},
    # the specification appendix is a verbatim document (spec/SPEC.md), quoted as it was
    # written
    "spec.html": set(BANNED),
}
NOT_READER_PAGES = {"genindex.html", "search.html"}


def reader_pages(root: Path = HTML) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*.html")
        if p.name not in NOT_READER_PAGES
        and not {"_sources", "_static", "_images"} & set(p.relative_to(root).parts)
    )


def problems(html: str, page: str) -> list[str]:
    """What a reader would trip on in one page: test leftovers, uncaptioned figures,
    malformed external links, banned words. Empty when the page is clean."""
    out: list[str] = []
    soup = BeautifulSoup(html, "html.parser")
    article = soup.find("article") or soup
    for tag in article.find_all(["script", "style"]):
        tag.decompose()
    text = article.get_text(" ")
    if "NBVAL_CHECK_OUTPUT" in html:
        out.append(f"{page}: contains NBVAL_CHECK_OUTPUT")
    if "PosixPath(" in html:
        out.append(f"{page}: contains PosixPath(")
    for img in article.find_all("img"):
        if "sd-card-img-top" in (img.get("class") or []):
            continue  # thumbnail of a card whose title names the chapter
        fig = img.find_parent("figure")
        cap = fig.find("figcaption") if fig else None
        if cap is None or not cap.get_text(strip=True):
            out.append(f"{page}: figure without a caption ({img.get('src', '?')[:60]})")
    for a in soup.find_all("a", href=True):
        href = a["href"]
        if not re.match(r"(?i)^(https?|ftp|mailto):", href):
            continue
        url = urlparse(href)
        bad = (
            re.search(r"\s", href)
            or (
                url.scheme != "mailto"
                and not re.match(r"^[\w.-]+\.[a-z]{2,}(:\d+)?$", url.netloc)
            )
            or href.endswith((".", ",", ")", ";"))
        )
        if bad:
            out.append(f"{page}: malformed external link {href!r}")
    exempt = EXEMPT.get(page, set())
    for name, pattern in BANNED.items():
        if name in exempt:
            continue
        m = re.search(pattern, text, flags=re.IGNORECASE)
        if m:
            ctx = " ".join(text[max(0, m.start() - 40) : m.end() + 40].split())
            out.append(f"{page}: banned word {name!r}: ...{ctx}...")
    return out


# ------------------------------------------------------------------------------ the
# checker catches violations

CLEAN = """<html><body><article>
<p>Claim: the router specialises. See <a
href="https://arxiv.org/abs/2406.16437">arXiv</a>.</p>
<figure><img src="a.png"><figcaption><p>Fig. 1 Routing purity 0.94 ±
0.01.</p></figcaption></figure>
</article></body></html>"""


def test_clean_page_passes():
    assert problems(CLEAN, "x.html") == []


@pytest.mark.parametrize(
    "planted, expected",
    [
        ("<pre># NBVAL_CHECK_OUTPUT\nprint(1)</pre>", "NBVAL_CHECK_OUTPUT"),
        ("<pre>PosixPath('results/x.csv')</pre>", "PosixPath("),
        ('<img src="b.png">', "without a caption"),
        (
            '<figure><img src="b.png"><figcaption> </figcaption></figure>',
            "without a caption",
        ),
        (
            '<a href="https://arxiv.org/abs/2406.16437).">x</a>',
            "malformed external link",
        ),
        ('<a href="https:/arxiv.org">x</a>', "malformed external link"),
        ('<a href="http://exa mple.org">x</a>', "malformed external link"),
        ("<p>As discussed in issue 8, this holds.</p>", "'issue'"),
        ("<p>Measured at commit 7678ddf.</p>", "'commit'"),
        ("<p>It is what CI uses.</p>", "'CI'"),
        ("<p>TODO: caption</p>", "'TODO'"),
        ("<p>checked by nbval</p>", "'nbval'"),
        ("<p>other people's jobs were running</p>", "'other jobs'"),
    ],
)
def test_checker_catches_planted_violation(planted, expected):
    html = CLEAN.replace("</article>", planted + "</article>")
    found = problems(html, "x.html")
    assert any(expected in p for p in found), found


def test_exemptions_are_narrow():
    html = CLEAN.replace("</article>", "<p>Commit: abc123</p></article>")
    assert problems(html, "build_info.html") == []
    assert problems(html, "intro.html")


# ------------------------------------------------------------------------------ the
# built book

needs_build = pytest.mark.skipif(
    not (HTML / "index.html").is_file(),
    reason="book/_build/html is missing: run `make test-book` (or `make book`) first",
)


@needs_build
def test_built_pages_have_no_problems():
    pages = reader_pages()
    assert len(pages) > 20, [p.name for p in pages]
    found = [
        msg
        for p in pages
        for msg in problems(
            p.read_text(encoding="utf-8"), p.relative_to(HTML).as_posix()
        )
    ]
    assert not found, "\n".join(found)


@needs_build
def test_every_chapter_opens_with_claim_verdict_and_figure():
    for p in sorted((HTML / "generated").glob("*.html")):
        soup = BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser")
        article = soup.find("article")
        first = article.find(["div", "aside"], class_="admonition")
        assert first is not None, f"{p.name}: no claim box"
        fig = first.find_next("figure")
        assert fig is not None and fig.find("figcaption"), f"{p.name}: no key figure"
        headings = article.find_all("h2")
        assert not headings or headings[0].sourceline > fig.sourceline, (
            f"{p.name}: the key figure comes after the first section"
        )
