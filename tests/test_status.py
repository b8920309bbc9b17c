"""The reproduction-status page renderer (moecl_lib.status)."""

from pathlib import Path

import pytest

from moecl_lib.status import load_status, render_status, write_status_page

HEADER = "claim,source,notebook,verdict,evidence,setting\n"


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "reproduction_status.csv"
    p.write_text(HEADER + body)
    return p


def test_render_summary_table_and_details(tmp_path):
    p = _write(tmp_path, 'Claim A with |M_n|,"src, [V]",nb_a,reproduced,"G_T = 0.1 vs 3.2",calibrated\n'
                         "Claim B,src,(planned),pending,,\n")
    text = render_status(load_status(p))
    assert text.startswith("2 claims: **1** reproduced, **1** pending.")
    assert "| [1](status-1) | Claim A with \\|M_n\\| | **reproduced** | [nb_a](generated/nb_a.ipynb) |" in text
    assert "| [2](status-2) | Claim B | **pending** | (planned) |" in text
    assert "(status-1)=\n### 1. Claim A with |M_n|" in text
    assert "- **Evidence:** G_T = 0.1 vs 3.2" in text and "- **Setting:** -" in text


def test_bad_rows_are_named(tmp_path):
    with pytest.raises(ValueError, match=":2: verdict 'great'"):
        load_status(_write(tmp_path, "c,s,n,great,e,x\n"))
    with pytest.raises(ValueError, match=":2: expected 6 fields"):
        load_status(_write(tmp_path, "c,s,n,partly\n"))


def test_repository_csv_renders(tmp_path):
    book = Path(__file__).resolve().parents[1] / "book"
    (tmp_path / "reproduction_status.csv").write_text((book / "reproduction_status.csv").read_text())
    out = write_status_page(tmp_path)
    assert out.read_text().count("### ") == len(load_status(book / "reproduction_status.csv"))
