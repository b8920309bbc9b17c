"""Chapter ``sweep_experts``: more experts need more rounds and may not improve
performance (claim ``more_experts``).

**What is computed.** For ``M`` from 1 to ``4N`` at a fixed horizon ``T``, three models
of the linear MoE:

1. *ideal MoE* -- specialised routing from round 1, exact expectation
   (:func:`moecl_lib.theory.moe.oracle_moe_exact`) over ``n_pools_exact`` task pools (no
   simulation); with ``M < N`` the tasks are split into ``M`` blocks;
2. *learning phase + specialisation* -- forced routing, uniformly random for
   ``t0 = T1(M)`` rounds (or ``t1_per_expert * M``) and specialised afterwards
   (Monte-Carlo, ``n_runs`` runs), checked against its exact expectation given the
   realised routing (:func:`moecl_lib.theory.exact.moe_exact_given_routing`);
3. *Algorithm 1* -- the setting's learned router, frozen by the termination rule after
   ``T1(M)`` (``alg1_runs`` runs).

**Convergence round** (this project's definition, ``[C]``): with the pool-averaged error
``G_pool`` and the mean model gap ``Delta`` of the same runs,
``t_conv = min{t : mean G_pool(u) <= eps * mean Delta for all t <= u <= T}``, computed
on the mean curve over runs (:func:`moecl_lib.theory.moe.convergence_round`). A curve
that is still above the threshold at ``T`` is *not reached*; in the trend statistic it
counts as ``T + 1`` (a lower bound, stated).

**Readings of ``more_experts``** (setting = the ``setting`` parameter; thresholds ours):

* ``ideal_trend``: the ideal MoE's convergence round grows with ``M`` over ``M >= N``:
  least-squares slope of ``t_conv`` on ``M`` >= 0 rounds per expert (the ``1/M``
  training share of each expert; no router, no ``T1``);
* ``alg1_trend``: the same slope for Algorithm 1 >= 0 (``T1 = 30 M`` is part of
  Algorithm 1 here; "not reached" = ``T + 1``). No monotonicity reading: a trend
  statistic over all ``M >= N``, so a non-monotone sweep shows up as a small or negative
  slope;
* ``alg1_not_better``: Algorithm 1's ``G_T(4N) - G_T(2N) >= 0`` (the largest ``M`` is
  not better at ``T``; paired over runs, which share their task pools across ``M``).

Each reading holds/fails by the 2-s.e. rule of :mod:`moecl_lib.claims.rule`. The
learning-phase model's trend is recorded but is no reading: its learning phase
``t0 = T1(M)`` grows with ``M`` by construction.

**Standard errors.** Means over runs: sample s.e. Convergence rounds and slopes:
bootstrap over runs (pools for the ideal MoE), ``N_BOOT`` resamples drawn by
:func:`bootstrap_weights` from ``(BOOT_SEED, seed)``, the same resampled run indices for
every ``M`` (runs with the same index share their pool). Convergence rounds are integers
from a threshold crossing, so they carry an absolute tolerance floor (``ROUND_FLOOR``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from moecl_lib import figures as plotting
from moecl_lib.analysis import calibration
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import forced
from moecl_lib.linear.engine import simulate
from moecl_lib.linear.tasks import cluster_assignment, make_task_pool
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import moe_exact_given_routing, unit_signal_directions

CHAPTER = "sweep_experts"
CLAIM = "more_experts"
N_BOOT = 400
"""Bootstrap resamples for convergence rounds and slopes."""
BOOT_SEED = 20250
"""First entry of the bootstrap generator's seed ``(BOOT_SEED, seed)``."""
ROUND_FLOOR = 3.0
"""Tolerance floor (rounds) of a convergence round. Needed where the bootstrap s.e. is 0
(every resample gives the same round, e.g. "not reached"); a few rounds of one threshold
crossing. The CPU-kernel variants of the quick profile moved no convergence round; other
seeds (all runs other draws) stayed within the tolerance."""
SLOPE_FLOOR = 0.3
"""Tolerance floor (rounds per expert) of a slope of convergence rounds (``ROUND_FLOOR``
over the M range)."""

FloatArray = NDArray[np.floating]


# ----------------------------------------------------------------------- shared helpers
def bootstrap_weights(n: int, n_boot: int, seed: int) -> FloatArray:
    """``(n_boot, n)`` resampling weights (multinomial counts / ``n``): ``w @ x`` is a
    resample's mean."""
    rng = np.random.default_rng((BOOT_SEED, int(seed)))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n


def ols_slope(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """Least-squares slope of ``y`` (..., K) on ``x`` (K,), along the last axis."""
    xv = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    xc = xv - xv.mean()
    return ((yv - yv.mean(-1, keepdims=True)) * xc).sum(-1) / (xc**2).sum()


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); 0 when ``x`` or ``y`` is
    constant."""
    rx, ry = rankdata(np.asarray(x, dtype=float)), rankdata(np.asarray(y, dtype=float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def censored_convergence(curves: ArrayLike, threshold: ArrayLike, T: int) -> FloatArray:
    """:func:`moecl_lib.theory.moe.convergence_round`, with "not reached" counted as
    ``T + 1``."""
    t = tm.convergence_round(curves, threshold)
    return np.where(np.isnan(t), float(T + 1), t)


def boot_quantity(
    name: str,
    value: float,
    boot: ArrayLike,
    n: int,
    *,
    floor: float = 0.0,
    label: str = "",
) -> Quantity:
    """A statistic of the full sample with the bootstrap standard deviation as its
    s.e."""
    b = np.asarray(boot, dtype=float)
    return Quantity(
        name, float(value), float(b.std(ddof=1)), n, "estimate", floor, label
    )


def reading_from(
    q: Quantity, name: str, statement: str, threshold: float, sense: str = ">="
) -> Reading:
    """A reading on a recorded quantity (its value and s.e.)."""
    return Reading(name, statement, q.value, threshold, q.se, sense)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- the chapter
@dataclass(frozen=True)
class Params:
    """The notebook's parameters (defaults = quick profile)."""

    setting: str = "calibrated"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    experts: tuple[int, ...] = (1, 3, 6, 12, 24)
    T: int = 1000
    n_pools_exact: int = 4
    n_runs: int = 80
    t1_per_expert: float | None = None
    alg1_runs: int = 160
    eps: float = 0.1
    z_tolerance: float = 4.0
    abs_tolerance: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "experts", tuple(int(m) for m in self.experts))
        object.__setattr__(self, "overrides", dict(self.overrides))


@dataclass
class ModelRow:
    """One model at one ``M``: end-of-horizon errors, convergence round and the mean
    curve."""

    M: int
    G_T: float
    F_T: float
    Gpool_T: float
    t_conv: float
    G: FloatArray
    G_T_se: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result(ChapterResult):
    """One chapter run: per-model data, quantities, checks, configurations."""

    chapter = CHAPTER

    params: Params
    N: int
    rho: float
    T1: dict[int, int]
    Delta_exact: float
    ideal: dict[int, ModelRow]
    phase: dict[int, ModelRow]
    alg: dict[int, ModelRow]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    phase_exact_ok: bool
    wall_time_s: float

    def config_text(self) -> str:
        """Every configuration the chapter ran: shared fields once, then the fields that
        vary per model/M."""
        return configs_text(self.configs)

    def table(self, model: str) -> str:
        """Printable table of one model (``ideal``, ``phase`` or ``alg``); ``t_conv``
        nan = not reached."""
        rows = []
        for M, r in getattr(self, model).items():
            row: dict[str, Any] = {"M": M, **{k: v for k, v in r.extra.items()}}
            row.update(
                {"G_T": r.G_T, "F_T": r.F_T, "Gpool_T": r.Gpool_T, "t_conv": r.t_conv}
            )
            rows.append(
                {
                    k: (0.0 if isinstance(v, float) and abs(v) < 1e-12 else v)
                    for k, v in row.items()
                }
            )
        return plotting.table(rows, digits=3)


def _base(p: Params, M: int, n_runs: int) -> ExperimentConfig:
    return calibration.setting_config(
        p.setting, M, T=p.T, n_runs=n_runs, seed=p.seed, **p.overrides
    )


def run(p: Params = Params()) -> Result:
    """Run the three models and derive the quantities and the ``more_experts``
    readings."""
    start = time.perf_counter()
    base = _base(p, 1, p.n_runs)
    N, s, T = base.n_tasks, base.s, p.T
    if 2 * N not in p.experts or 4 * N not in p.experts:
        raise ValueError(f"experts={p.experts} must contain 2N={2 * N} and 4N={4 * N}")
    big = [M for M in p.experts if M >= N]
    rho = tm.update_factor(base.d, s, base.signal != "none")
    T1 = {
        M: (
            0
            if M == 1
            else calibration.setting_config(p.setting, M, **p.overrides).T1_value
        )
        for M in p.experts
    }
    configs: dict[str, Any] = {}
    quantities: list[Quantity] = []

    def groups_for(M: int) -> NDArray[np.integer]:
        return cluster_assignment(N, min(M, N))

    # 1. ideal MoE: exact expectation per pool
    pool_x = make_task_pool(
        base.replace(n_runs=p.n_pools_exact), np.random.default_rng(p.seed)
    )
    vh_x = unit_signal_directions(pool_x)
    Delta_pools = theory.pool_moments(pool_x.W)[1]
    ideal: dict[int, ModelRow] = {}
    ideal_pool: dict[int, FloatArray] = {}
    for M in p.experts:
        ex = tm.oracle_moe_exact(pool_x.W, vh_x, s, T, M, cluster_of=groups_for(M))
        Gp = ex.G_pool.mean(0)
        ideal_pool[M] = ex.G_pool
        ideal[M] = ModelRow(
            M,
            float(ex.G[:, -1].mean()),
            float(ex.F[:, -1].mean()),
            float(Gp[-1]),
            float(tm.convergence_round(Gp, p.eps * Delta_pools.mean())),
            ex.G.mean(0),
        )
    configs["ideal"] = {
        **base.replace(n_runs=p.n_pools_exact).to_dict(),
        "model": "oracle_moe_exact",
        "experts": list(p.experts),
    }

    # 2. learning phase (t0 = T1(M) or t1_per_expert * M), then specialised routing
    phase: dict[int, ModelRow] = {}
    phase_pool: dict[int, FloatArray] = {}
    phase_ok = True
    Delta_phase = None
    for M in p.experts:
        t0 = (
            0
            if M == 1
            else (
                T1[M]
                if p.t1_per_expert is None
                else int(math.ceil(p.t1_per_expert * M))
            )
        )
        cfg = base.replace(n_experts=M)
        sim = forced.simulate_specialised(cfg, t0=t0, task_group=groups_for(M))
        cond = moe_exact_given_routing(
            sim.pool.W,
            unit_signal_directions(sim.pool),
            s,
            sim.tasks.astype(int),
            sim.experts.astype(int),
            M,
        )
        Delta_r = theory.pool_moments(sim.pool.W)[1]
        Delta_phase = Delta_r if Delta_phase is None else Delta_phase
        dG, dF = mean_se(sim.G - cond.G), mean_se(sim.F - cond.F)
        ok_G = bool(
            abs(dG[0][-1])
            < p.z_tolerance * dG[1][-1] + p.abs_tolerance * Delta_r.mean()
        )
        ok_F = bool(
            abs(dF[0][-1])
            < p.z_tolerance * dF[1][-1] + p.abs_tolerance * Delta_r.mean()
        )
        phase_ok = phase_ok and ok_G and ok_F
        Gp = sim.G_pool.mean(0)
        phase_pool[M] = sim.G_pool
        G = mean_se(sim.G)
        phase[M] = ModelRow(
            M,
            float(G[0][-1]),
            float(np.nanmean(sim.F[:, -1])),
            float(Gp[-1]),
            float(tm.convergence_round(Gp, p.eps * Delta_r.mean())),
            G[0],
            float(G[1][-1]),
            {"t0": t0, "ok_G": ok_G, "ok_F": ok_F},
        )
        phase[M].extra["G_T_run"] = sim.G[:, -1].copy()
        configs[f"phase/M={M}"] = {
            **cfg.to_dict(),
            "model": "simulate_specialised",
            "t0": t0,
        }

    # 3. Algorithm 1
    alg: dict[int, ModelRow] = {}
    alg_pool: dict[int, FloatArray] = {}
    Delta_alg = None
    for M in p.experts:
        cfg = _base(p, M, p.alg1_runs)
        res = simulate(cfg)
        Delta_r = theory.pool_moments(res.pool.W)[1]
        Delta_alg = Delta_r if Delta_alg is None else Delta_alg
        Gp = res.G_pool.mean(0)
        alg_pool[M] = res.G_pool
        G = mean_se(res.G)
        frozen = res.T2 >= 0
        alg[M] = ModelRow(
            M,
            float(G[0][-1]),
            float(res.F[:, -1].mean()),
            float(Gp[-1]),
            float(tm.convergence_round(Gp, p.eps * Delta_r.mean())),
            G[0],
            float(G[1][-1]),
            {
                "T1": T1[M],
                "T2_median": float(np.median(res.T2[frozen]))
                if frozen.any()
                else math.nan,
            },
        )
        alg[M].extra["G_T_run"] = res.G[:, -1].copy()
        configs[f"algorithm1/M={M}"] = cfg.to_dict()

    # ---- quantities
    def trend(
        tag: str, pools: dict[int, FloatArray], Delta: FloatArray, n: int, label: str
    ) -> Quantity:
        wb = bootstrap_weights(n, N_BOOT, p.seed)
        thr = p.eps * Delta.mean()
        t_full = np.array([censored_convergence(pools[M].mean(0), thr, T) for M in big])
        t_boot = np.stack(
            [censored_convergence(wb @ pools[M], p.eps * (wb @ Delta), T) for M in big],
            -1,
        )
        for i, M in enumerate(big):
            quantities.append(
                boot_quantity(
                    f"{tag}_t_conv_M{M}",
                    t_full[i],
                    t_boot[:, i],
                    n,
                    floor=ROUND_FLOOR,
                    label=f"{label}: convergence round, M={M} (not reached = T+1)",
                )
            )
        return boot_quantity(
            f"{tag}_slope",
            float(ols_slope(big, t_full)),
            ols_slope(big, t_boot),
            n,
            floor=SLOPE_FLOOR,
            label=f"{label}: slope of the convergence round on M (M >= N)",
        )

    q_ideal = trend("ideal", ideal_pool, Delta_pools, p.n_pools_exact, "ideal MoE")
    quantities.append(q_ideal)
    for M in p.experts:
        if M < N:
            quantities.append(
                Quantity(
                    f"ideal_Gpool_T_M{M}",
                    ideal[M].Gpool_T,
                    0.0,
                    p.n_pools_exact,
                    "exact",
                    label=f"ideal MoE: pool error at T, M={M} < N (floor)",
                )
            )
    quantities.append(
        Quantity(
            "Delta_exact",
            float(Delta_pools.mean()),
            0.0,
            p.n_pools_exact,
            "exact",
            label="mean model gap of the ideal-MoE pools",
        )
    )
    assert Delta_phase is not None and Delta_alg is not None
    q_phase = trend("phase", phase_pool, Delta_phase, p.n_runs, "learning phase")
    quantities.append(q_phase)
    for M in p.experts:
        quantities.append(
            estimate(
                f"phase_G_T_M{M}",
                phase[M].extra["G_T_run"],
                label=f"learning phase: G_T, M={M}",
            )
        )
    q_alg = trend("alg", alg_pool, Delta_alg, p.alg1_runs, "Algorithm 1")
    quantities.append(q_alg)
    t_alg = [
        float(censored_convergence(alg_pool[M].mean(0), p.eps * Delta_alg.mean(), T))
        for M in big
    ]
    wb = bootstrap_weights(p.alg1_runs, N_BOOT, p.seed)
    t_alg_boot = np.stack(
        [
            censored_convergence(wb @ alg_pool[M], p.eps * (wb @ Delta_alg), T)
            for M in big
        ],
        -1,
    )
    quantities.append(
        boot_quantity(
            "alg_rank_corr",
            spearman(big, t_alg),
            [spearman(big, row) for row in t_alg_boot],
            p.alg1_runs,
            floor=0.3,
            label="Algorithm 1: Spearman rank correlation of M and the convergence "
            "round (M >= N; recorded, not read)",
        )
    )
    for M in p.experts:
        quantities.append(
            estimate(
                f"alg_G_T_M{M}",
                alg[M].extra["G_T_run"],
                label=f"Algorithm 1: G_T, M={M}",
            )
        )
    q_nb = estimate(
        "alg_G_T_4N_minus_2N",
        alg[4 * N].extra["G_T_run"] - alg[2 * N].extra["G_T_run"],
        label=f"Algorithm 1: G_T(M={4 * N}) - G_T(M={2 * N}) (paired)",
    )
    quantities.append(q_nb)
    for tab in (phase, alg):
        for r in tab.values():
            r.extra.pop("G_T_run")

    readings = (
        reading_from(
            q_ideal,
            "ideal_trend",
            "ideal MoE (exact, no router): slope of the convergence round "
            "on M over M >= N (rounds per expert)",
            0.0,
        ),
        reading_from(
            q_alg,
            "alg1_trend",
            "Algorithm 1: slope of the convergence round on M over M >= N "
            "(rounds per expert; not reached = T+1)",
            0.0,
        ),
        reading_from(
            q_nb,
            "alg1_not_better",
            f"Algorithm 1: G_T(M={4 * N}) - G_T(M={2 * N})",
            0.0,
        ),
    )
    checks = [ClaimCheck(CLAIM, p.setting, readings)]
    return Result(
        params=p,
        N=N,
        rho=rho,
        T1=T1,
        Delta_exact=float(Delta_pools.mean()),
        ideal=ideal,
        phase=phase,
        alg=alg,
        quantities=quantities,
        checks=checks,
        configs=configs,
        phase_exact_ok=phase_ok,
        wall_time_s=time.perf_counter() - start,
    )


def plot(result: Result, out_dir: str) -> Any:
    """The three panels (G_T, F_T, convergence round vs M) for the three models; saves
    figure and CSV."""
    import matplotlib.pyplot as plt

    p, N = result.params, result.N
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    csv: dict[str, Any] = {"M": np.array(p.experts)}
    models = {
        "ideal": ("ideal MoE (exact)", result.ideal),
        "phase": ("learning phase + specialised (MC)", result.phase),
        "alg": ("Algorithm 1 (MC)", result.alg),
    }
    for key, (lab, tab) in models.items():
        for ax, col in zip(axes, ("G_T", "F_T", "t_conv")):
            y = np.array([getattr(tab[M], col) for M in p.experts], dtype=float)
            ax.plot(p.experts, y, "o-", label=lab)
            csv[f"{col}_{key}"] = y
    for ax in axes:
        ax.axvline(N, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("experts $M$ (dotted: $M=N$)")
        ax.set_xticks(list(p.experts))
        ax.set_xticklabels([str(M) for M in p.experts])
    axes[0].set_title(f"$G_T$ at $T$={p.T}")
    axes[1].set_title(f"$F_T$ at $T$={p.T}")
    axes[2].set_title(f"convergence round ($G^{{pool}}\\leq${p.eps}$\\Delta$)")
    axes[0].set_yscale("symlog", linthresh=1e-3)
    axes[0].set_ylabel("$G_T$")
    axes[1].set_ylabel("$F_T$")
    axes[2].set_ylabel("round")
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        fontsize=9,
    )
    plotting.save_figure(fig, out_dir, "sweep_experts")
    plotting.save_csv(out_dir, "sweep_experts", csv)
    return fig


def configs_text(configs: Mapping[str, Mapping[str, Any]]) -> str:
    """Shared fields of ``configs`` (name -> dict) once, then one line per configuration
    with the others."""
    names = list(configs)
    keys = sorted({k for c in configs.values() for k in c})
    shared = {
        k: configs[names[0]].get(k)
        for k in keys
        if all(k in configs[n] and configs[n][k] == configs[names[0]][k] for n in names)
    }
    lines = ["shared: " + ", ".join(f"{k}={v}" for k, v in shared.items())]
    for n in names:
        lines.append(
            f"{n}: "
            + ", ".join(f"{k}={v}" for k, v in configs[n].items() if k not in shared)
        )
    return "\n".join(lines)
