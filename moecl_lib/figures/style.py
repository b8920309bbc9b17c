"""Figure style: the companion's matplotlib settings and shaded mean +- se bands."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
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
