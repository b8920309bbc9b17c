"""Which code produced a result: SHA-256 digests of the library's source files.

* :func:`library_digest` (every source file but the tooling) keys the chapter cache of
  ``make book`` (:mod:`moecl_lib.tools.notebook_cache`);
* :func:`compute_digest` (the computing packages only: neither the chapters'
  presentation, ``claims/`` and ``figures/``, nor the tooling) is stored with every
  cell of a grid (:mod:`moecl_lib.sweep.store`), so that a rerun recomputes the cells
  that other code produced instead of reusing them.

Bottom layer: imports nothing of ``moecl_lib``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of the imported ``moecl_lib``."""

TOOLING: tuple[str, ...] = ("tools",)
"""Sub-packages that only run, collect and render results."""

PRESENTATION: tuple[str, ...] = ("claims", "figures")
"""Sub-packages that judge and draw results but compute none of a grid's cells."""

_SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
_SKIPPED_SUFFIXES = {".pyc", ".nbi", ".nbc"}


def tree_files(folder: Path) -> list[Path]:
    """Files under ``folder``, sorted, without bytecode and compiled-kernel caches."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not _SKIPPED_PARTS.intersection(p.parts)
        and p.suffix not in _SKIPPED_SUFFIXES
    )


def files_digest(root: Path, paths: Iterable[Path]) -> str:
    """SHA-256 over (path relative to ``root``, content) of each file."""
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def source_files(package: Path, excluded: Iterable[str] = ()) -> list[Path]:
    """Source files of the package folder ``package`` outside its sub-packages
    ``excluded``."""
    skip = [package / name for name in excluded]
    return [
        p
        for p in tree_files(package)
        if not any(s == p.parent or s in p.parents for s in skip)
    ]


def library_digest(package: Path = PACKAGE_DIR) -> str:
    """Digest of every source file of the library except the tooling."""
    return files_digest(package.parent, source_files(package, TOOLING))


@functools.cache
def compute_digest(package: Path = PACKAGE_DIR) -> str:
    """Digest of the packages that compute results (the library without the tooling,
    the chapters' presentation and the figures); computed once per process."""
    return files_digest(package.parent, source_files(package, TOOLING + PRESENTATION))
