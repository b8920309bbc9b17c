"""Reader-facing details of the generated book: papermill's injected cell, key
figures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from moecl_lib.tools.glance import claim_label, key_figure_png
from moecl_lib.tools.runner import label_injected_parameters

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_injected_parameters_cell_is_collapsed_and_explained():
    nb = {
        "cells": [
            {"metadata": {"tags": ["parameters"]}, "source": "# Parameters\nT = 1\n"},
            {
                "metadata": {"tags": ["injected-parameters"]},
                "source": ["# Parameters\n", "T = 2\n"],
            },
        ]
    }
    label_injected_parameters(nb, "paper")
    cell = nb["cells"][1]
    assert "hide-cell" in cell["metadata"]["tags"]
    assert cell["source"].startswith("# Values of the paper profile")
    assert "hide-cell" not in nb["cells"][0]["metadata"]["tags"]


def test_key_figure_png_reads_hidden_glue():
    png = b"\x89PNG\r\n\x1a\nxx"
    out = {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": "fig_a"}},
        "data": {
            "application/papermill.record/image/png": base64.b64encode(png).decode()
        },
    }
    nb = {"cells": [{"cell_type": "code", "outputs": [out]}]}
    assert key_figure_png(nb, "a") == png
    assert key_figure_png(nb, "b") is None


def test_claim_label():
    assert claim_label("Figure 2 (i): the single expert") == "Figure 2 (i)"
    assert claim_label("More experts need more rounds") == "claim"


def test_every_chapter_glues_a_key_figure_and_keeps_its_parameters_cell():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert sum("parameters" in t for t in tags) == 1, path.name
        assert key_figure_png(nb, path.stem) is not None, path.name
        first_md = [c for c in nb["cells"] if c["cell_type"] == "markdown"][:2]
        assert "".join(first_md[0]["source"]).startswith("# "), path.name
        assert "{admonition}" in "".join(first_md[1]["source"]), path.name
