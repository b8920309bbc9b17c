"""Check that two sets of executed chapter notebooks hold bit-identical records.

Usage::

    python scripts/records_identical.py BEFORE_DIR AFTER_DIR

Each folder holds executed notebooks (``moecl notebooks --out DIR``). For every chapter,
the glued records are compared exactly: every quantity (value, standard error, n, kind,
floor, label, compared by ``repr``), every claim check (verdict and readings), the
parameters, configurations and seeds. Wall time, machine and creation time are
ignored. Exit status 0 when all records are identical, 1 otherwise (the differences
are printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from moecl_lib.claims.record import records_from_notebooks

VOLATILE = ("wall_time_s", "machine", "created")
"""Record fields that depend on the run, not on the numbers."""


def _differences(a: Any, b: Any, where: str) -> list[str]:
    """Paths where ``a`` and ``b`` differ; floats by ``repr`` (bit for bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: present on one side only")
            else:
                out += _differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f"{where}[{i}]")
        return out
    if type(a) is not type(b) or repr(a) != repr(b):
        return [f"{where}: {a!r} != {b!r}"]
    return []


def compare_folders(before: Path, after: Path) -> list[str]:
    """All differences between the records of the notebooks in two folders."""
    old = records_from_notebooks(sorted(before.glob("*.ipynb")))
    new = records_from_notebooks(sorted(after.glob("*.ipynb")))
    problems = [f"{c}: record missing after" for c in sorted(set(old) - set(new))]
    problems += [f"{c}: record missing before" for c in sorted(set(new) - set(old))]
    for chapter in sorted(set(old) & set(new)):
        a, b = old[chapter].to_dict(), new[chapter].to_dict()
        for key in VOLATILE:
            a.pop(key, None)
            b.pop(key, None)
        problems += _differences(a, b, chapter)
    if not old:
        problems.append(f"no record found in {before}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Compare the records of two folders of executed notebooks; 0 when identical."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args(argv)
    problems = compare_folders(args.before, args.after)
    n = len(records_from_notebooks(sorted(args.before.glob("*.ipynb"))))
    for line in problems:
        print(line)
    print(
        f"{n} record(s) compared: "
        + ("bit-identical" if not problems else f"{len(problems)} difference(s)")
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
