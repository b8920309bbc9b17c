"""Where the repository is: the root folder the notebooks, book and lock live in.

Bottom layer (imports nothing of ``moecl_lib``), so that the chapter records
(:mod:`moecl_lib.claims.record`) and the tooling (:mod:`moecl_lib.tools.runner`) find
the same root.
"""

from __future__ import annotations

from pathlib import Path

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Folder of the Debian package ``dataset-fashion-mnist`` (read by
:mod:`moecl_lib.deep.datasets`; part of the chapter cache key)."""


class RunnerError(Exception):
    """A user-facing error of the notebook runner (bad stem, profile, profiles.yml
    entry, no repository root, ...).

    The message is meant to be printed as is, on one or a few lines, without a
    traceback.
    """


def find_repo_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder (from ``start``, default cwd, upwards)
    holding both ``pyproject.toml`` and ``notebooks/``; falls back to the folder that
    contains this package."""
    here = (start or Path.cwd()).resolve()
    for cand in (here, *here.parents):
        if (cand / "pyproject.toml").is_file() and (cand / "notebooks").is_dir():
            return cand
    pkg_parent = Path(__file__).resolve().parents[1]
    if (pkg_parent / "notebooks").is_dir():
        return pkg_parent
    raise RunnerError(
        "cannot find the repository root (a folder with pyproject.toml and "
        f"notebooks/) above {here}; "
        "run moecl from inside the repository or pass --root"
    )
