"""The report of a failed notebook cell: which source cell and line failed, the error
without terminal colours, and where the executed notebook lies (used by the notebook
runner, :mod:`moecl_lib.tools.runner`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moecl_lib.tools.notebook_profiles import cell_source

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def first_code_line(source: str) -> str:
    """First non-blank line of a cell's source, stripped and shortened to 100
    characters."""
    for line in source.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 100 else line[:97] + "..."
    return "(empty cell)"


def source_cell_index(
    input_nb: Mapping[str, Any], failing_source: str, fallback: int
) -> int:
    """Index of the failing cell in the *input* notebook (papermill's index counts its
    injected cell)."""
    for i, cell in enumerate(input_nb.get("cells", [])):
        if cell.get("cell_type") == "code" and cell_source(cell) == failing_source:
            return i
    return fallback


@dataclass
class CellFailure:
    """What broke: the input-notebook cell index, its source, and the exception (name +
    one-line message)."""

    cell_index: int | None
    source: str
    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)

    @property
    def line_in_cell(self) -> int | None:
        """Line number inside the failing cell, from the IPython traceback
        (``Cell In[7], line 3``)."""
        hits = _CELL_LINE.findall(strip_ansi("\n".join(self.traceback)))
        return int(hits[-1]) if hits else None


def failure_from_exception(
    exc: BaseException, input_nb: Mapping[str, Any] | None = None
) -> CellFailure:
    """Turn a papermill/nbclient exception (or anything else) into a ``CellFailure``."""
    if all(
        hasattr(exc, a) for a in ("cell_index", "source", "ename", "evalue")
    ):  # PapermillExecutionError
        src = str(exc.source)
        idx = int(exc.cell_index)
        if input_nb is not None:
            idx = source_cell_index(input_nb, src, idx)
        return CellFailure(
            idx,
            src,
            str(exc.ename),
            str(exc.evalue),
            [str(t) for t in (getattr(exc, "traceback", None) or [])],
        )
    msg = strip_ansi(str(exc)).strip().splitlines()
    return CellFailure(None, "", type(exc).__name__, msg[-1] if msg else "", [])


def format_failure(stem: str, failure: CellFailure, output: Path | None = None) -> str:
    """A short, readable failure report (no traceback wall). ``cell N`` is the 0-based
    index of the cell in the *source* notebook, counting markdown cells (papermill's
    injected cell is not counted)::

        FAILED prop4_single_expert: cell 7 `assert abs(g - g_th) < tol` (line 2)
          AssertionError: G_t off by 0.12 > tol 0.05
          full traceback: book/generated/prop4_single_expert.ipynb
    """
    where = (
        "during execution (no cell)"
        if failure.cell_index is None
        else f"cell {failure.cell_index}"
    )
    head = f"FAILED {stem}: {where}"
    if failure.source:
        head += f" `{first_code_line(failure.source)}`"
    line = failure.line_in_cell
    if line is not None:
        head += f" (line {line})"
    evalue = strip_ansi(failure.evalue).strip()
    evalue_lines = evalue.splitlines()
    exc_line = failure.ename + (f": {evalue_lines[0]}" if evalue_lines else "")
    if len(evalue_lines) > 1:
        exc_line += " [...]"
    if len(exc_line) > 300:
        exc_line = exc_line[:297] + "..."
    out = [head, f"  {exc_line}"]
    if output is not None:
        out.append(f"  full traceback: {output}")
    return "\n".join(out)
