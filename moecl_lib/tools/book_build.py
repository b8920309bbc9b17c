"""Inputs and command of the book build (``moecl book``): the executed notebooks under
``book/generated/`` that ``book/_toc.yml`` names, the locally served MathJax, and the
jupyter-book command line."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from moecl_lib.paths import RunnerError

GENERATED_DIR = Path("book") / "generated"
"""Where the runner writes the executed notebooks the book renders."""
BOOK_DIR = Path("book")
MATHJAX_FILE = BOOK_DIR / "_vendor" / "mathjax" / "tex-svg-full.js"
"""Locally served MathJax 3 (TeX input with every extension, SVG output), git-ignored,
copied by ``make setup``. It is not under ``book/_static``: jupyter-book adds every
``*.js`` found there to every page, which would load MathJax twice (a console error) on
every page; ``_vendor`` is listed in ``html_static_path`` instead."""
MATHJAX_NPM = Path("node_modules") / "mathjax" / "es5" / "tex-svg-full.js"


def toc_files(toc: Any) -> list[str]:
    """All ``file:`` entries of a parsed ``_toc.yml`` (any nesting of
    parts/chapters/sections)."""
    found: list[str] = []
    if isinstance(toc, dict):
        f = toc.get("file")
        if isinstance(f, str):
            found.append(f)
        root = toc.get("root")
        if isinstance(root, str):
            found.append(root)
        for key, val in toc.items():
            if key not in ("file", "root"):
                found.extend(toc_files(val))
    elif isinstance(toc, list):
        for item in toc:
            found.extend(toc_files(item))
    return found


def missing_generated(root: Path) -> list[str]:
    """``generated/...`` pages named in ``book/_toc.yml`` whose notebook has not been
    produced yet."""
    toc_path = root / BOOK_DIR / "_toc.yml"
    if not toc_path.is_file():
        raise RunnerError(f"{toc_path} does not exist")
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    missing = []
    for entry in toc_files(toc):
        if entry.startswith("generated/"):
            stem = entry[len("generated/") :]
            stem = stem[: -len(".ipynb")] if stem.endswith(".ipynb") else stem
            if not (root / GENERATED_DIR / f"{stem}.ipynb").is_file():
                missing.append(stem)
    return missing


def ensure_mathjax(root: Path) -> Path:
    """Make sure the locally served MathJax exists (copy it from node_modules if
    needed)."""
    dst = root / MATHJAX_FILE
    if dst.is_file():
        return dst
    src = root / MATHJAX_NPM
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        return dst
    raise RunnerError(
        f"{MATHJAX_FILE} is missing (the book serves MathJax locally, never from a "
        "CDN); run `make setup` (npm ci + copy) first"
    )


def book_command(root: Path, extra: Sequence[str] = ()) -> list[str]:
    """The jupyter-book command line: warnings are errors, nitpicky, keep going to list
    every problem."""
    exe = Path(sys.executable).parent / "jupyter-book"
    jb = str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")
    return [jb, "build", "-W", "-n", "--keep-going", *extra, str(root / BOOK_DIR)]


def check_book_inputs(root: Path) -> None:
    """Fail early, with the fix, when book/generated is absent or incomplete or MathJax
    is missing."""
    gen = root / GENERATED_DIR
    if not gen.is_dir():
        raise RunnerError(
            f"{GENERATED_DIR}/ does not exist; execute the notebooks first: `moecl "
            "notebooks --profile paper` (or `make book`, which does both)"
        )
    missing = missing_generated(root)
    no_source = [
        m for m in missing if not (root / "notebooks" / f"{m}.ipynb").is_file()
    ]
    if no_source:
        raise RunnerError(
            f"book/_toc.yml lists generated/{no_source[0]} but "
            f"notebooks/{no_source[0]}.ipynb does not exist (add the notebook or "
            "remove the toc entry)"
        )
    if missing:
        raise RunnerError(
            f"{GENERATED_DIR}/ lacks {', '.join(m + '.ipynb' for m in missing)} "
            "(listed in book/_toc.yml); run `moecl notebooks --profile paper --only "
            f"{' '.join(missing)}`"
        )
    ensure_mathjax(root)
