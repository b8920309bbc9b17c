"""Figure and data files: every figure is saved as PNG and PDF, its data as CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from moecl_lib.figures.style import COLUMN_IN, MIN_DISPLAY_PT


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.png`` and ``out_dir/name.pdf``; returns the two
    paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    legible(fig)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    return paths


def legible(fig: Figure, column_in: float = COLUMN_IN) -> None:
    """Scale every text of ``fig`` so that, shrunk to the book's column, none is below
    :data:`MIN_DISPLAY_PT` points (idempotent: a figure is scaled once)."""
    from matplotlib.text import Text

    if getattr(fig, "_moecl_legible", False):
        return
    fig._moecl_legible = True  # type: ignore[attr-defined]
    width = fig.get_size_inches()[0]
    shrink = min(1.0, column_in / width)
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    if not texts:
        return
    from matplotlib.font_manager import FontProperties

    tick_pt = FontProperties(size=mpl.rcParams["xtick.labelsize"]).get_size_in_points()
    smallest = min([tick_pt] + [t.get_fontsize() for t in texts])
    factor = min(2.2, MIN_DISPLAY_PT / (smallest * shrink))
    if factor <= 1.0:
        return
    for t in texts:
        t.set_fontsize(t.get_fontsize() * factor)
    for ax in fig.axes:
        ax.tick_params(labelsize=tick_pt * factor)
    if fig.get_layout_engine() is None:
        # leave room for a suptitle (tight_layout alone lets it overlap the top titles)
        top = 0.9 if fig._suptitle is not None else 1.0
        fig.tight_layout(rect=(0, 0, 1, top))
    else:
        fig.get_layout_engine().execute(fig)


def save_csv(out_dir: str | Path, name: str, columns: Mapping[str, ArrayLike]) -> Path:
    """Write equal-length 1-D columns to ``out_dir/name.csv`` (header = column
    names)."""
    cols = {k: np.asarray(v).ravel() for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(
            f"columns have different lengths: { {k: len(v) for k, v in cols.items()} }"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(cols))
        for row in zip(*cols.values()):
            writer.writerow([_fmt(x) for x in row])
    return path


def _fmt(x: object) -> object:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.10g}"
    return x
