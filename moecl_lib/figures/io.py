"""Figure and data files: every figure is saved as PNG and PDF, its data as CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.png`` and ``out_dir/name.pdf``; returns the two paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    return paths


def save_csv(out_dir: str | Path, name: str, columns: Mapping[str, ArrayLike]) -> Path:
    """Write equal-length 1-D columns to ``out_dir/name.csv`` (header = column names)."""
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
