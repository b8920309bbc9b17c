"""Questions for the paper: the page that lists, for every claim this build does not
reproduce in full, the unverified elements of the paper that would settle it and what
each answer would imply.

The questions are text kept in ``book/questions.yml`` (read with ``yaml.safe_load``);
which claims are listed, and with which verdicts, comes from the records of the build
(as on the status page). A claim of the paper or of the Expert Gate baseline whose
verdict is "partly", "not reproduced" or "inconclusive" in some setting and that has no
entry in the file is an error: the page cannot silently omit it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moecl_lib.claims.record import Record
from moecl_lib.tools.claim_tables import (
    claim_checks,
    table_cell,
    verdict_by_setting,
)

QUESTIONS_FILE = "questions.yml"
GENERATED = Path("generated") / "_questions.md"
OPEN_VERDICTS = ("partly", "not reproduced", "inconclusive")
ASKED_KINDS = ("paper", "baseline")


@dataclass(frozen=True)
class Question:
    """One unverified element, the question it raises, and the implication of each
    possible answer."""

    element: str
    question: str
    answers: tuple[tuple[str, str], ...]


def parse_questions(
    data: Any, source: str = QUESTIONS_FILE
) -> dict[str, list[Question]]:
    """Validate the questions file: claim id -> list of entries with ``element``,
    ``question`` and ``if_paper_says`` (at least two answers, each mapped to its
    implication)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: must map claim ids to lists of questions")
    out: dict[str, list[Question]] = {}
    for claim, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{source}: {claim}: must be a non-empty list")
        qs = []
        for i, e in enumerate(entries):
            where = f"{source}: {claim}[{i}]"
            if not isinstance(e, Mapping) or set(e) != {
                "element",
                "question",
                "if_paper_says",
            }:
                raise ValueError(
                    f"{where}: needs exactly element, question, if_paper_says"
                )
            answers = e["if_paper_says"]
            if not isinstance(answers, Mapping) or len(answers) < 2:
                raise ValueError(f"{where}: if_paper_says needs at least two answers")
            qs.append(
                Question(
                    element=str(e["element"]),
                    question=str(e["question"]),
                    answers=tuple((str(k), str(v)) for k, v in answers.items()),
                )
            )
        out[str(claim)] = qs
    return out


def load_questions(path: str | Path) -> dict[str, list[Question]]:
    p = Path(path)
    return parse_questions(yaml.safe_load(p.read_text(encoding="utf-8")), str(p.name))


def open_verdicts(
    row: Mapping[str, str], records: Mapping[str, Record]
) -> dict[str, str]:
    """setting -> verdict of a claim in this build (all settings)."""
    return verdict_by_setting(claim_checks(row, records))


def _setting(s: str) -> str:
    return "the chapter's own parameters" if s == "-" else f"{s} setting"


def render_questions(
    rows: Sequence[Mapping[str, str]],
    records: Mapping[str, Record],
    questions: Mapping[str, list[Question]],
    titles: Mapping[str, str] | None = None,
) -> str:
    """Markdown of the questions page. Raises ValueError when an open claim has no
    questions."""
    titles = titles or {}
    unknown = sorted(set(questions) - {r["id"] for r in rows})
    if unknown:
        raise ValueError(f"{QUESTIONS_FILE}: unknown claim id(s) {unknown}")
    listed, settled, missing = [], [], []
    for r in rows:
        if r["kind"] not in ASKED_KINDS:
            continue
        verdicts = open_verdicts(r, records)
        if not verdicts:
            continue
        if any(v in OPEN_VERDICTS for v in verdicts.values()):
            (listed if r["id"] in questions else missing).append((r, verdicts))
        elif r["id"] in questions:
            settled.append(r)
    if missing:
        ids = [r["id"] for r, _ in missing]
        raise ValueError(f"{QUESTIONS_FILE}: no questions for open claim(s) {ids}")
    lines: list[str] = []
    for r, verdicts in listed:
        link = f"generated/{r['chapter']}.ipynb"
        title = titles.get(r["chapter"], r["chapter"])
        if (
            lines
        ):  # a rule between claims (never first: "---" would open a front matter)
            lines += ["---", ""]
        lines += [f"**{' '.join(r['claim'].split())}**", ""]
        lines.append(
            "Verdicts in this build: "
            + "; ".join(f"**{v}** ({_setting(s)})" for s, v in sorted(verdicts.items()))
            + f". Chapter: [{title}]({link})."
        )
        lines.append("")
        for q in questions[r["id"]]:
            lines += [
                f"- **Element:** {q.element}",
                f"- **Question:** {q.question}",
                "",
                "| if the paper says | then |",
                "|---|---|",
            ]
            lines += [f"| {table_cell(a)} | {table_cell(b)} |" for a, b in q.answers]
            lines.append("")
    if settled:
        lines += [
            "---",
            "",
            "**Claims reproduced in this build.**",
            "",
            "These claims have questions on file, but every verdict of this build is "
            "*reproduced*: "
            + "; ".join(" ".join(r["claim"].split(":")[0].split()) for r in settled)
            + ".",
            "",
        ]
    if not listed:
        lines.append("Every claim of the paper is reproduced in this build.")
    return "\n".join(lines)


def write_questions(
    book: Path,
    rows: Sequence[Mapping[str, str]],
    records: Mapping[str, Record],
    titles: Mapping[str, str],
) -> Path:
    """Render ``book/questions.yml`` with the build's verdicts into
    ``book/generated/_questions.md``."""
    text = render_questions(
        rows, records, load_questions(book / QUESTIONS_FILE), titles
    )
    out = book / GENERATED
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    return out
