"""The one text-table printer of the library (notebook tables, runner and benchmark).

Columns are separated by two spaces and right-aligned unless ``align`` says ``"<"``;
an optional dashed rule goes under the header and above the footer lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def text_table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str = "",
    rule: bool = False,
    footer: Sequence[tuple[str, str]] = (),
) -> str:
    """Fixed-width table of string cells.

    ``align`` holds one character per column (``"<"`` left, anything else right; missing
    characters mean right). ``footer`` lines ``(label, value)`` put the label on the
    left and the value right-aligned under the last column, after a rule when ``rule``.
    """
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if align[i : i + 1] == "<" else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )

    lines = [line(head)]
    total = len(lines[0])
    if rule:
        lines.append("-" * total)
    lines += [line(r) for r in rows]
    if footer:
        if rule:
            lines.append("-" * total)
        last = widths[-1]
        for label, value in footer:
            lines.append(f"{label:<{total - last - 2}}  {value:>{last}}")
    return "\n".join(lines)


def table(rows: Sequence[Mapping[str, object]], digits: int = 3) -> str:
    """Text table of dict rows (numbers rounded to ``digits`` decimals) for printing."""
    if not rows:
        return ""
    keys = list(rows[0])

    def f(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}f}"
        return str(v)

    return text_table(keys, [[f(r[k]) for k in keys] for r in rows])
