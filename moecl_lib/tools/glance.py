"""The "Results at a glance" page and the chapters' download lists (moecl book).

Both are written by ``moecl book`` (through
:func:`moecl_lib.tools.status.write_status_page`) from the executed notebooks in
``book/generated/``:

- :data:`GLANCE`: one card per chapter with a thumbnail of its key figure (the figure
  the chapter glues as ``fig_<stem>``, extracted from the notebook), the verdict of
  each claim in each setting (from the record the chapter glued) and a link to the
  chapter. Nothing on it is typed by hand.
- :data:`DOWNLOADS`: per chapter, the figure PDFs and CSV data that its run wrote under
  ``results/<stem>/``, copied into ``book/generated/_downloads/<stem>/`` and linked
  with ``{download}`` roles. A chapter whose files are absent (the book was rendered
  from stored notebooks without running them) says how to produce them.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moecl_lib.claims.record import Record
from moecl_lib.tools.claim_tables import checks_of, verdict_by_setting

GLANCE = Path("generated") / "_glance.md"
"""The body of ``book/glance.md``, relative to ``book/``."""
THUMBS = Path("generated") / "_glance"
DOWNLOADS = Path("generated") / "_downloads.md"
"""The body of ``book/downloads.md``, relative to ``book/``."""
DOWNLOAD_DIR = Path("generated") / "_downloads"
SETTINGS = ("calibrated", "recalled")
OWN = "own parameters"


def key_figure_png(nb: Mapping[str, Any], stem: str) -> bytes | None:
    """The PNG that a chapter glued as ``fig_<stem>`` (its key figure), or ``None``."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            meta = out.get("metadata", {}).get("scrapbook", {})
            data = out.get("data", {})
            # hidden glue (display=False) prefixes the mime types
            png = next((v for k, v in data.items() if k.endswith("image/png")), None)
            if meta.get("name") == f"fig_{stem}" and png:
                text = "".join(png) if isinstance(png, list) else png
                return base64.b64decode(text)
    return None


def claim_label(text: str) -> str:
    """A claim's short name: its text before the first colon (``Proposition 1``)."""
    head = text.split(":", 1)[0]
    return head if ":" in text and len(head) <= 40 else "claim"


def verdict_cells(record: Record, claim: str) -> dict[str, str]:
    """setting -> verdict of one claim (no calibrated/recalled setting: :data:`OWN`)."""
    return verdict_by_setting(checks_of(record, claim), OWN)


def render_glance(
    rows: Sequence[Mapping[str, str]],
    records: Mapping[str, Record],
    titles: Mapping[str, str],
    thumbs: Mapping[str, str],
) -> str:
    """Markdown (sphinx-design grid): one card per chapter, in the order of ``rows``."""
    chapters = list(dict.fromkeys(r["chapter"] for r in rows))
    claims = {r["id"]: r for r in rows}
    lines = ["::::{grid} 1 2 2 3", ":gutter: 3", ""]
    for ch in chapters:
        rec = records.get(ch)
        lines += [
            f":::{{grid-item-card}} {titles.get(ch, ch)}",
            f":link: generated/{ch}",
            ":link-type: doc",
        ]
        if ch in thumbs:
            lines.append(f":img-top: {thumbs[ch]}")
            lines.append(f":img-alt: key figure of {titles.get(ch, ch)}")
        lines.append("")
        if rec is None:
            lines += ["verdict: **pending** (no record in this build)", ":::", ""]
            continue
        ids = list(dict.fromkeys(c.claim for c in rec.checks))
        for cid in ids:
            cells = verdict_cells(rec, cid)
            parts = [f"{s}: **{v}**" for s, v in cells.items()]
            if len(ids) == 1:
                lines.append("; ".join(parts))
            else:
                label = claim_label(claims[cid]["claim"]) if cid in claims else cid
                lines.append(f"- {label}: " + "; ".join(parts))
        lines += [":::", ""]
    lines.append("::::")
    return "\n".join(lines)


def write_glance(
    book: Path,
    rows: Sequence[Mapping[str, str]],
    records: Mapping[str, Record],
    titles: Mapping[str, str],
) -> Path:
    """Extract the thumbnails and write :data:`GLANCE` under ``book``."""
    thumbs: dict[str, str] = {}
    tdir = book / THUMBS
    if tdir.is_dir():
        shutil.rmtree(tdir)
    tdir.mkdir(parents=True)
    for ch in dict.fromkeys(r["chapter"] for r in rows):
        path = book / "generated" / f"{ch}.ipynb"
        if not path.is_file():
            continue
        png = key_figure_png(json.loads(path.read_text(encoding="utf-8")), ch)
        if png is not None:
            (tdir / f"{ch}.png").write_bytes(png)
            thumbs[ch] = "/" + (THUMBS / f"{ch}.png").as_posix()
    out = book / GLANCE
    out.write_text(
        render_glance(rows, records, titles, thumbs) + "\n", encoding="utf-8"
    )
    return out


def write_downloads(
    book: Path, titles: Mapping[str, str], results: Path | None = None
) -> Path:
    """Copy each chapter's ``results/<stem>/*.pdf|csv``; write :data:`DOWNLOADS`."""
    results = results or book.resolve().parent / "results"
    ddir = book / DOWNLOAD_DIR
    if ddir.is_dir():
        shutil.rmtree(ddir)
    lines = []
    for ch in sorted(titles):
        lines += [f"(downloads-{ch})=", f"## {titles[ch]}", ""]
        files = sorted(
            p
            for p in (results / ch).glob("*")
            if p.suffix in (".pdf", ".csv") and p.is_file()
        )
        if not files:
            lines += [
                "The figures and data of this chapter are written when it runs "
                "(`make book`); this build rendered it without running it.",
                "",
            ]
            continue
        (ddir / ch).mkdir(parents=True, exist_ok=True)
        for kind, suffix in (("Figures (PDF)", ".pdf"), ("Data (CSV)", ".csv")):
            mine = [p for p in files if p.suffix == suffix]
            if not mine:
                continue
            links = []
            for p in mine:
                shutil.copy2(p, ddir / ch / p.name)
                links.append(
                    f"{{download}}`{p.name} </{DOWNLOAD_DIR.as_posix()}/{ch}/{p.name}>`"
                )
            lines.append(f"- **{kind}:** " + ", ".join(links))
        lines.append("")
    out = book / DOWNLOADS
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
