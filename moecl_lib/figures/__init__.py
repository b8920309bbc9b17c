"""Presentation of results: figure style, figure and CSV files, text tables.

Owns the matplotlib style and bands (``style``), writing figures and CSV columns
(``io``) and the one text-table printer (``tables``). The names most chapters use are
re-exported here (``from moecl_lib import figures``).

May import: nothing of ``moecl_lib`` (numpy and matplotlib only).
"""

from moecl_lib.figures.io import legible, save_csv, save_figure
from moecl_lib.figures.style import (
    M_COLORS,
    OKABE_ITO,
    OUTCOME_COLORS,
    ROUTER_COLORS,
    apply_style,
    band,
    m_color,
)
from moecl_lib.figures.tables import table, text_table

__all__ = [
    "M_COLORS",
    "OKABE_ITO",
    "OUTCOME_COLORS",
    "ROUTER_COLORS",
    "apply_style",
    "band",
    "legible",
    "m_color",
    "save_csv",
    "save_figure",
    "table",
    "text_table",
]
