"""Consistency of the book sources: toc entries exist, the status CSV keeps its schema
and verdict vocabulary, and the configuration loads nothing from a CDN."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from moecl_lib.tools.book_build import toc_files

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def test_toc_entries_exist():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "intro"
    for entry in toc_files(toc):
        if entry.startswith("generated/"):
            stem = entry.removeprefix("generated/")
            assert (ROOT / "notebooks" / f"{stem}.ipynb").is_file(), (
                f"toc lists {entry} but notebooks/{stem}.ipynb is missing"
            )
        else:
            assert any(
                (BOOK / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb", "")
            ), f"toc entry {entry} missing"


def test_reproduction_status_schema():
    """The CSV holds claim text, source, chapter and rule only: no verdict, no evidence
    numbers."""
    with open(BOOK / "reproduction_status.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "kind", "claim", "source", "chapter", "rule"]
    assert len(rows) > 1
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for i, row in enumerate(rows[1:], start=2):
        assert len(row) == 6, (
            f"reproduction_status.csv line {i}: {len(row)} fields, expected 6 (quote "
            "commas)"
        )
        claim_id, kind, claim, _source, chapter, rule = row
        assert claim_id.isidentifier(), (
            f"line {i}: id {claim_id!r} is not an identifier"
        )
        assert kind in {"paper", "baseline", "companion"}, f"line {i}: kind {kind!r}"
        assert claim.strip() and rule.strip(), f"line {i}: empty claim or rule"
        assert chapter in notebooks, f"line {i}: chapter {chapter!r} does not exist"


def test_config_has_no_cdn_and_no_execution():
    cfg_text = (BOOK / "_config.yml").read_text()
    cfg = yaml.safe_load(cfg_text)
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    sphinx = cfg["sphinx"]["config"]
    assert "://" not in str(sphinx["mathjax_path"])
    assert "sphinx_thebe" not in sphinx["extensions"], (
        "thebe embeds a CDN URL in every page"
    )
    assert sphinx["nb_ipywidgets_js"] == {}, (
        "myst-nb would load require.js and the widget manager from a CDN"
    )
    assert "http" not in "".join(line.split("#")[0] for line in cfg_text.splitlines())
