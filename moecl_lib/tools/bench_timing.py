"""What ``moecl bench`` measures: timings, scaling sweeps, memory and the engine-versus-
reference check (overview in :mod:`moecl_lib.tools.bench`).

Every timing is the MINIMUM over repeats (the machine is shared); the reference
(:func:`moecl_lib.linear.reference.reference_simulate`) is timed on a few runs and
extrapolated linearly in R. The sizes of one benchmark run are a :class:`Plan`
(:func:`full_plan` or :func:`quick_plan`). Each measurement returns dict rows (one per
case), which :mod:`moecl_lib.tools.bench_report` writes and draws.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import draw_rounds, simulate
from moecl_lib.linear.reference import check_reference, reference_simulate
from moecl_lib.linear.streams import make_streams, task_pool

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

FIG2 = ExperimentConfig(n_tasks=6, n_experts=10, d=10, s=6, T=2000, n_runs=500)
"""The Figure-2 configuration (M is varied over :data:`FIG2_M`)."""
FIG2_M = (1, 5, 10, 20)
LARGE = ExperimentConfig(n_tasks=10, n_experts=40, d=200, s=20, T=1000, n_runs=100)
"""The large configuration of issue 7 (T and R are our choice)."""


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
    the large case (all with the default per-run random streams) and Figure 2 with the
    former shared stream."""
    cases = [(f"fig2 M={M}", plan.fig2.replace(n_experts=M)) for M in plan.fig2_M]
    m32 = 10 if 10 in plan.fig2_M else plan.fig2_M[-1]
    cases.append(
        (f"fig2 M={m32} f32", plan.fig2.replace(n_experts=m32, dtype="float32"))
    )  # reference: float64
    cases.append(("large", plan.large))
    m_last = plan.fig2_M[-1]  # one shared stream (moecl_lib.linear.streams)
    cases.append(
        (
            f"fig2 M={m_last} shared",
            plan.fig2.replace(n_experts=m_last, streams="shared"),
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
