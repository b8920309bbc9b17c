"""Execute the companion notebooks with papermill under a named profile.

Every notebook runs with kernel ``python3`` and working directory = repository root, so
``results/...`` paths resolve there. Output goes to ``book/generated/<stem>.ipynb``
(default), another folder, or back into ``notebooks/<stem>.ipynb`` (``inplace``; used to
refresh the committed quick-profile outputs). Each executed notebook records its profile
in its metadata (:func:`record_profile`), which ``moecl book`` reports.

The inputs (profiles, parameters, stems) live in
:mod:`moecl_lib.tools.notebook_profiles`, the failure reports in
:mod:`moecl_lib.tools.cell_failures`, the book build in
:mod:`moecl_lib.tools.book_build`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from moecl_lib.figures.tables import text_table
from moecl_lib.paths import RunnerError
from moecl_lib.tools import notebook_cache
from moecl_lib.tools.book_build import GENERATED_DIR
from moecl_lib.tools.cell_failures import failure_from_exception, format_failure
from moecl_lib.tools.notebook_profiles import (
    PROFILES_FILE,
    check_overrides,
    check_profile,
    discover_notebooks,
    load_profiles,
    parameter_names,
    read_notebook_json,
    resolve_parameters,
    select_stems,
    stale_profile_entries,
)

KERNEL_NAME = "python3"
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""Extra kernel options: only errors from the kernel process itself (its warning that a
kernel on 127.0.0.1 talks over unencrypted TCP, once per notebook, is not news); what a
cell prints or raises is in the executed notebook either way."""


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
    reused: bool = False


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
    rows = [[r.stem, r.profile, _status(r), f"{r.seconds:.1f}"] for r in results]
    n_bad = sum(not r.ok for r in results)
    n_reused = sum(r.reused for r in results)
    total = sum(r.seconds for r in results)
    counts = f"{len(results) - n_reused} run, " + (
        f"{n_reused} reused, " if n_reused else ""
    )
    footer = [(f"total ({counts}{n_bad} failed)", f"{total:.1f}")]
    if elapsed is not None and jobs > 1:
        footer.append((f"elapsed ({jobs} at once)", f"{elapsed:.1f}"))
    head = ["notebook", "profile", "status", "wall [s]"]
    return text_table(head, rows, align="<<<>", rule=True, footer=footer)


def _status(r: NotebookResult) -> str:
    return "reused" if r.reused else "ok" if r.ok else "FAILED"


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

    # papermill reads the parameters cell line by line to list the parameters in the
    # notebook's metadata and warns about every value written over several lines; the
    # values themselves are injected either way
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
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
            extra_arguments=KERNEL_ARGUMENTS,
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


Plan = list[tuple[str, dict[str, Any], Path]]
"""``(stem, parameters, output path)`` of every notebook to run, in order."""


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
    cache: str = "off",
) -> list[NotebookResult]:
    """Execute the selected notebooks under ``profile``; print progress and a summary to
    ``stream``.

    ``jobs > 1`` runs that many notebooks at once (one kernel process each). ``cache``
    (:data:`~moecl_lib.tools.notebook_cache.CACHE_MODES`; ignored with ``inplace``):
    ``"use"`` reuses a chapter whose inputs are those of a stored run, ``"refresh"``
    runs and stores every chapter. Raises ``RunnerError`` for bad input (unknown
    stem/profile/parameter, ``jobs < 1``, unknown cache mode) before anything runs.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise RunnerError(f"jobs={jobs!r} must be an integer >= 1")
    notebook_cache.check_mode(cache)
    stream = stream or sys.stdout
    notebooks, plan = _plan_runs(root, profile, only, inplace, out_dir, extra, stream)
    dest = "in place" if inplace else str(out_dir or GENERATED_DIR)
    print(
        f"moecl notebooks: profile={profile}, {len(plan)} notebook(s), output -> "
        f"{dest}",
        file=stream,
        flush=True,
    )
    session = _Session(root, profile, inplace, fail_fast, jobs, stream, len(plan))
    t_start = time.perf_counter()
    todo = plan
    if cache != "off" and not inplace:
        todo = session.use_cache(plan, notebooks, reuse=cache == "use")
        session.n_plan = len(todo)
    with _quiet_debugger():
        if jobs <= 1:
            _run_sequential(session, todo, notebooks, timeout)
        else:
            _run_parallel(session, todo, notebooks, timeout)
    order = {stem: k for k, (stem, _, _) in enumerate(plan)}
    results = sorted(session.results, key=lambda r: order[r.stem])
    print(
        "\n" + summary_table(results, time.perf_counter() - t_start, jobs),
        file=stream,
        flush=True,
    )
    failed = [r for r in results if not r.ok]
    if failed:
        print("\n" + "\n".join(r.message for r in failed), file=stream, flush=True)
    return results


def _plan_runs(
    root: Path,
    profile: str,
    only: Sequence[str] | None,
    inplace: bool,
    out_dir: Path | None,
    extra: Mapping[str, Any] | None,
    stream: TextIO,
) -> tuple[dict[str, Path], Plan]:
    """Check the input and plan the runs: ``(stem -> notebook, plan)``; warns on
    ``stream`` about profiles.yml entries without a notebook."""
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

    plan: Plan = []
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
    return notebooks, plan


@contextmanager
def _quiet_debugger() -> Iterator[None]:
    """Silence debugpy's frozen-modules warning in the kernels (an environment variable
    they inherit), restoring the variable afterwards."""
    env_backup = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    try:
        yield
    finally:
        if env_backup is None:
            os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
        else:
            os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = env_backup


def _shown(params: Mapping[str, Any]) -> str:
    """Parameters of a run for the progress line."""
    return (
        ", ".join(f"{k}={format_value(v)}" for k, v in params.items())
        or "stored parameters"
    )


@dataclass
class _Session:
    """What the runs of one :func:`run_notebooks` call share, and their results."""

    root: Path
    profile: str
    inplace: bool
    fail_fast: bool
    jobs: int
    stream: TextIO
    n_plan: int
    results: list[NotebookResult] = field(default_factory=list)
    keys: dict[str, tuple[notebook_cache.CacheKey, Path | None]] = field(
        default_factory=dict
    )

    def use_cache(self, plan: Plan, notebooks: Mapping[str, Path], reuse: bool) -> Plan:
        """Key every planned chapter; restore those stored under their key (when
        ``reuse``) and return the plan of the others, which :meth:`finish` stores."""
        folder = notebook_cache.cache_dir()
        shared = notebook_cache.shared_parts(self.root)
        todo: Plan = []
        for i, (stem, params, output) in enumerate(plan, 1):
            nb = read_notebook_json(notebooks[stem])
            key = notebook_cache.chapter_key(
                self.root, stem, nb, self.profile, params, shared
            )
            results = notebook_cache.result_folder(self.root, nb, params)
            entry = notebook_cache.lookup(folder, key) if reuse else None
            if entry is None or results is None:
                self.keys[stem] = (key, results)
                todo.append((stem, params, output))
                changed = notebook_cache.changed_parts(folder, key) if reuse else []
                if changed:
                    print(
                        f"{stem}: runs again ({', '.join(changed)} changed since its "
                        "stored run)",
                        file=self.stream,
                        flush=True,
                    )
                continue
            t0 = time.perf_counter()
            try:
                meta = notebook_cache.restore(entry, output, results)
            except (OSError, ValueError, KeyError) as exc:  # a damaged entry: run
                print(
                    f"{stem}: stored run unreadable ({exc}); runs again",
                    file=self.stream,
                )
                self.keys[stem] = (key, results)
                todo.append((stem, params, output))
                continue
            self.results.append(
                NotebookResult(
                    stem,
                    self.profile,
                    params,
                    output,
                    time.perf_counter() - t0,
                    True,
                    reused=True,
                )
            )
            print(
                f"[{i}/{len(plan)}] {stem}: reused (inputs unchanged since its run of "
                f"{meta['executed'][:16]}, {meta['seconds']:.0f} s; cache {folder})",
                file=self.stream,
                flush=True,
            )
        return todo

    def finish(
        self,
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
        self.results.append(
            NotebookResult(stem, self.profile, params, output, dt, ok, message)
        )
        if ok and not self.inplace:
            record_profile(output, self.profile, params)
            if stem in self.keys:
                key, results = self.keys[stem]
                try:
                    notebook_cache.store(
                        notebook_cache.cache_dir(), key, output, results, dt
                    )
                except OSError as exc:  # e.g. a read-only cache, or a concurrent build
                    print(f"    not kept in the cache: {exc}", file=self.stream)
        if ok:
            print(
                f"    ok  {dt:.1f} s -> {_rel(output, self.root)}"
                + (f"  [{i}/{self.n_plan}] {stem}" if self.jobs > 1 else ""),
                file=self.stream,
                flush=True,
            )
            return False
        print(
            f"    {message.replace(chr(10), chr(10) + '    ')}",
            file=self.stream,
            flush=True,
        )
        return self.fail_fast


def _run_sequential(
    session: _Session, plan: Plan, notebooks: Mapping[str, Path], timeout: int | None
) -> None:
    """One notebook after the other, in this process."""
    for i, (stem, params, output) in enumerate(plan, 1):
        print(
            f"[{i}/{len(plan)}] {stem} ({_shown(params)}) ...",
            file=session.stream,
            flush=True,
        )
        t0 = time.perf_counter()
        ok, message = execute_one(
            stem,
            notebooks[stem],
            output,
            params,
            session.root,
            inplace=session.inplace,
            timeout=timeout,
        )
        if session.finish(
            i, stem, params, output, ok, message, time.perf_counter() - t0
        ):
            break


def _run_parallel(
    session: _Session, plan: Plan, notebooks: Mapping[str, Path], timeout: int | None
) -> None:
    """``session.jobs`` notebooks at once, one process each.

    Independent notebooks in parallel kernels: each keeps its own seeds and
    single-threaded torch, so the outputs are those of a sequential run; only the order
    of the progress lines differs. One process per notebook run: papermill changes the
    working directory of its process, which threads would share.
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=session.jobs, mp_context=spawn) as pool:
        futures = {}
        for i, (stem, params, output) in enumerate(plan, 1):
            print(
                f"[{i}/{len(plan)}] {stem} ({_shown(params)}) queued",
                file=session.stream,
                flush=True,
            )
            futures[
                pool.submit(
                    _timed_execute,
                    stem,
                    notebooks[stem],
                    output,
                    params,
                    session.root,
                    session.inplace,
                    timeout,
                )
            ] = (i, stem, params, output)
        for fut in as_completed(futures):
            i, stem, params, output = futures[fut]
            ok, message, dt = fut.result()
            if session.finish(i, stem, params, output, ok, message, dt):
                for other in futures:
                    other.cancel()
                break


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------
# book
# --------------------------------------------------------------------------------------
