"""The reproduction-status page: ``book/reproduction_status.csv`` rendered as a summary table plus details.

The CSV (columns ``claim, source, notebook, verdict, evidence, setting``) is the single source; ``moecl book``
writes :data:`GENERATED` from it before every build, and ``book/status.md`` includes that file. A six-column
table of long evidence texts is unreadable in the book's content width, so the page shows a compact
``claim | verdict | chapter`` table and one details section per claim.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ("claim", "source", "notebook", "verdict", "evidence", "setting")
VERDICTS = ("reproduced", "partly", "not reproduced", "pending")
GENERATED = Path("generated") / "_status_table.md"
"""Where the rendered page body is written, relative to ``book/``."""


def load_status(path: str | Path) -> list[dict[str, str]]:
    """Rows of the status CSV; raises ``ValueError`` naming the line of a malformed row or unknown verdict."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise ValueError(f"{path}:{line}: expected {len(COLUMNS)} fields (quote fields containing commas)")
            if row["verdict"] not in VERDICTS:
                raise ValueError(f"{path}:{line}: verdict {row['verdict']!r} must be one of {list(VERDICTS)}")
            rows.append(row)
    return rows


def _cell(text: str) -> str:
    """Text safe inside a Markdown pipe-table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _chapter(notebook: str) -> str:
    stem = notebook.strip()
    if not stem or stem.startswith("("):
        return stem or "-"
    return f"[{stem}]({Path('generated') / stem}.ipynb)"


def render_status(rows: Sequence[dict[str, str]]) -> str:
    """Markdown body: verdict counts, the summary table and one details section per claim (in CSV order)."""
    counts = Counter(r["verdict"] for r in rows)
    summary = ", ".join(f"**{counts[v]}** {v}" for v in VERDICTS if counts[v])
    lines = [f"{len(rows)} claims: {summary}.", "", "| # | claim | verdict | chapter |", "|---|---|---|---|"]
    for i, r in enumerate(rows, start=1):
        lines.append(f"| [{i}](status-{i}) | {_cell(r['claim'])} | **{r['verdict']}** | {_chapter(r['notebook'])} |")
    lines += ["", "## Details", ""]
    for i, r in enumerate(rows, start=1):
        lines += [
            f"(status-{i})=",
            f"### {i}. {' '.join(r['claim'].split())}",
            "",
            f"- **Verdict:** {r['verdict']} (chapter: {_chapter(r['notebook'])})",
            f"- **Source:** {' '.join(r['source'].split())}",
            f"- **Evidence:** {' '.join(r['evidence'].split()) or '-'}",
            f"- **Setting:** {' '.join(r['setting'].split()) or '-'}",
            "",
        ]
    return "\n".join(lines)


def write_status_page(book_dir: str | Path) -> Path:
    """Render ``book_dir/reproduction_status.csv`` into ``book_dir/generated/_status_table.md``; returns the path."""
    book = Path(book_dir)
    out = book / GENERATED
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_status(load_status(book / "reproduction_status.csv")) + "\n", encoding="utf-8")
    return out
