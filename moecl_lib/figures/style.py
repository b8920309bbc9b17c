"""Figure style: the companion's matplotlib settings and shaded mean +- se bands."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from numpy.typing import ArrayLike

# Okabe & Ito (2008) colour-blind-safe palette: the default colour cycle of every
# figure.
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
# One colour per number of experts M, the same in every chapter (M = 1, the single
# expert, is black).
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

# One colour per outcome of a claim check (holds / fails / inconclusive), the same in
# every chapter.
OUTCOME_COLORS = {
    "holds": "#009E73",  # bluish green
    "fails": "#D55E00",  # vermillion
    "inconclusive": "#F0E442",  # yellow
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
