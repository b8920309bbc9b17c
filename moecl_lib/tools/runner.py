"""Execute the companion notebooks with papermill under a named profile.

Profiles
--------
* ``quick``: the ``parameters`` cell exactly as stored in the notebook (fast; what CI
  and nbval use).
* ``paper`` (or any other name used in ``notebooks/profiles.yml``): the stored
  parameters overridden by the mapping ``<stem>: {<profile>: {name: value, ...}}`` of
  ``notebooks/profiles.yml``. A notebook without an entry runs with its stored
  parameters.

Every notebook runs with kernel ``python3`` and working directory = repository root, so
``results/...`` paths resolve there. Output goes to ``book/generated/<stem>.ipynb``
(default), another folder, or back into ``notebooks/<stem>.ipynb`` (``inplace``; used to
refresh the committed quick-profile outputs).

The pure helpers (profile loading and merging, stem selection, parameter-cell
inspection, error formatting) do not import papermill and are unit-tested in
``tests/test_runner.py``.
"""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from moecl_lib.figures.tables import text_table
from moecl_lib.paths import RunnerError

QUICK = "quick"
"""The profile that runs the stored parameters cell unchanged."""

DEFAULT_PROFILES: tuple[str, ...] = (QUICK, "paper")
"""Profiles always accepted on the command line (others are accepted when profiles.yml
uses them)."""

KERNEL_NAME = "python3"
PROFILES_FILE = Path("notebooks") / "profiles.yml"
GENERATED_DIR = Path("book") / "generated"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")


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


def _cell_source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def read_notebook_json(path: Path) -> dict[str, Any]:
    """Load a notebook as plain JSON (no nbformat import needed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"{path}: cannot read notebook: {exc}") from None


def parameter_names(nb: Mapping[str, Any]) -> list[str] | None:
    """Names assigned at top level of the first cell tagged ``parameters`` (``None`` if
    there is no such cell)."""
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", []) or []
        if "parameters" in tags:
            src = _cell_source(cell)
            try:
                tree = ast.parse(src)
            except SyntaxError as exc:
                raise RunnerError(f"parameters cell does not parse: {exc}") from None
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
# failures
# --------------------------------------------------------------------------------------


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
        if cell.get("cell_type") == "code" and _cell_source(cell) == failing_source:
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


# --------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------


@dataclass
class NotebookResult:
    """Outcome of one notebook run."""

    stem: str
    profile: str
    parameters: dict[str, Any]
    output: Path
    seconds: float
    ok: bool
    message: str = ""


def format_value(v: Any) -> str:
    """Compact rendering of a parameter value for logs."""
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def summary_table(
    results: Sequence[NotebookResult], elapsed: float | None = None, jobs: int = 1
) -> str:
    """Plain-text summary: notebook, profile, status, wall time, total (sum of the
    notebooks' times); with ``elapsed`` and ``jobs > 1`` also the elapsed time of the
    parallel run."""
    rows = [
        [r.stem, r.profile, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}"]
        for r in results
    ]
    n_bad = sum(not r.ok for r in results)
    total = sum(r.seconds for r in results)
    footer = [(f"total ({len(results)} run, {n_bad} failed)", f"{total:.1f}")]
    if elapsed is not None and jobs > 1:
        footer.append((f"elapsed ({jobs} at once)", f"{elapsed:.1f}"))
    head = ["notebook", "profile", "status", "wall [s]"]
    return text_table(head, rows, align="<<<>", rule=True, footer=footer)


def _strip_volatile_metadata(path: Path) -> None:
    """Drop papermill's per-run timestamps/durations so that an in-place refresh gives
    small git diffs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    pm = nb.get("metadata", {}).get("papermill")
    if isinstance(pm, dict):
        for key in (
            "start_time",
            "end_time",
            "duration",
            "input_path",
            "output_path",
            "environment_variables",
        ):
            pm.pop(key, None)
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    path.write_text(
        json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def execute_one(
    stem: str,
    src: Path,
    output: Path,
    parameters: Mapping[str, Any],
    root: Path,
    *,
    inplace: bool = False,
    timeout: int | None = None,
) -> tuple[bool, str]:
    """Run one notebook with papermill (kernel python3, cwd=root). Returns (ok, failure
    message)."""
    import papermill as pm  # slow import: only when executing

    input_nb = read_notebook_json(src)
    target = output
    tmp_dir: Path | None = None
    if inplace:
        # run into a temporary file and replace the stored notebook only on success
        tmp_dir = Path(tempfile.mkdtemp(prefix=f"moecl-{stem}-"))
        target = tmp_dir / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs["execution_timeout"] = timeout
    try:
        pm.execute_notebook(
            str(src),
            str(target),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            cwd=str(root),
            progress_bar=False,
            log_output=False,
            **kwargs,
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not re-raised
        failure = failure_from_exception(exc, input_nb)
        return False, format_failure(stem, failure, target if target.exists() else None)
    if inplace:
        _strip_volatile_metadata(target)
        shutil.move(str(target), str(output))
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return True, ""


def _timed_execute(
    stem: str,
    src: Path,
    output: Path,
    parameters: Mapping[str, Any],
    root: Path,
    inplace: bool,
    timeout: int | None,
) -> tuple[bool, str, float]:
    """:func:`execute_one` plus its wall time (for the parallel runner)."""
    t0 = time.perf_counter()
    ok, message = execute_one(
        stem, src, output, parameters, root, inplace=inplace, timeout=timeout
    )
    return ok, message, time.perf_counter() - t0


PROFILE_METADATA_KEY = "moecl"
"""Notebook-level metadata key where the runner records the profile of a generated
notebook."""


def record_profile(path: Path, profile: str, parameters: Mapping[str, Any]) -> None:
    """Store ``{"profile": ..., "overrides": ...}`` under ``metadata.moecl`` of an
    executed notebook, so that ``moecl book`` can say which profile produced each
    chapter."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {})[PROFILE_METADATA_KEY] = {
        "profile": profile,
        "overrides": dict(parameters),
    }
    label_injected_parameters(nb, profile)
    path.write_text(
        json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def label_injected_parameters(nb: dict[str, Any], profile: str) -> None:
    """Collapse papermill's injected-parameters cell and say in its first line what it
    is."""
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags:
            if "hide-cell" not in tags:
                tags.append("hide-cell")
            src = "".join(cell.get("source", ""))
            first = (
                f"# Values of the {profile} profile (they replace the defaults above)"
            )
            src = re.sub(r"\A# Parameters\n", first + "\n", src)
            cell["source"] = src


def generated_profiles(root: Path) -> dict[str, str]:
    """stem -> profile recorded in each ``book/generated/*.ipynb`` (``"?"`` when not
    recorded)."""
    out: dict[str, str] = {}
    gen = root / GENERATED_DIR
    for path in sorted(gen.glob("*.ipynb")) if gen.is_dir() else []:
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, json.JSONDecodeError):
            meta = {}
        out[path.stem] = str(meta.get(PROFILE_METADATA_KEY, {}).get("profile", "?"))
    return out


def run_notebooks(
    root: Path,
    profile: str,
    only: Sequence[str] | None = None,
    *,
    inplace: bool = False,
    out_dir: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    fail_fast: bool = False,
    timeout: int | None = None,
    stream: TextIO | None = None,
    jobs: int = 1,
) -> list[NotebookResult]:
    """Execute the selected notebooks under ``profile``; print progress and a summary to
    ``stream``.

    ``jobs > 1`` runs that many notebooks at once (one kernel process each). Raises
    ``RunnerError`` for bad input (unknown stem/profile/parameter, ``jobs < 1``) before
    anything runs.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise RunnerError(f"jobs={jobs!r} must be an integer >= 1")
    stream = stream or sys.stdout
    if inplace and out_dir is not None:
        raise RunnerError("--inplace and --out are mutually exclusive")
    notebooks = discover_notebooks(root / "notebooks")
    profiles = load_profiles(root / PROFILES_FILE)
    check_profile(profile, profiles)
    stems = select_stems(list(notebooks), only)
    for stale in stale_profile_entries(profiles, notebooks):
        print(
            f"warning: {PROFILES_FILE} has an entry '{stale}' but there is no "
            f"notebooks/{stale}.ipynb",
            file=stream,
        )

    plan: list[tuple[str, dict[str, Any], Path]] = []
    for stem in stems:
        params = resolve_parameters(stem, profile, profiles, extra)
        check_overrides(
            stem, params, parameter_names(read_notebook_json(notebooks[stem]))
        )
        if inplace:
            output = notebooks[stem]
        else:
            base = out_dir if out_dir is not None else root / GENERATED_DIR
            output = (base if base.is_absolute() else root / base) / f"{stem}.ipynb"
        plan.append((stem, params, output))

    dest = "in place" if inplace else str(out_dir or GENERATED_DIR)
    print(
        f"moecl notebooks: profile={profile}, {len(plan)} notebook(s), output -> "
        f"{dest}",
        file=stream,
        flush=True,
    )
    results: list[NotebookResult] = []
    t_start = time.perf_counter()
    env_backup = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = (
        "1"  # silence debugpy's frozen-modules warning in kernels
    )

    def shown(params: Mapping[str, Any]) -> str:
        return (
            ", ".join(f"{k}={format_value(v)}" for k, v in params.items())
            or "stored parameters"
        )

    def finish(
        i: int,
        stem: str,
        params: dict[str, Any],
        output: Path,
        ok: bool,
        message: str,
        dt: float,
    ) -> bool:
        """Record one result and print it; returns True when the run should stop
        (fail-fast)."""
        results.append(NotebookResult(stem, profile, params, output, dt, ok, message))
        if ok and not inplace:
            record_profile(output, profile, params)
        if ok:
            print(
                f"    ok  {dt:.1f} s -> {_rel(output, root)}"
                + (f"  [{i}/{len(plan)}] {stem}" if jobs > 1 else ""),
                file=stream,
                flush=True,
            )
            return False
        print(
            f"    {message.replace(chr(10), chr(10) + '    ')}", file=stream, flush=True
        )
        return fail_fast

    try:
        if jobs <= 1:
            for i, (stem, params, output) in enumerate(plan, 1):
                print(
                    f"[{i}/{len(plan)}] {stem} ({shown(params)}) ...",
                    file=stream,
                    flush=True,
                )
                t0 = time.perf_counter()
                ok, message = execute_one(
                    stem,
                    notebooks[stem],
                    output,
                    params,
                    root,
                    inplace=inplace,
                    timeout=timeout,
                )
                if finish(
                    i, stem, params, output, ok, message, time.perf_counter() - t0
                ):
                    break
        else:
            # independent notebooks in parallel kernels: each keeps its own seeds and
            # single-threaded torch, so the outputs are those of a sequential run; only
            # the order of the progress lines differs. One process per notebook run:
            # papermill changes the working directory of its process, which threads
            # would share.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
                futures = {}
                for i, (stem, params, output) in enumerate(plan, 1):
                    print(
                        f"[{i}/{len(plan)}] {stem} ({shown(params)}) queued",
                        file=stream,
                        flush=True,
                    )
                    futures[
                        pool.submit(
                            _timed_execute,
                            stem,
                            notebooks[stem],
                            output,
                            params,
                            root,
                            inplace,
                            timeout,
                        )
                    ] = (i, stem, params, output)
                for fut in as_completed(futures):
                    i, stem, params, output = futures[fut]
                    ok, message, dt = fut.result()
                    if finish(i, stem, params, output, ok, message, dt):
                        for other in futures:
                            other.cancel()
                        break
            order = {stem: k for k, (stem, _, _) in enumerate(plan)}
            results.sort(key=lambda r: order[r.stem])
    finally:
        if env_backup is None:
            os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
        else:
            os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = env_backup
    print(
        "\n" + summary_table(results, time.perf_counter() - t_start, jobs),
        file=stream,
        flush=True,
    )
    failed = [r for r in results if not r.ok]
    if failed:
        print("\n" + "\n".join(r.message for r in failed), file=stream, flush=True)
    return results


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def parse_cli_value(text: str) -> Any:
    """Parse a ``-p name value`` value like YAML does (``2000`` -> int, ``0.5`` ->
    float, ``true`` -> bool, ``[1, 2]`` -> list); anything unparsable stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# --------------------------------------------------------------------------------------
# book
# --------------------------------------------------------------------------------------

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
