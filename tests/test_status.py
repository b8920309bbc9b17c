"""The generated reproduction-status page (moecl_lib.tools.status): verdicts and
evidence from the build's records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moecl_lib.claims import ClaimCheck, Quantity, Reading, Record
from moecl_lib.claims.record import RECORD_KEY
from moecl_lib.claims.rule import reading_line
from moecl_lib.tools.status import (
    load_status,
    render_settings_table,
    render_status,
    unmatched_numbers,
    write_status_page,
)

HEADER = "id,kind,claim,source,chapter,rule\n"
ROWS = (
    'p2,paper,Claim A with |M_n|,"src, [V]",nb_a,"ratio >= 1.25 by 2 s.e."\n'
    "eg,baseline,Claim B,src,nb_b,rule B\n"
    "own,companion,Finding C,ours,nb_c,rule C\n"
)


def _record(chapter: str, ratio: float = 1.41) -> Record:
    checks = [
        ClaimCheck(
            "p2",
            "calibrated",
            (Reading("r", "G_T(never)/G_T(gap) >= 1.25", ratio, 1.25, 0.05),),
        ),
        ClaimCheck(
            "p2",
            "recalled",
            (Reading("r", "G_T(never)/G_T(gap) >= 1.25", 1.0, 1.25, 0.05),),
        ),
    ]
    return Record(chapter, {"seed": 0}, [Quantity("ratio", ratio, 0.05)], checks)


def _notebook(rec: Record, printed: str, title: str = "Chapter A") -> dict:
    glued = {
        "output_type": "display_data",
        "data": {"application/papermill.record/text/plain": repr(rec.to_json())},
        "metadata": {
            "scrapbook": {
                "name": RECORD_KEY,
                "mime_prefix": "application/papermill.record/",
            }
        },
    }
    return {
        "metadata": {"moecl": {"profile": "paper"}},
        "cells": [
            {"cell_type": "markdown", "source": f"# {title}\n\ntext"},
            {
                "cell_type": "code",
                "outputs": [{"output_type": "stream", "text": printed}, glued],
            },
        ],
    }


def _book(tmp_path: Path, printed: str | None = None) -> Path:
    (tmp_path / "reproduction_status.csv").write_text(HEADER + ROWS)
    gen = tmp_path / "generated"
    gen.mkdir()
    rec = _record("nb_a")
    if printed is None:
        printed = "\n".join(reading_line(rd) for c in rec.checks for rd in c.readings)
    (gen / "nb_a.ipynb").write_text(json.dumps(_notebook(rec, printed)))
    return tmp_path


def test_render_from_records(tmp_path: Path):
    book = _book(tmp_path)
    text = write_status_page(book).read_text()
    assert "profile **paper**" in text
    assert (
        "- **Claims of the paper (Li et al., ICLR 2025)** (1): calibrated setting: 1 "
        "reproduced; "
        "recalled setting: 1 not reproduced." in text
    )
    assert (
        "Claims of the Expert Gate paper (Aljundi et al., CVPR 2017)** (1): own "
        "parameters: 1 pending" in text
    )
    assert (
        "| [1](status-1) | Claim A with \\|M_n\\| | **reproduced** | **not "
        "reproduced** | — | [Chapter A](generated/nb_a.ipynb) |"
    ) in text
    assert (
        "| [2](status-2) | Claim B | **pending** | **pending** | **pending** |" in text
    )
    glance = (book / "generated" / "_glance.md").read_text()
    assert ":link: generated/nb_a" in glance
    assert "calibrated: **reproduced**; recalled: **not reproduced**" in glance
    assert (book / "generated" / "_downloads.md").is_file()
    assert (
        "  - G_T(never)/G_T(gap) >= 1.25: 1.41 ± 0.05 ≥ 1.25 (margin +3.2 s.e.) → holds"
        in text
    )
    assert "- **Rule:** ratio >= 1.25 by 2 s.e." in text
    assert "A reading **holds** when" in text and "2 standard errors" in text
    assert unmatched_numbers(book) == []


def test_unmatched_numbers_catch_a_number_the_chapter_did_not_print(tmp_path: Path):
    book = _book(
        tmp_path,
        printed="ratio 1.40 ± 0.05 ≥ 1.25 (margin +3.2 s.e.); 1.00 ± 0.05 margin -5.0",
    )
    missing = unmatched_numbers(book)
    assert missing == ["p2 [calibrated]: 1.41"]


def test_bad_rows_are_named(tmp_path: Path):
    p = tmp_path / "reproduction_status.csv"
    p.write_text(HEADER + "a,press,c,s,n,r\n")
    with pytest.raises(ValueError, match=":2: kind 'press'"):
        load_status(p)
    p.write_text(HEADER + "a,paper,c,s\n")
    with pytest.raises(ValueError, match=":2: expected 6 fields"):
        load_status(p)
    p.write_text(HEADER + "a,paper,c,s,n,r\na,paper,c,s,n,r\n")
    with pytest.raises(ValueError, match=":3: duplicate id 'a'"):
        load_status(p)


def test_repository_csv_renders_every_claim(tmp_path: Path):
    book = Path(__file__).resolve().parents[1] / "book"
    rows = load_status(book / "reproduction_status.csv")
    text = render_status(rows, {})
    assert text.count("### ") == len(rows)


def test_settings_table_comes_from_the_code():
    from moecl_lib.analysis.calibration import CALIBRATED, RECALLED

    table = render_settings_table()
    row = next(
        line for line in table.splitlines() if line.startswith("| `signal_scale`")
    )
    recalled, calibrated = RECALLED["signal_scale"], CALIBRATED["signal_scale"]
    assert row == f"| `signal_scale` | `1.0` | `{recalled}` | `{calibrated}` |"
    assert "$30\\,M$" in table


def test_build_info_lists_every_chapter(tmp_path: Path):
    from moecl_lib.tools.status import render_build_info

    rec = _record("nb_a")
    rec.wall_time_s = 12.34
    text = render_build_info(
        {"nb_a": rec}, {"nb_a": "Chapter A"}, {"nb_a": "paper"}, "abc123"
    )
    assert "- **Commit:** `abc123`" in text
    assert "| [Chapter A](generated/nb_a.ipynb) | paper | 12.3 |" in text
    assert "| **total** | | **12.3** | | |" in text
    assert "| [Chapter A](generated/nb_a.ipynb) | paper | 12.3 |" in text
    assert text.count("| run |") == 1 and "Reused" not in text
    again = render_build_info(
        {"nb_a": rec},
        {"nb_a": "Chapter A"},
        {"nb_a": "paper"},
        "abc123",
        {"nb_a": {"executed": "2026-01-01T00:00+00:00", "seconds": 12.3}},
    )
    assert "| reused |" in again and "*Reused*: 1 of 1 chapters" in again
    assert f"**CPU:** {rec.machine['cpu']}" in text
