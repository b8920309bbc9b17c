"""Figure style and output helpers: every figure is saved as PNG and PDF, its data as CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def apply_style() -> None:
    """Apply the companion's matplotlib style (idempotent)."""
    mpl.rcParams.update(STYLE)


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


def band(
    ax: Axes,
    x: ArrayLike,
    mean: ArrayLike,
    se: ArrayLike,
    *,
    label: str,
    color: str | None = None,
    z: float = 1.0,
    **kw: object,
) -> None:
    """Plot ``mean`` with a shaded band ``mean +- z * se``."""
    x, mean, se = np.asarray(x), np.asarray(mean), np.asarray(se)
    (line,) = ax.plot(x, mean, label=label, color=color, **kw)
    ax.fill_between(
        x, mean - z * se, mean + z * se, color=line.get_color(), alpha=0.2, lw=0
    )


def table(rows: Sequence[Mapping[str, object]], digits: int = 3) -> str:
    """Fixed-width text table of dict rows (numbers rounded to ``digits`` decimals) for printing."""
    if not rows:
        return ""
    keys = list(rows[0])

    def f(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}f}"
        return str(v)

    cells = [[f(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
