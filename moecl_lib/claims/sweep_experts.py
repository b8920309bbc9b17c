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

**Where the parts are.** Parameters and the three models' simulations:
:mod:`moecl_lib.claims.sweep_models`; curve statistics shared with ``fig2_dynamics``
(bootstrap, slopes, convergence rounds): :mod:`moecl_lib.claims.curve_stats`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moecl_lib import figures as plotting
from moecl_lib.analysis import calibration
from moecl_lib.claims.curve_stats import (
    BOOT_SEED,
    boot_quantity,
    bootstrap_weights,
    censored_convergence,
    configs_text,
    ols_slope,
    spearman,
)
from moecl_lib.claims.estimators import reading_from
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.claims.sweep_models import (
    Model,
    ModelRow,
    Params,
    alg_model,
    base_config,
    ideal_model,
    phase_model,
)
from moecl_lib.theory import moe as tm

__all__ = [
    "BOOT_SEED",
    "CHAPTER",
    "CLAIM",
    "N_BOOT",
    "ROUND_FLOOR",
    "SLOPE_FLOOR",
    "Model",
    "ModelRow",
    "Params",
    "Result",
    "boot_quantity",
    "bootstrap_weights",
    "censored_convergence",
    "configs_text",
    "ols_slope",
    "plot",
    "reading_from",
    "run",
    "spearman",
]

CHAPTER = "sweep_experts"
CLAIM = "more_experts"
N_BOOT = 400
"""Bootstrap resamples for convergence rounds and slopes."""
ROUND_FLOOR = 3.0
"""Tolerance floor (rounds) of a convergence round. Needed where the bootstrap s.e. is 0
(every resample gives the same round, e.g. "not reached"); a few rounds of one threshold
crossing. The CPU-kernel variants of the quick profile moved no convergence round; other
seeds (all runs other draws) stayed within the tolerance."""
SLOPE_FLOOR = 0.3
"""Tolerance floor (rounds per expert) of a slope of convergence rounds (``ROUND_FLOOR``
over the M range)."""

FloatArray = NDArray[np.floating]


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


def _trend(
    p: Params,
    big: list[int],
    tag: str,
    model: Model,
    n: int,
    label: str,
    quantities: list[Quantity],
) -> Quantity:
    """Convergence rounds per ``M >= N`` (appended to ``quantities``) and their slope
    on ``M``, with bootstrap s.e. over the ``n`` runs or pools."""
    T = p.T
    wb = bootstrap_weights(n, N_BOOT, p.seed)
    thr = p.eps * model.Delta.mean()
    pools = model.pools
    t_full = np.array([censored_convergence(pools[M].mean(0), thr, T) for M in big])
    t_boot = np.stack(
        [
            censored_convergence(wb @ pools[M], p.eps * (wb @ model.Delta), T)
            for M in big
        ],
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


def _ideal_phase_quantities(
    p: Params, N: int, big: list[int], ideal: Model, phase: Model
) -> tuple[list[Quantity], Quantity]:
    """Quantities of the ideal MoE and the learning phase; also the ideal MoE's slope
    (a reading)."""
    quantities: list[Quantity] = []
    q_ideal = _trend(p, big, "ideal", ideal, p.n_pools_exact, "ideal MoE", quantities)
    quantities.append(q_ideal)
    for M in p.experts:
        if M < N:
            quantities.append(
                Quantity(
                    f"ideal_Gpool_T_M{M}",
                    ideal.rows[M].Gpool_T,
                    0.0,
                    p.n_pools_exact,
                    "exact",
                    label=f"ideal MoE: pool error at T, M={M} < N (floor)",
                )
            )
    quantities.append(
        Quantity(
            "Delta_exact",
            float(ideal.Delta.mean()),
            0.0,
            p.n_pools_exact,
            "exact",
            label="mean model gap of the ideal-MoE pools",
        )
    )
    quantities.append(
        _trend(p, big, "phase", phase, p.n_runs, "learning phase", quantities)
    )
    for M in p.experts:
        quantities.append(
            estimate(
                f"phase_G_T_M{M}",
                phase.rows[M].extra["G_T_run"],
                label=f"learning phase: G_T, M={M}",
            )
        )
    return quantities, q_ideal


def _alg_quantities(
    p: Params, N: int, big: list[int], alg: Model
) -> tuple[list[Quantity], Quantity, Quantity]:
    """Quantities of Algorithm 1; also its slope and ``G_T(4N) - G_T(2N)`` (both
    readings)."""
    T = p.T
    quantities: list[Quantity] = []
    q_alg = _trend(p, big, "alg", alg, p.alg1_runs, "Algorithm 1", quantities)
    quantities.append(q_alg)
    t_alg = [
        float(censored_convergence(alg.pools[M].mean(0), p.eps * alg.Delta.mean(), T))
        for M in big
    ]
    wb = bootstrap_weights(p.alg1_runs, N_BOOT, p.seed)
    t_alg_boot = np.stack(
        [
            censored_convergence(wb @ alg.pools[M], p.eps * (wb @ alg.Delta), T)
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
                alg.rows[M].extra["G_T_run"],
                label=f"Algorithm 1: G_T, M={M}",
            )
        )
    q_nb = estimate(
        "alg_G_T_4N_minus_2N",
        alg.rows[4 * N].extra["G_T_run"] - alg.rows[2 * N].extra["G_T_run"],
        label=f"Algorithm 1: G_T(M={4 * N}) - G_T(M={2 * N}) (paired)",
    )
    quantities.append(q_nb)
    return quantities, q_alg, q_nb


def _readings(
    N: int, q_ideal: Quantity, q_alg: Quantity, q_nb: Quantity
) -> tuple[Reading, ...]:
    """The three ``more_experts`` readings (module docstring)."""
    return (
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


def run(p: Params = Params()) -> Result:
    """Run the three models and derive the quantities and the ``more_experts``
    readings."""
    start = time.perf_counter()
    base = base_config(p, 1, p.n_runs)
    N = base.n_tasks
    if 2 * N not in p.experts or 4 * N not in p.experts:
        raise ValueError(f"experts={p.experts} must contain 2N={2 * N} and 4N={4 * N}")
    big = [M for M in p.experts if M >= N]
    rho = tm.update_factor(base.d, base.s, base.signal != "none")
    T1 = {
        M: (
            0
            if M == 1
            else calibration.setting_config(p.setting, M, **p.overrides).T1_value
        )
        for M in p.experts
    }
    configs: dict[str, Any] = {}
    ideal = ideal_model(p, base, configs)
    phase, phase_ok = phase_model(p, base, T1, configs)
    alg = alg_model(p, T1, configs)
    q1, q_ideal = _ideal_phase_quantities(p, N, big, ideal, phase)
    q2, q_alg, q_nb = _alg_quantities(p, N, big, alg)
    for tab in (phase.rows, alg.rows):
        for r in tab.values():
            r.extra.pop("G_T_run")
    return Result(
        params=p,
        N=N,
        rho=rho,
        T1=T1,
        Delta_exact=float(ideal.Delta.mean()),
        ideal=ideal.rows,
        phase=phase.rows,
        alg=alg.rows,
        quantities=q1 + q2,
        checks=[ClaimCheck(CLAIM, p.setting, _readings(N, q_ideal, q_alg, q_nb))],
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
