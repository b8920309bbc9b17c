"""Which notebooks run, under which profile, with which parameters (the inputs of the
notebook runner, :mod:`moecl_lib.tools.runner`).

Profiles
--------
* ``quick``: the ``parameters`` cell exactly as stored in the notebook (fast; what CI
  and nbval use).
* ``paper`` (or any other name used in ``notebooks/profiles.yml``): the stored
  parameters overridden by the mapping ``<stem>: {<profile>: {name: value, ...}}`` of
  ``notebooks/profiles.yml``. A notebook without an entry runs with its stored
  parameters.

Pure helpers (no papermill): profile loading and merging, stem selection and
parameter-cell inspection, unit-tested in ``tests/test_runner.py``. Bad input raises
:class:`moecl_lib.paths.RunnerError` with the fix.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from moecl_lib.paths import RunnerError

QUICK = "quick"
"""The profile that runs the stored parameters cell unchanged."""

DEFAULT_PROFILES: tuple[str, ...] = (QUICK, "paper")
"""Profiles always accepted on the command line (others are accepted when profiles.yml
uses them)."""

PROFILES_FILE = Path("notebooks") / "profiles.yml"


# --------------------------------------------------------------------------------------
# repository layout
# --------------------------------------------------------------------------------------


def discover_notebooks(notebooks_dir: Path) -> dict[str, Path]:
    """Map stem -> path for every ``*.ipynb`` directly in ``notebooks_dir``, sorted by
    stem.

    Checkpoint copies and hidden files are ignored.
    """
    if not notebooks_dir.is_dir():
        raise RunnerError(f"notebook folder {notebooks_dir} does not exist")
    found = sorted(
        p for p in notebooks_dir.glob("*.ipynb") if not p.name.startswith(".")
    )
    return {p.stem: p for p in found}


# --------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------


def parse_profiles(
    text: str, source: str = "profiles.yml"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Parse the YAML text of ``profiles.yml`` into
    ``{stem: {profile: {param: value}}}``.

    An empty file (or one holding only comments) gives ``{}``. A stem entry may be empty
    (``stem:``) and a profile mapping may be empty. Anything else that is not a mapping
    of mappings is a ``RunnerError`` naming the offending key. The ``quick`` profile may
    not be overridden (it *is* the stored cell).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunnerError(
            f"{source}: not valid YAML: {exc}".replace("\n", " ")
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunnerError(
            f"{source}: top level must be a mapping 'notebook stem -> profiles', got "
            f"{type(data).__name__}"
        )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for stem, entry in data.items():
        if not isinstance(stem, str):
            raise RunnerError(f"{source}: notebook stem {stem!r} must be a string")
        if entry is None:
            out[stem] = {}
            continue
        if not isinstance(entry, dict):
            raise RunnerError(
                f"{source}: entry '{stem}' must be a mapping like 'paper: {{n_runs: "
                f"500}}', got {entry!r}"
            )
        profiles: dict[str, dict[str, Any]] = {}
        for prof, overrides in entry.items():
            if not isinstance(prof, str):
                raise RunnerError(
                    f"{source}: '{stem}': profile name {prof!r} must be a string"
                )
            if prof == QUICK:
                raise RunnerError(
                    f"{source}: '{stem}': the '{QUICK}' profile cannot be overridden; "
                    "it is the notebook's stored parameters cell (edit the notebook "
                    "instead)"
                )
            if overrides is None:
                overrides = {}
            if not isinstance(overrides, dict):
                raise RunnerError(
                    f"{source}: '{stem}.{prof}' must be a mapping of parameter -> "
                    f"value, got {overrides!r}"
                )
            for name in overrides:
                if not isinstance(name, str) or not name.isidentifier():
                    raise RunnerError(
                        f"{source}: '{stem}.{prof}': parameter name {name!r} is not a "
                        "Python identifier"
                    )
            profiles[prof] = dict(overrides)
        out[stem] = profiles
    return out


def load_profiles(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Read ``profiles.yml`` (a missing file means: no overrides at all)."""
    if not path.is_file():
        return {}
    return parse_profiles(path.read_text(encoding="utf-8"), source=str(path))


def known_profiles(profiles: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """All profile names accepted: ``quick``, ``paper`` and any profile used in
    profiles.yml."""
    names = list(DEFAULT_PROFILES)
    for entry in profiles.values():
        for prof in entry:
            if prof not in names:
                names.append(prof)
    return names


def check_profile(profile: str, profiles: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``RunnerError`` if ``profile`` is not a known profile name."""
    names = known_profiles(profiles)
    if profile not in names:
        raise RunnerError(
            f"unknown profile '{profile}'; known profiles: {', '.join(names)}"
        )


def resolve_parameters(
    stem: str,
    profile: str,
    profiles: Mapping[str, Mapping[str, Mapping[str, Any]]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Parameters papermill must inject for ``stem`` under ``profile``.

    ``quick`` -> no profile overrides; other profiles -> ``profiles[stem][profile]``
    (empty if absent). ``extra`` (command-line ``-p name value``) is applied last and
    wins.
    """
    check_profile(profile, profiles)
    params: dict[str, Any] = {}
    if profile != QUICK:
        params.update(profiles.get(stem, {}).get(profile, {}) or {})
    if extra:
        params.update(extra)
    return params


# --------------------------------------------------------------------------------------
# notebook inspection
# --------------------------------------------------------------------------------------


def cell_source(cell: Mapping[str, Any]) -> str:
    """Source text of a notebook cell (stored as one string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def read_notebook_json(path: Path) -> dict[str, Any]:
    """Load a notebook as plain JSON (no nbformat import needed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"{path}: cannot read notebook: {exc}") from None


def parameters_tree(nb: Mapping[str, Any]) -> ast.Module | None:
    """The parsed source of the first cell tagged ``parameters`` (``None`` if there is
    no such cell); a ``RunnerError`` when it does not parse."""
    for cell in nb.get("cells", []):
        if "parameters" in (cell.get("metadata", {}).get("tags", []) or []):
            try:
                return ast.parse(cell_source(cell))
            except SyntaxError as exc:
                raise RunnerError(f"parameters cell does not parse: {exc}") from None
    return None


def parameter_names(nb: Mapping[str, Any]) -> list[str] | None:
    """Names assigned at top level of the first cell tagged ``parameters`` (``None`` if
    there is no such cell)."""
    tree = parameters_tree(nb)
    if tree is None:
        return None
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for tgt in targets:
            elts = tgt.elts if isinstance(tgt, (ast.Tuple, ast.List)) else [tgt]
            for e in elts:
                if isinstance(e, ast.Name) and e.id not in names:
                    names.append(e.id)
    return names


def stored_parameter(nb: Mapping[str, Any], name: str) -> Any:
    """Literal value assigned to ``name`` in the notebook's parameters cell (None when
    absent or not a literal)."""
    for node in getattr(parameters_tree(nb), "body", []):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def check_overrides(
    stem: str, params: Mapping[str, Any], allowed: Sequence[str] | None
) -> None:
    """Every override must name a variable of the notebook's parameters cell (catches
    typos in profiles.yml)."""
    if not params:
        return
    if allowed is None:
        raise RunnerError(
            f"{stem}: has no cell tagged 'parameters', so overrides {sorted(params)} "
            "cannot be injected; tag the cell holding the knobs with 'parameters'"
        )
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise RunnerError(
            f"{stem}: unknown parameter(s) {', '.join(unknown)}; the parameters cell "
            f"defines: {', '.join(allowed) or '(nothing)'}"
        )


def select_stems(available: Sequence[str], only: Sequence[str] | None) -> list[str]:
    """Stems to run, in sorted order. ``only`` (if given) must name existing notebooks;
    a ``.ipynb`` suffix or a ``notebooks/`` prefix is tolerated. Duplicates are
    dropped."""
    avail = sorted(available)
    if not only:
        if not avail:
            raise RunnerError("no notebooks found in notebooks/")
        return avail
    wanted: list[str] = []
    for raw in only:
        stem = Path(raw).name
        if stem.endswith(".ipynb"):
            stem = stem[: -len(".ipynb")]
        if stem not in avail:
            hint = ", ".join(avail) if avail else "(none)"
            raise RunnerError(f"unknown notebook '{raw}'; available stems: {hint}")
        if stem not in wanted:
            wanted.append(stem)
    return sorted(wanted)


def stale_profile_entries(
    profiles: Mapping[str, Any], available: Iterable[str]
) -> list[str]:
    """profiles.yml keys that match no notebook (probably a typo or a renamed
    notebook)."""
    avail = set(available)
    return sorted(k for k in profiles if k not in avail)


# --------------------------------------------------------------------------------------
# command-line values
# --------------------------------------------------------------------------------------


def parse_cli_value(text: str) -> Any:
    """Parse a ``-p name value`` value like YAML does (``2000`` -> int, ``0.5`` ->
    float, ``true`` -> bool, ``[1, 2]`` -> list); anything unparsable stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
