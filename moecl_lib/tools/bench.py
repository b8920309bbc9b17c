"""Benchmark of the batched simulation engine against a naive per-run reference
(``moecl bench``).

Two implementations of Algorithm 1 (SPEC §3-§5) live side by side:

* :func:`moecl_lib.linear.engine.simulate`: the batched engine (all runs of a batch per
  call, incremental metrics), with two backends: the compiled numba kernel (default) and
  the numpy loop vectorised over runs. Both are timed and both are checked against the
  reference.
* :func:`moecl_lib.linear.reference.reference_simulate`: a deliberately straightforward
  loop, **one run at a time**, that solves the ``s x s`` normal equations with
  ``numpy.linalg.solve`` every round and **recomputes** ``F_t`` and ``G_t`` from the
  whole history of arrivals every round (``O(t d)`` work in round ``t``, so ``O(T^2 d)``
  per run). It is kept as the reference:
  :func:`moecl_lib.linear.reference.check_reference` asserts that both give the same
  numbers.

Both consume the *same random numbers*: the reference draws the task pool with
:func:`moecl_lib.linear.tasks.make_task_pool` and then all rounds with
:func:`moecl_lib.linear.engine.draw_rounds`, the function the engine calls block by
block; ``draw_rounds`` consumes the generator round by round in a fixed order, so the
block length does not change the stream. Hence at a fixed seed the discrete trajectory
(tasks, chosen experts, termination rounds) is identical and the float metrics agree to
rounding (the engine projects with an orthonormal basis and updates metrics
incrementally; the reference solves and re-sums; see :data:`REFERENCE_RTOL`).

What ``moecl bench`` measures (wall-clock and process CPU time; the machine is shared,
so every timing is the MINIMUM over repeats, and the numbers are noisy):

1. throughput in run-rounds per second for the Figure-2 configuration (N=6, M in
   {1,5,10,20}, d=10, s=6, T=2000, R=500) and a large one (d=200, s=20, M=40, N=10),
   batched vs reference. The reference is timed on a few runs at the full T and
   extrapolated linearly in R (it is a loop over independent runs);
2. time versus T, R, M and d (one figure, PNG+PDF, and a CSV);
3. peak memory of one batched run (``tracemalloc``, which also sees numpy's buffers) and
   the process' maximum resident set size;
4. optionally (``--notebooks``) the wall time of every notebook under the quick and
   paper profiles and of the book build, through the notebook runner.

Results go to ``results/bench/`` (git-ignored). ``--quick`` runs tiny sizes (about a
minute; a smoke test).

Layout: :mod:`moecl_lib.tools.bench_timing` holds the plans and the measurements,
:mod:`moecl_lib.tools.bench_report` the CSV files, the figure and the printed report,
and this module the notebook timings, :func:`run_benchmark` and the command line.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moecl_lib.linear.engine import simulate
from moecl_lib.linear.reference import REFERENCE_ATOL, REFERENCE_RTOL
from moecl_lib.tools.bench_report import _print_report, plot_scaling, write_csv
from moecl_lib.tools.bench_timing import (
    FIG2,
    LARGE,
    Plan,
    _log,
    check_rows,
    full_plan,
    growth_exponents,
    max_rss_mib,
    memory_rows,
    quick_plan,
    reference_quadratic_fit,
    scaling_rows,
    throughput_rows,
)
from moecl_lib.tools.bench_timing import (
    _check_cfgs as _check_cfgs,  # the engine-vs-reference configurations (tests)
)


# --------------------------------------------------------------------------------------
# Notebooks and book
# --------------------------------------------------------------------------------------
def notebook_rows(
    root: Path,
    profiles: Sequence[str],
    out_dir: Path | None,
    timeout: int | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Execute every notebook under each profile with the runner; one row per notebook
    and profile (wall time, status). Outputs go to ``out_dir/<profile>``;
    ``out_dir=None`` means the runner's default ``book/generated`` (what the book build
    uses). Never into ``notebooks/``."""
    from moecl_lib.tools import runner

    rows = []
    for profile in profiles:
        _log(f"  notebooks, profile {profile} ...")
        dest = None if out_dir is None else out_dir / profile
        results = runner.run_notebooks(
            root, profile, None, out_dir=dest, timeout=timeout, jobs=jobs
        )
        for r in results:
            rows.append(
                {
                    "notebook": r.stem,
                    "profile": profile,
                    "wall_s": r.seconds,
                    "ok": r.ok,
                    "jobs": jobs,
                }
            )
    return rows


def book_rows(
    root: Path,
    paper_rows: Sequence[dict[str, Any]],
    notebooks_elapsed: float | None = None,
) -> list[dict[str, Any]]:
    """Time ``jupyter-book build`` (as ``moecl book``) on the paper-profile notebooks
    already executed into ``book/generated``; the full book build = the notebooks'
    elapsed time (``notebooks_elapsed``; default the sum of their times, i.e. a
    sequential run) + this build."""
    from moecl_lib.tools import book_build, runner

    nb_s = (
        float(sum(r["wall_s"] for r in paper_rows))
        if notebooks_elapsed is None
        else float(notebooks_elapsed)
    )
    nb_ok = bool(paper_rows) and all(r["ok"] for r in paper_rows)
    rows = [{"step": "notebooks (paper profile)", "wall_s": nb_s, "ok": nb_ok}]
    t1 = time.perf_counter()
    ok = False
    try:
        book_build.check_book_inputs(root)
        ok = subprocess.call(book_build.book_command(root), cwd=root) == 0
    except runner.RunnerError as exc:
        _log(f"  book build not possible: {exc}")
    jb = time.perf_counter() - t1
    rows.append({"step": "jupyter-book build", "wall_s": jb, "ok": ok})
    rows.append({"step": "full book build", "wall_s": nb_s + jb, "ok": ok and nb_ok})
    return rows


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------
def run_benchmark(
    plan: Plan,
    out_dir: Path,
    *,
    notebooks: bool = False,
    book: bool = False,
    root: Path | None = None,
    nb_timeout: int | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the whole benchmark under ``plan``; write CSVs, the figure and
    ``summary.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load0 = _loadavg()
    _warm_up()
    summary: dict[str, Any] = {
        "plan": plan.name,
        "machine": _machine(),
        "load_average_start": load0,
    }
    _engine_steps(plan, out_dir, summary)
    if notebooks or book:
        _log("[5/5] notebooks and book")
        _notebook_step(
            root or _repo_root(), out_dir, summary, notebooks, book, nb_timeout, jobs
        )
    else:
        _log("[5/5] notebooks and book: skipped (add --notebooks and/or --book)")

    summary["max_rss_MiB"] = max_rss_mib()
    summary["load_average_end"] = _loadavg()
    summary["benchmark_wall_s"] = time.perf_counter() - t_start
    (out_dir / "summary.json").write_text(
        json.dumps(summary, indent=1, default=_json_default) + "\n"
    )
    _print_report(summary, out_dir)
    return summary


def _warm_up() -> None:
    """Imports, caches and numba compilation, before anything is timed."""
    for backend in ("numba", "numpy"):
        simulate(FIG2.replace(n_runs=2, T=5, backend=backend))
        simulate(FIG2.replace(n_runs=2, T=5, backend=backend, dtype="float32"))
    # (imports torch for the large-matrix path)
    simulate(LARGE.replace(n_runs=2, T=2, backend="numpy"))


def _engine_steps(plan: Plan, out_dir: Path, summary: dict[str, Any]) -> None:
    """Steps 1-4 (reference check, throughput, scaling, memory): CSV files into
    ``out_dir`` and their results into ``summary``."""
    _log("[1/5] engine vs reference: identical numbers at fixed seeds")
    checks = check_rows(plan.check_cfgs)
    write_csv(checks, out_dir / "reference_check.csv")
    summary["reference_check"] = {
        "configs": len(plan.check_cfgs),
        "backends": sorted({r["backend"] for r in checks}),
        "rtol": REFERENCE_RTOL,
        "atol": REFERENCE_ATOL,
        "passed": True,
    }

    _log("[2/5] throughput: Figure-2 and large configurations")
    thr = throughput_rows(plan)
    write_csv(thr, out_dir / "throughput.csv")
    summary["throughput"] = thr

    _log("[3/5] scaling sweeps")
    sc = scaling_rows(plan)
    write_csv(sc, out_dir / "scaling.csv")
    summary["growth_exponent_T"] = growth_exponents(sc)
    summary["reference_quadratic_fit"] = reference_quadratic_fit(sc)
    summary["figure"] = [str(p) for p in plot_scaling(sc, out_dir)]

    _log("[4/5] peak memory")
    mem = memory_rows(plan.memory_cfg, plan.ref_runs)
    write_csv(mem, out_dir / "memory.csv")
    summary["memory"] = mem


def _notebook_step(
    root: Path,
    out_dir: Path,
    summary: dict[str, Any],
    notebooks: bool,
    book: bool,
    nb_timeout: int | None,
    jobs: int,
) -> None:
    """Step 5: notebook wall times (quick profile with ``notebooks``; paper profile
    always) and, with ``book``, the book build on the paper-profile outputs."""
    nb: list[dict[str, Any]] = []
    if notebooks:
        nb += notebook_rows(root, ("quick",), out_dir / "notebooks", nb_timeout, jobs)
    if book:
        # paper profile into book/generated (as `moecl notebooks --profile paper`),
        # then the build
        t_nb = time.perf_counter()
        paper = notebook_rows(root, ("paper",), None, nb_timeout, jobs)
        bk = book_rows(root, paper, time.perf_counter() - t_nb)
        write_csv(bk, out_dir / "book.csv")
        summary["book"] = bk
        nb += paper
    else:
        nb += notebook_rows(root, ("paper",), out_dir / "notebooks", nb_timeout, jobs)
    write_csv(nb, out_dir / "notebooks.csv")
    summary["notebooks"] = nb


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _loadavg() -> list[float]:
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def _machine() -> dict[str, Any]:
    import os

    import scipy

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "absent"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch_version,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def _repo_root() -> Path:
    from moecl_lib.paths import find_repo_root

    return find_repo_root()


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (a smoke test, well under a minute)",
    )
    p.add_argument(
        "--notebooks",
        action="store_true",
        help="also time every notebook under the quick and paper profiles (outputs "
        "into the --out folder)",
    )
    p.add_argument(
        "--book",
        action="store_true",
        help="also time the full book build: paper-profile notebooks into "
        "book/generated (as `moecl notebooks --profile paper`) + jupyter-book "
        "build; with --notebooks the paper times come from it",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results") / "bench",
        help="output folder (default results/bench)",
    )
    p.add_argument(
        "--nb-timeout",
        type=int,
        default=None,
        metavar="S",
        help="per-cell timeout for notebooks",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="notebooks executed at once (as `moecl notebooks --jobs`; `make book` "
        "uses 2)",
    )


def run(args: argparse.Namespace) -> int:
    """``moecl bench``: run the benchmark; exit status 0 (a reference mismatch raises
    AssertionError)."""
    plan = quick_plan() if args.quick else full_plan()
    run_benchmark(
        plan,
        args.out,
        notebooks=args.notebooks,
        book=args.book,
        nb_timeout=args.nb_timeout,
        jobs=args.jobs,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m moecl_lib.tools.bench [--quick] ...`` (same as ``moecl bench``)."""
    parser = argparse.ArgumentParser(
        prog="python -m moecl_lib.tools.bench", description=__doc__.split("\n")[0]
    )
    _configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
else:
    # register `moecl bench` (moecl_lib.tools.cli imports this module through
    # COMMAND_MODULES)
    try:
        from moecl_lib.tools.cli import register
    except ImportError:  # pragma: no cover - the CLI module is optional for the library
        pass
    else:
        register(
            "bench",
            help="benchmark the batched engine against the naive reference",
            configure=_configure,
        )(run)
