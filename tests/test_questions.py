"""The questions page: every open claim of the build has questions; unknown ids and
malformed entries fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from moecl_lib.claims.record import record_from_notebook
from moecl_lib.tools.questions import load_questions, parse_questions, render_questions
from moecl_lib.tools.status import load_status

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def committed_records():
    out = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        rec = record_from_notebook(json.loads(path.read_text(encoding="utf-8")))
        if rec is not None:
            out[rec.chapter] = rec
    return out


def test_every_claim_of_the_paper_and_the_baseline_has_questions():
    rows = load_status(BOOK / "reproduction_status.csv")
    questions = load_questions(BOOK / "questions.yml")
    asked = {r["id"] for r in rows if r["kind"] in ("paper", "baseline")}
    assert asked <= set(questions), sorted(asked - set(questions))


def test_page_lists_open_claims_with_their_verdicts():
    rows = load_status(BOOK / "reproduction_status.csv")
    records = committed_records()
    text = render_questions(rows, records, load_questions(BOOK / "questions.yml"))
    prop1 = next(r for r in rows if r["id"] == "prop1")
    assert (
        " ".join(prop1["claim"].split()) in text
    )  # partly / not reproduced in the quick build
    assert "| if the paper says | then |" in text
    assert not text.startswith("---")  # would be read as front matter
    fig2_v = next(r for r in rows if r["id"] == "fig2_v")
    assert (
        f"**{' '.join(fig2_v['claim'].split())}**" not in text
    )  # reproduced in both settings
    assert "Claims reproduced in this build" in text


def test_a_missing_entry_or_an_unknown_id_fails():
    rows = load_status(BOOK / "reproduction_status.csv")
    records = committed_records()
    questions = load_questions(BOOK / "questions.yml")
    with pytest.raises(
        ValueError, match=r"no questions for open claim\(s\) \['prop1'\]"
    ):
        render_questions(
            rows, records, {k: v for k, v in questions.items() if k != "prop1"}
        )
    with pytest.raises(ValueError, match="unknown claim id"):
        render_questions(rows, records, {**questions, "prop9": questions["prop1"]})


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"prop1": []},
        {"prop1": [{"element": "e", "question": "q"}]},
        {"prop1": [{"element": "e", "question": "q", "if_paper_says": {"a": "b"}}]},
    ],
)
def test_malformed_files_fail(data):
    with pytest.raises(ValueError):
        parse_questions(yaml.safe_load(json.dumps(data)))
