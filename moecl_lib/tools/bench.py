"""Benchmark of the batched simulation engine against a naive per-run reference
(``moecl bench``).

Two implementations of Algorithm 1 (SPEC §3-§5) live side by side:

* :func:`moecl_lib.linear.engine.simulate`: the batched engine (all runs of a batch per
  call, incremental metrics), with two backends: the compiled numba kernel (default) and
  the numpy loop vectorised over runs. Both are timed and both are checked against the
  reference.
* :func:`reference_simulate` (here): a deliberately straightforward loop, **one run at a
  time**, that solves the ``s x s`` normal equations with ``numpy.linalg.solve`` every
  round and **recomputes** ``F_t`` and ``G_t`` from the whole history of arrivals every
  round (``O(t d)`` work in round ``t``, so ``O(T^2 d)`` per run). It is kept as the
  reference: :func:`check_reference` asserts that both give the same numbers.

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
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.figures.tables import text_table
from moecl_lib.linear.engine import draw_rounds, simulate
from moecl_lib.linear.reference import (
    REFERENCE_ATOL,
    REFERENCE_RTOL,
    check_reference,
    reference_simulate,
)
from moecl_lib.linear.streams import make_streams, task_pool

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

FIG2 = ExperimentConfig(n_tasks=6, n_experts=10, d=10, s=6, T=2000, n_runs=500)
"""The Figure-2 configuration (M is varied over :data:`FIG2_M`)."""
FIG2_M = (1, 5, 10, 20)
LARGE = ExperimentConfig(n_tasks=10, n_experts=40, d=200, s=20, T=1000, n_runs=100)
"""The large configuration of issue 7 (T and R are our choice)."""


# --------------------------------------------------------------------------------------
# The naive per-run reference
# --------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Best-of-``repeats`` timing of one call: wall-clock and process CPU seconds (each
    minimised separately)."""

    wall: float
    cpu: float
    repeats: int


def time_call(fn: Callable[[], Any], repeats: int = 3) -> Timing:
    """Run ``fn`` ``repeats`` times; return the minimum wall and the minimum CPU time.

    The minimum is the least-disturbed estimate on a shared machine. CPU time
    (``time.process_time``) is less sensitive than wall time to other people's jobs, but
    not immune (shared caches and cores).
    """
    wall = cpu = float("inf")
    for _ in range(max(1, repeats)):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return Timing(wall=wall, cpu=cpu, repeats=max(1, repeats))


SimulateFn = Callable[[ExperimentConfig], Any]


def _alternate(
    fa: Callable[[], Any], fb: Callable[[], Any] | None, na: int, nb: int
) -> tuple[Timing, Timing | None]:
    """Time ``fa`` and ``fb`` alternately (a, b, a, b, ...) so that both see the same
    load; best of repeats."""
    ta: list[Timing] = []
    tb: list[Timing] = []
    for i in range(max(na, nb if fb is not None else 0)):
        if i < na:
            ta.append(time_call(fa, 1))
        if fb is not None and i < nb:
            tb.append(time_call(fb, 1))

    def best(ts: list[Timing]) -> Timing:
        return Timing(
            wall=min(t.wall for t in ts), cpu=min(t.cpu for t in ts), repeats=len(ts)
        )

    return best(ta), (best(tb) if tb else None)


def time_engine(
    cfg: ExperimentConfig, repeats: int, simulate_fn: SimulateFn = simulate
) -> Timing:
    """Best-of-``repeats`` time of one batched simulation of ``cfg`` (all ``cfg.n_runs``
    runs)."""
    return time_call(lambda: simulate_fn(cfg), repeats)


def time_reference(cfg: ExperimentConfig, n_runs: int, repeats: int) -> Timing:
    """Best-of-``repeats`` time of the reference on ``n_runs`` runs (a batch of that
    size, so that only their random numbers are drawn). Per-run cost = result /
    ``n_runs``; the reference is linear in R."""
    small = cfg.replace(n_runs=n_runs)
    return time_call(lambda: reference_simulate(small), repeats)


def draw_only(cfg: ExperimentConfig) -> None:
    """Draw every random number of ``simulate(cfg)`` and nothing else: the floor of any
    implementation that reproduces the same draws (both the engine and the reference
    must generate them)."""
    from moecl_lib.linear.engine import block_length

    rng = make_streams(cfg)
    task_pool(cfg, rng)
    block, t = block_length(cfg), 0
    while t < cfg.T:
        b = min(block, cfg.T - t)
        draw_rounds(cfg, rng, b)
        t += b


# --------------------------------------------------------------------------------------
# The benchmark plan
# --------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Sizes of one benchmark run (``full`` = the issue's configurations; ``quick`` = a
    smoke test)."""

    name: str
    fig2: ExperimentConfig
    fig2_M: tuple[int, ...]
    large: ExperimentConfig
    ref_runs: int  # runs the reference is timed on (then extrapolated to cfg.n_runs)
    repeats: int  # best-of repeats for batched timings
    ref_repeats: int
    sweep_base: ExperimentConfig  # base of the scaling sweeps
    sweep_T: tuple[int, ...]
    sweep_R: tuple[int, ...]
    sweep_M: tuple[int, ...]
    sweep_d: tuple[int, ...]
    sweep_ref_R: tuple[int, ...]
    memory_cfg: ExperimentConfig
    check_cfgs: tuple[ExperimentConfig, ...] = field(default_factory=tuple)


def full_plan() -> Plan:
    """The issue-7 benchmark: about 5-10 minutes of wall time on the shared 2-core
    machine."""
    base = FIG2.replace(n_runs=100, T=500)
    return Plan(
        name="full",
        fig2=FIG2,
        fig2_M=FIG2_M,
        large=LARGE.replace(T=500),
        ref_runs=2,
        repeats=3,
        ref_repeats=3,
        sweep_base=base,
        sweep_T=(250, 500, 1000, 2000, 4000, 8000),
        sweep_R=(1, 10, 50, 100, 500, 1000),
        sweep_M=(1, 2, 5, 10, 20, 40),
        sweep_d=(10, 20, 50, 100, 200),
        sweep_ref_R=(1, 2, 4),
        memory_cfg=FIG2,
        check_cfgs=_check_cfgs(),
    )


def quick_plan() -> Plan:
    """Tiny sizes (well under a minute): a smoke test of every code path, not a
    measurement."""
    base = FIG2.replace(n_runs=20, T=100)
    return Plan(
        name="quick",
        fig2=FIG2.replace(n_runs=50, T=200),
        fig2_M=(1, 10),
        large=LARGE.replace(n_runs=4, T=20, d=60, s=12, n_experts=8),
        ref_runs=1,
        repeats=1,
        ref_repeats=1,
        sweep_base=base,
        sweep_T=(50, 100, 200),
        sweep_R=(1, 10, 40),
        sweep_M=(1, 4),
        sweep_d=(10, 30),
        sweep_ref_R=(1, 2),
        memory_cfg=base,
        check_cfgs=_check_cfgs()[:2],
    )


def _check_cfgs() -> tuple[ExperimentConfig, ...]:
    """Small configurations covering every code path, for the engine-vs-reference
    check."""
    return (
        ExperimentConfig(n_tasks=6, n_experts=10, d=10, s=6, T=300, n_runs=4, seed=1),
        ExperimentConfig(n_tasks=6, n_experts=1, d=10, s=6, T=200, n_runs=3, seed=2),
        ExperimentConfig(
            n_tasks=4,
            n_experts=5,
            d=12,
            s=4,
            T=200,
            n_runs=3,
            termination="never",
            beta_dist="uniform",
            aux_grad="no_decay",
            seed=3,
        ),
        ExperimentConfig(
            n_tasks=4,
            n_experts=4,
            d=10,
            s=3,
            T=150,
            n_runs=3,
            signal="none",
            termination="freeze_at_T1",
            seed=4,
        ),
        ExperimentConfig(
            n_tasks=10, n_experts=8, d=60, s=12, T=120, n_runs=3, n_clusters=3, seed=5
        ),
    )


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(msg, flush=True)


def throughput_cases(plan: Plan) -> list[tuple[str, ExperimentConfig]]:
    """The configurations of :func:`throughput_rows`: Figure 2 per M, one float32 case,
    the large case and Figure 2 with per-run random streams."""
    cases = [(f"fig2 M={M}", plan.fig2.replace(n_experts=M)) for M in plan.fig2_M]
    m32 = 10 if 10 in plan.fig2_M else plan.fig2_M[-1]
    cases.append(
        (f"fig2 M={m32} f32", plan.fig2.replace(n_experts=m32, dtype="float32"))
    )  # reference: float64
    cases.append(("large", plan.large))
    m_last = plan.fig2_M[-1]  # per-run random streams (moecl_lib.linear.streams)
    cases.append(
        (
            f"fig2 M={m_last} per-run",
            plan.fig2.replace(n_experts=m_last, streams="per_run"),
        )
    )
    return cases


def throughput_rows(
    plan: Plan,
    simulate_fn: SimulateFn = simulate,
    *,
    with_reference: bool = True,
    label: str = "engine",
    backends: Sequence[str] = ("numba", "numpy"),
) -> list[dict[str, Any]]:
    """Batched vs reference throughput (run-rounds per second) for the Figure-2 and the
    large configurations.

    One row per case and engine backend; the reference is timed once per case
    (alternating with the first backend, so both see the same load) and shared by the
    rows of that case.
    """
    cases = throughput_cases(plan)
    rows = []
    for name, case_cfg in cases:
        ref: Timing | None = None
        rng_t = time_call(lambda case_cfg=case_cfg: draw_only(case_cfg), 1)
        for i, backend in enumerate(backends):
            cfg = case_cfg.replace(backend=backend)
            timed_ref = with_reference and i == 0
            _log(
                f"  {name} [{backend}]: batched R={cfg.n_runs} T={cfg.T}"
                + (
                    f", reference on {plan.ref_runs} run(s) (alternating, best of "
                    "repeats) ..."
                    if timed_ref
                    else " ..."
                )
            )
            eng, ref_i = _alternate(
                lambda cfg=cfg: simulate_fn(cfg),
                (lambda cfg=cfg: reference_simulate(cfg.replace(n_runs=plan.ref_runs)))
                if timed_ref
                else None,
                plan.repeats,
                plan.ref_repeats,
            )
            ref = ref_i if timed_ref else ref
            rr = cfg.n_runs * cfg.T
            row: dict[str, Any] = {
                "case": name,
                "implementation": label,
                "backend": backend,
                "N": cfg.n_tasks,
                "M": cfg.n_experts,
                "d": cfg.d,
                "s": cfg.s,
                "T": cfg.T,
                "R": cfg.n_runs,
                "batched_wall_s": eng.wall,
                "batched_cpu_s": eng.cpu,
                "batched_rr_per_s_wall": rr / eng.wall,
                "batched_rr_per_s_cpu": rr / eng.cpu,
                "draws_cpu_s": rng_t.cpu,
                "draws_share_of_batched_cpu": rng_t.cpu / eng.cpu,
            }
            if ref is not None:
                scale = cfg.n_runs / plan.ref_runs  # extrapolated linearly in R
                row.update(
                    {
                        "ratio_ceiling_cpu": ref.cpu * scale / rng_t.cpu,
                        "ref_runs_timed": plan.ref_runs,
                        "ref_wall_s_extrapolated": ref.wall * scale,
                        "ref_cpu_s_extrapolated": ref.cpu * scale,
                        "ref_rr_per_s_wall": plan.ref_runs * cfg.T / ref.wall,
                        "ref_rr_per_s_cpu": plan.ref_runs * cfg.T / ref.cpu,
                        "speedup_wall": ref.wall * scale / eng.wall,
                        "speedup_cpu": ref.cpu * scale / eng.cpu,
                    }
                )
            rows.append(row)
    return rows


def scaling_rows(plan: Plan) -> list[dict[str, Any]]:
    """Time versus T, R, M and d, batched and reference (reference on ``R = 1`` unless
    the sweep is over R)."""
    base = plan.sweep_base
    rows: list[dict[str, Any]] = []

    def add(
        sweep: str,
        value: int,
        cfg: ExperimentConfig,
        impl: str,
        timing: Timing,
        runs: int,
    ) -> None:
        rows.append(
            {
                "sweep": sweep,
                "value": value,
                "implementation": impl,
                "N": cfg.n_tasks,
                "M": cfg.n_experts,
                "d": cfg.d,
                "s": cfg.s,
                "T": cfg.T,
                "R": runs,
                "wall_s": timing.wall,
                "cpu_s": timing.cpu,
                "run_rounds": runs * cfg.T,
            }
        )

    sweeps: list[tuple[str, tuple[int, ...], Callable[[int], ExperimentConfig]]] = [
        ("T", plan.sweep_T, lambda v: base.replace(T=v)),
        ("R", plan.sweep_R, lambda v: base.replace(n_runs=v)),
        ("M", plan.sweep_M, lambda v: base.replace(n_experts=v)),
        ("d", plan.sweep_d, lambda v: base.replace(d=v)),
    ]
    for sweep, values, make in sweeps:
        _log(f"  sweep over {sweep}: {values}")
        for v in values:
            cfg = make(v)
            fb = (
                (lambda c=cfg: reference_simulate(c.replace(n_runs=1)))
                if sweep != "R"
                else None
            )
            eng, ref = _alternate(
                lambda c=cfg: simulate(c),
                fb,
                max(1, plan.repeats - 1),
                max(1, plan.ref_repeats - 1),
            )
            add(sweep, v, cfg, "batched", eng, cfg.n_runs)
            if ref is not None:
                add(sweep, v, cfg, "reference", ref, 1)
        if sweep == "R":
            for v in plan.sweep_ref_R:
                cfg = make(v)
                add(
                    sweep,
                    v,
                    cfg,
                    "reference",
                    time_reference(cfg, v, plan.ref_repeats),
                    v,
                )
    return rows


def growth_exponents(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Local log-log slope of time versus T between the two largest T of each
    implementation (1 = linear)."""
    out = {}
    for impl in ("batched", "reference"):
        pts = sorted(
            (r["value"], r["cpu_s"])
            for r in rows
            if r["sweep"] == "T" and r["implementation"] == impl
        )
        if len(pts) >= 2:
            (t1, c1), (t2, c2) = pts[-2], pts[-1]
            out[impl] = float(np.log(c2 / c1) / np.log(t2 / t1))
    return out


def reference_quadratic_fit(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Least-squares fit ``cpu = a T + b T^2`` of the reference's T sweep; returns a, b
    and the quadratic share ``b T / (a + b T)`` of the per-round cost at the largest
    T."""
    pts = sorted(
        (r["value"], r["cpu_s"])
        for r in rows
        if r["sweep"] == "T" and r["implementation"] == "reference"
    )
    if len(pts) < 2:
        return {}
    T = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts])
    (a, b), *_ = np.linalg.lstsq(np.stack([T, T**2], axis=1), y, rcond=None)
    Tm = T[-1]
    return {
        "a_s_per_round": float(a),
        "b_s_per_round2": float(b),
        "T_max": float(Tm),
        "quadratic_share_at_T_max": float(b * Tm / (a + b * Tm)),
    }


def memory_rows(cfg: ExperimentConfig, ref_runs: int) -> list[dict[str, Any]]:
    """Peak traced memory (``tracemalloc``; numpy reports its buffers to it) of one
    batched run and of the reference on ``ref_runs`` runs, plus the size of the batched
    result arrays. Untimed (tracing is slow)."""
    rows = []
    for impl, fn, runs in (
        ("batched", lambda: simulate(cfg), cfg.n_runs),
        (
            "reference",
            lambda: reference_simulate(cfg.replace(n_runs=ref_runs)),
            ref_runs,
        ),
    ):
        tracemalloc.start()
        tracemalloc.reset_peak()
        res = fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out_bytes = sum(
            getattr(res, k).nbytes
            for k in ("F", "G", "G_pool", "err_new", "experts", "tasks")
        )
        rows.append(
            {
                "implementation": impl,
                "N": cfg.n_tasks,
                "M": cfg.n_experts,
                "d": cfg.d,
                "s": cfg.s,
                "T": cfg.T,
                "R": runs,
                "peak_traced_MiB": peak / 2**20,
                "result_arrays_MiB": out_bytes / 2**20,
            }
        )
        del res
    return rows


def max_rss_mib() -> float:
    """Maximum resident set size of this process so far (``getrusage``; Linux reports
    KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def check_rows(
    cfgs: Sequence[ExperimentConfig], backends: Sequence[str] = ("numba", "numpy")
) -> list[dict[str, Any]]:
    """Run :func:`check_reference` on each configuration and engine backend; one row
    each (raises on mismatch)."""
    rows = []
    for cfg in cfgs:
        for backend in backends:
            err = check_reference(cfg.replace(backend=backend))
            rows.append(
                {
                    "backend": backend,
                    "M": cfg.n_experts,
                    "N": cfg.n_tasks,
                    "d": cfg.d,
                    "s": cfg.s,
                    "T": cfg.T,
                    "R": cfg.n_runs,
                    "termination": cfg.termination,
                    "signal": cfg.signal,
                    "beta_dist": cfg.beta_dist,
                    "discrete_equal": True,
                    **{f"max_rel_err_{k}": v for k, v in err.items()},
                }
            )
    return rows


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
    from moecl_lib.tools import runner

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
        runner.check_book_inputs(root)
        ok = subprocess.call(runner.book_command(root), cwd=root) == 0
    except runner.RunnerError as exc:
        _log(f"  book build not possible: {exc}")
    jb = time.perf_counter() - t1
    rows.append({"step": "jupyter-book build", "wall_s": jb, "ok": ok})
    rows.append({"step": "full book build", "wall_s": nb_s + jb, "ok": ok and nb_ok})
    return rows


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------
def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write dict rows (union of keys, in first-seen order) as CSV; floats with 6
    significant digits."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(keys)
        for r in rows:
            wr.writerow([_fmt(r.get(k, "")) for k in keys])
    return path


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return v


def _si(x: float) -> str:
    return f"{x:.3g}" if x < 1e3 else f"{x:.3e}".replace("e+0", "e").replace("e+", "e")


def throughput_table(rows: Sequence[dict[str, Any]]) -> str:
    """Printable table: batched and reference throughput (run-rounds/s, CPU and wall)
    and the ratios."""
    head = [
        "case", "backend", "R", "T", "batched rr/s", "(wall)", "reference rr/s",
        "(wall)", "ratio cpu", "ratio wall", "draws share", "ceiling",
    ]  # fmt: skip
    cells = []
    for r in rows:
        ref = "ref_rr_per_s_cpu" in r
        cells.append(
            [
                str(r["case"]),
                str(r.get("backend", "-")),
                str(r["R"]),
                str(r["T"]),
                _si(r["batched_rr_per_s_cpu"]),
                _si(r["batched_rr_per_s_wall"]),
                _si(r["ref_rr_per_s_cpu"]) if ref else "-",
                _si(r["ref_rr_per_s_wall"]) if ref else "-",
                f"{r['speedup_cpu']:.1f}" if ref else "-",
                f"{r['speedup_wall']:.1f}" if ref else "-",
                f"{r['draws_share_of_batched_cpu']:.0%}",
                f"{r['ratio_ceiling_cpu']:.0f}" if ref else "-",
            ]
        )
    return text_table(head, cells, align="<<", rule=True)


def plot_scaling(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One figure, four panels: CPU microseconds per run-round versus T, R, M and d,
    batched vs reference.

    Per run-round cost is total CPU time / (runs x rounds): flat in T means time linear
    in T; the reference's cost per round grows with T because it re-scans the history
    (time quadratic in T).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from moecl_lib.figures.io import save_figure
    from moecl_lib.figures.style import apply_style

    apply_style()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    labels = {
        "T": "rounds T",
        "R": "runs R (batched)",
        "M": "experts M",
        "d": "dimension d",
    }
    for ax, sweep in zip(axes, ("T", "R", "M", "d")):
        for impl, style in (("batched", "o-"), ("reference", "s--")):
            pts = sorted(
                (r["value"], r["cpu_s"] / r["run_rounds"] * 1e6, r["R"])
                for r in rows
                if r["sweep"] == sweep and r["implementation"] == impl
            )
            if not pts:
                continue
            x = np.array([p[0] for p in pts], dtype=float)
            y = np.array([p[1] for p in pts])
            lab = impl if sweep == "R" else f"{impl} (R={pts[0][2]})"
            ax.plot(x, y, style, label=lab, ms=4)
            if sweep == "T" and impl == "reference":
                ax.plot(
                    x,
                    y[-1] * x / x[-1],
                    color="0.6",
                    lw=0.8,
                    label="slope 1 (time ~ T^2)",
                )
        values = sorted({r["value"] for r in rows if r["sweep"] == sweep})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(values)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_xlabel(labels[sweep])
        ax.legend(fontsize=7)
    axes[0].set_ylabel("CPU us per run-round")
    fig.suptitle(
        "Cost per run-round: batched engine vs naive per-run reference (best of "
        "repeats)",
        fontsize=10,
    )
    fig.tight_layout()
    paths = save_figure(fig, out_dir, "scaling")
    plt.close(fig)
    return paths


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
    for backend in ("numba", "numpy"):
        simulate(
            FIG2.replace(n_runs=2, T=5, backend=backend)
        )  # warm-up: imports, caches, numba compilation
        simulate(FIG2.replace(n_runs=2, T=5, backend=backend, dtype="float32"))
    simulate(
        LARGE.replace(n_runs=2, T=2, backend="numpy")
    )  # (imports torch for the large-matrix path)
    summary: dict[str, Any] = {
        "plan": plan.name,
        "machine": _machine(),
        "load_average_start": load0,
    }

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

    if notebooks or book:
        _log("[5/5] notebooks and book")
        root = root or _repo_root()
        nb: list[dict[str, Any]] = []
        if notebooks:
            nb += notebook_rows(
                root, ("quick",), out_dir / "notebooks", nb_timeout, jobs
            )
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
            nb += notebook_rows(
                root, ("paper",), out_dir / "notebooks", nb_timeout, jobs
            )
        write_csv(nb, out_dir / "notebooks.csv")
        summary["notebooks"] = nb
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


def _print_report(summary: dict[str, Any], out_dir: Path) -> None:
    _log("")
    _log(
        "Throughput in run-rounds per second (best of repeats; reference timed on "
        f"{summary['throughput'][0].get('ref_runs_timed', '-')} run(s) at full T, "
        "extrapolated linearly to R):"
    )
    _log(throughput_table(summary["throughput"]))
    _log(
        "ratio = reference time / batched time for the same R and T (cpu: process CPU "
        "time of all threads; wall: elapsed; the numba backend draws the next block's "
        "random numbers in a second thread, so its wall time can be below its CPU "
        "time). draws share = CPU time spent drawing the random numbers / batched CPU "
        "time; ceiling = the CPU ratio of an engine that only drew them."
    )
    g = summary.get("growth_exponent_T", {})
    q = summary.get("reference_quadratic_fit", {})
    if summary.get("plan") == "quick":
        _log(
            "(--quick: tiny sizes for a smoke test; these numbers are not measurements)"
        )
    _log(
        "\nTime vs T, local log-log slope at the largest T: batched "
        f"{g.get('batched', float('nan')):.2f}, reference "
        f"{g.get('reference', float('nan')):.2f}"
        + (
            " (fit a T + b T^2: quadratic share of the per-round cost at "
            f"T={q['T_max']:.0f}: {q['quadratic_share_at_T_max']:.0%})"
            if q and 0 <= q["quadratic_share_at_T_max"] <= 1
            else ""
        )
    )
    for m in summary["memory"]:
        _log(
            f"Peak traced memory, {m['implementation']} (R={m['R']}, T={m['T']}, "
            f"M={m['M']}): {m['peak_traced_MiB']:.1f} MiB (result arrays "
            f"{m['result_arrays_MiB']:.1f} MiB)"
        )
    _log(f"Max RSS of the benchmark process: {summary['max_rss_MiB']:.0f} MiB")
    if "notebooks" in summary:
        _log("\nNotebook wall times [s]:")
        stems = sorted({r["notebook"] for r in summary["notebooks"]})
        for s in stems:
            cells = {
                r["profile"]: r for r in summary["notebooks"] if r["notebook"] == s
            }
            _log(
                f"  {s:<32} "
                + "  ".join(
                    f"{p}: {c['wall_s']:7.1f}{'' if c['ok'] else ' FAILED'}"
                    for p, c in cells.items()
                )
            )
    if "book" in summary:
        _log("Book build (paper profile):")
        for r in summary["book"]:
            _log(
                f"  {r['step']:<28} {r['wall_s']:8.1f} s "
                f"{'ok' if r['ok'] else 'FAILED'}"
            )
    _log(
        f"\nLoad average at start/end: {summary['load_average_start']} / "
        f"{summary['load_average_end']} (2 shared cores: timings are noisy)"
    )
    _log(
        f"Benchmark wall time {summary['benchmark_wall_s']:.0f} s; results in "
        f"{out_dir}/"
    )


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
