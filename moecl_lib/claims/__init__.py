"""Claims as data: each chapter's computation, its recorded quantities and its claim
checks.

``rule`` holds the two written rules (verdict from readings with a ``MARGIN`` of
standard errors; tolerance of a re-computed number); ``record`` the chapter record, its
publication into the executed notebook and the comparison with ``notebooks/expected/``.
One module per chapter (named after its notebook) exposes ``Params`` (defaults = the
quick profile), ``run(params) -> Result`` and ``Result.record``; a large chapter keeps
parts in ``<chapter>_*`` modules below it (its runs or sections and ``Result``; its
figures, tables and sentences in ``*_report`` / ``*_figures``), which it re-exports.
Shared by several chapters: ``estimators`` (estimators and readings), ``curve_stats``
(statistics of mean curves), ``prop_settings`` (Propositions 2 and 3),
``moe_theorems`` (Theorems 1 and 2) and ``dnn_common`` (the deep-network chapters).

May import: every science module of ``moecl_lib``; nothing imports ``claims`` except
notebooks, tests and the book tooling (status page).
"""

from moecl_lib.claims.record import Record, compare, publish
from moecl_lib.claims.rule import (
    ClaimCheck,
    Quantity,
    Reading,
    estimate,
    fmt_number,
    verdict_of,
)

__all__ = [
    "ClaimCheck",
    "Quantity",
    "Reading",
    "Record",
    "compare",
    "estimate",
    "fmt_number",
    "publish",
    "verdict_of",
]
