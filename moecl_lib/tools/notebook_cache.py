"""Executed chapters kept by their inputs, so that a rebuild re-runs only what changed.

``moecl notebooks --cache use`` (what ``make book`` does) looks up each chapter before
running it. The key is a SHA-256 over everything the executed notebook depends on:

* the notebook's cells (type, source, tags; stored outputs excluded) and the resolved
  parameters of the profile (the profile name too), with what the files and folders
  they name hold (a grid file, a stored ``grid.nc``, a folder of data);
* every file of the library (``moecl_lib/``, bytecode and compiled-kernel caches
  excluded) except the tooling (``moecl_lib/tools/``: no chapter imports it, a test
  checks), of which only the modules that shape an executed notebook count
  (:data:`RUNNER_MODULES`); the grid files (``grids/``), the chapter's stored
  expectation (``notebooks/expected/<stem>.json``), ``pyproject.toml`` and the lock
  files (``lock/``);
* the data files the library reads (name, size and modification time of each file in
  the Fashion-MNIST folder, :data:`moecl_lib.paths.FASHION_MNIST_DIR`);
* the machine: Python, platform, CPU model, CPU flags, core count, package versions and
  the environment variables that select CPU kernels
  (:data:`moecl_lib.claims.record.KERNEL_VARIABLES`).

A hit copies the executed notebook to its output and the chapter's result folder (its
``out_dir`` parameter, ``results/<stem>``) back into the repository, and marks the
notebook's metadata as reused (``metadata.moecl.reused``: when the chapter ran and how
long it took), which the book's build-information page shows. A miss runs the chapter
and stores it. The cache lives outside the repository, in ``$MOECL_CACHE_DIR`` or else
``$XDG_CACHE_HOME/moecl/notebooks`` (``~/.cache/moecl/notebooks``); one entry per
chapter and profile is kept (the newest). ``--cache off`` neither reads nor writes it,
``--cache refresh`` runs every chapter and stores it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moecl_lib.paths import FASHION_MNIST_DIR, RunnerError
from moecl_lib.provenance import files_digest, library_digest, tree_files
from moecl_lib.tools.notebook_profiles import cell_source, stored_parameter

CACHE_MODES: tuple[str, ...] = ("off", "use", "refresh")
"""``off``: run every chapter, store nothing; ``use``: reuse a chapter whose inputs are
unchanged, run and store the others; ``refresh``: run every chapter and store it."""

CACHE_ENV = "MOECL_CACHE_DIR"
"""Environment variable naming the cache folder."""

OUTPUT_PARAMETER = "out_dir"
"""The parameter naming a chapter's result folder."""

REUSED_KEY = "reused"
"""Key under the notebook's ``metadata.moecl`` that marks a chapter taken from the
cache."""

RUNNER_MODULES: tuple[str, ...] = (
    "runner.py",
    "notebook_profiles.py",
    "notebook_cache.py",
)
"""The modules of ``moecl_lib/tools`` that write an executed notebook (part of the key;
the rest of the tooling reads the results and is not)."""


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CACHE_MODES`, else a one-line ``RunnerError``."""
    if mode not in CACHE_MODES:
        raise RunnerError(f"--cache {mode!r} must be one of {', '.join(CACHE_MODES)}")
    return mode


def cache_dir() -> Path:
    """The cache folder: ``$MOECL_CACHE_DIR``, else ``$XDG_CACHE_HOME/moecl/notebooks``,
    else ``~/.cache/moecl/notebooks``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moecl" / "notebooks"


# --------------------------------------------------------------------------------------
# key
# --------------------------------------------------------------------------------------


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def notebook_digest(nb: Mapping[str, Any]) -> str:
    """SHA-256 of the cells that make a chapter (type, source, tags), outputs
    excluded."""
    cells = [
        [
            c.get("cell_type"),
            cell_source(c),
            sorted(c.get("metadata", {}).get("tags", []) or []),
        ]
        for c in nb.get("cells", [])
    ]
    return _hash_text(json.dumps(cells, ensure_ascii=False))


def _data_listing() -> str:
    """Name, size and modification time of each data file the library reads."""
    folder = FASHION_MNIST_DIR
    return "\n".join([str(folder), *_listing(folder)])


def _listing(folder: Path) -> list[str]:
    """Name, size and modification time of each file under ``folder``."""
    return [
        f"{p.relative_to(folder)} {p.stat().st_size} {p.stat().st_mtime_ns}"
        for p in tree_files(folder)
    ]


def _named_paths(root: Path, parameters: Mapping[str, Any]) -> str:
    """What the files and folders that parameters name hold (a grid file, a stored
    ``grid.nc``, a data folder): a file's SHA-256, a folder's :func:`_listing`."""
    rows = []
    top = root.resolve()
    for name, value in sorted(parameters.items()):
        if name == OUTPUT_PARAMETER or not isinstance(value, str) or not value:
            continue  # the result folder is written by the chapter, not read
        path = Path(value) if Path(value).is_absolute() else root / value
        if path.resolve() == top or path.resolve() in top.parents:
            continue  # the repository itself, or a folder above it, is no input
        if path.is_file():
            rows.append(f"{name} {files_digest(path.parent, [path])}")
        elif path.is_dir():
            rows += [f"{name} {row}" for row in _listing(path)]
    return "\n".join(rows)


def machine_digest() -> str:
    """SHA-256 of the machine's identity: :func:`~moecl_lib.claims.record.machine_info`
    (Python, platform, CPU model, cores, package versions, kernel variables) and the CPU
    flags."""
    from moecl_lib.claims.record import cpuinfo_field, machine_info

    flags = cpuinfo_field("flags") or ""
    return _hash_text(json.dumps([machine_info(), flags], sort_keys=True))


@dataclass(frozen=True)
class CacheKey:
    """The key of one chapter run: ``digest`` over ``parts`` (name -> SHA-256)."""

    stem: str
    profile: str
    parts: Mapping[str, str]

    @property
    def digest(self) -> str:
        return _hash_text(json.dumps(dict(self.parts), sort_keys=True))


def shared_parts(root: Path) -> dict[str, str]:
    """The parts of the key that every chapter shares (library, grids, lock, data,
    machine); computed once per runner call."""
    lock_files = [root / "pyproject.toml", *tree_files(root / "lock")]
    tools = root / "moecl_lib" / "tools"
    runner = [tools / name for name in RUNNER_MODULES if (tools / name).is_file()]
    return {
        "library": library_digest(root / "moecl_lib"),
        "runner": files_digest(root, runner),
        "grids": files_digest(root, tree_files(root / "grids")),
        "environment": files_digest(root, [p for p in lock_files if p.is_file()]),
        "data": _hash_text(_data_listing()),
        "machine": machine_digest(),
    }


def chapter_key(
    root: Path,
    stem: str,
    nb: Mapping[str, Any],
    profile: str,
    parameters: Mapping[str, Any],
    shared: Mapping[str, str],
) -> CacheKey:
    """Key of chapter ``stem`` (notebook ``nb``) run under ``profile`` with
    ``parameters``."""
    expected = root / "notebooks" / "expected" / f"{stem}.json"
    parts = dict(shared)
    parts["notebook"] = notebook_digest(nb)
    parts["parameters"] = _hash_text(
        json.dumps([profile, dict(parameters)], sort_keys=True, default=repr)
    )
    parts["expected"] = files_digest(root, [expected] if expected.is_file() else [])
    parts["named_files"] = _hash_text(_named_paths(root, parameters))
    return CacheKey(stem, profile, parts)


# --------------------------------------------------------------------------------------
# result folder
# --------------------------------------------------------------------------------------


def result_folder(
    root: Path, nb: Mapping[str, Any], parameters: Mapping[str, Any]
) -> Path | None:
    """The result folder (``out_dir``) of the chapter notebook ``nb``, or None when it
    has none or it lies outside the repository (such a chapter is never reused)."""
    out = parameters.get(OUTPUT_PARAMETER, stored_parameter(nb, OUTPUT_PARAMETER))
    if not isinstance(out, str) or not out:
        return None
    folder = (root / out).resolve()
    top = root.resolve()
    if folder == top or top not in folder.parents:
        return None
    return folder


# --------------------------------------------------------------------------------------
# entries
# --------------------------------------------------------------------------------------


def _entry_dir(cache: Path, key: CacheKey) -> Path:
    return cache / key.stem / f"{key.profile}-{key.digest[:20]}"


def lookup(cache: Path, key: CacheKey) -> Path | None:
    """The entry of ``key``, or None."""
    entry = _entry_dir(cache, key)
    complete = (entry / "entry.json").is_file() and (entry / "notebook.ipynb").is_file()
    return entry if complete else None


def changed_parts(cache: Path, key: CacheKey) -> list[str]:
    """Names of the key parts that differ from the stored entry of the same chapter and
    profile (empty when there is none, or when it has ``key``)."""
    for entry in sorted((cache / key.stem).glob(f"{key.profile}-*/entry.json")):
        try:
            stored = json.loads(entry.read_text(encoding="utf-8")).get("parts", {})
        except (OSError, json.JSONDecodeError):
            continue
        return [name for name, h in key.parts.items() if stored.get(name) != h]
    return []


def store(
    cache: Path,
    key: CacheKey,
    notebook: Path,
    results: Path | None,
    seconds: float,
) -> Path:
    """Keep the executed ``notebook`` and its ``results`` folder under ``key``; drops
    older entries of the same chapter and profile. Written to a temporary folder first,
    then renamed (a concurrent reader sees a whole entry or none)."""
    final = _entry_dir(cache, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    shutil.copy2(notebook, tmp / "notebook.ipynb")
    if results is not None and results.is_dir():
        shutil.copytree(results, tmp / "results", symlinks=True)
    meta = {
        "stem": key.stem,
        "profile": key.profile,
        "key": key.digest,
        "parts": dict(key.parts),
        "executed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(float(seconds), 1),
    }
    (tmp / "entry.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    for old in final.parent.glob(f"{key.profile}-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(final)
    return final


def restore(entry: Path, output: Path, results: Path | None) -> dict[str, Any]:
    """Copy an entry's notebook to ``output`` (marked as reused) and its result folder
    over ``results``; returns the entry's metadata."""
    meta = json.loads((entry / "entry.json").read_text(encoding="utf-8"))
    nb = json.loads((entry / "notebook.ipynb").read_text(encoding="utf-8"))
    nb.setdefault("metadata", {}).setdefault("moecl", {})[REUSED_KEY] = {
        "executed": meta["executed"],
        "seconds": meta["seconds"],
        "key": meta["key"],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if results is not None:
        if results.exists():
            shutil.rmtree(results)
        if (entry / "results").is_dir():
            shutil.copytree(entry / "results", results, symlinks=True)
    return meta
