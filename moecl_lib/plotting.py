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

# Okabe & Ito (2008) colour-blind-safe palette: the default colour cycle of every figure.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
# One colour per number of experts M, the same in every chapter (M = 1, the single expert, is black).
M_COLORS = {
    1: "#000000",
    2: "#56B4E9",
    3: "#CC79A7",
    4: "#0072B2",
    5: "#009E73",
    6: "#E69F00",
    8: "#D55E00",
    9: "#009E73",
    10: "#0072B2",
    12: "#CC79A7",
    18: "#56B4E9",
    20: "#D55E00",
    24: "#D55E00",
    40: "#E69F00",
}
# One colour per router, the same in every chapter.
ROUTER_COLORS = {
    "paper router (gap)": "#0072B2",
    "paper router (never)": "#56B4E9",
    "Expert Gate (c=0)": "#D55E00",
    "Expert Gate (c=1)": "#E69F00",
    "Expert Gate": "#D55E00",
    "oracle router": "#009E73",
    "single expert": "#000000",
    "single network": "#000000",
}


def m_color(M: int) -> str:
    """The colour of ``M`` experts (:data:`M_COLORS`; grey for an M not listed)."""
    return M_COLORS.get(int(M), "#888888")


STYLE = {
    "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
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
    "legend.fontsize": 9,
}
COLUMN_IN = 7.0
"""Width (inches at ``figure.dpi``) of the book's content column at a 1400-px window."""
MIN_DISPLAY_PT = 9.0


def apply_style() -> None:
    """Apply the companion's matplotlib style (idempotent)."""
    mpl.rcParams.update(STYLE)


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.png`` and ``out_dir/name.pdf``; returns the two paths."""
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
