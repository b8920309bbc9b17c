"""The three models of the ``sweep_experts`` chapter
(:mod:`moecl_lib.claims.sweep_experts`) over every ``M``: the ideal MoE (exact
expectation), the learning phase followed by specialised routing (Monte-Carlo, checked
against the exact expectation given its routing) and Algorithm 1, with the parameters
and the configurations they run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moecl_lib.analysis import calibration
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import forced
from moecl_lib.linear.engine import simulate
from moecl_lib.linear.tasks import cluster_assignment, make_task_pool
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import moe_exact_given_routing, unit_signal_directions

FloatArray = NDArray[np.floating]


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


def base_config(p: Params, M: int, n_runs: int) -> ExperimentConfig:
    """The setting's configuration with ``M`` experts and ``n_runs`` runs."""
    return calibration.setting_config(
        p.setting, M, T=p.T, n_runs=n_runs, seed=p.seed, **p.overrides
    )


@dataclass
class Model:
    """One model over every ``M``: its rows, the pool-error curves per run or pool
    ``(R, T)`` and the model gap per run or pool (the bootstrap resamples these)."""

    rows: dict[int, ModelRow]
    pools: dict[int, FloatArray]
    Delta: FloatArray


def _groups_for(N: int, M: int) -> NDArray[np.integer]:
    """Task groups of the forced routing: ``min(M, N)`` clusters of the ``N`` tasks."""
    return cluster_assignment(N, min(M, N))


def ideal_model(p: Params, base: ExperimentConfig, configs: dict[str, Any]) -> Model:
    """1. Ideal MoE: the exact expectation per pool of ``n_pools_exact`` pools."""
    N, s, T = base.n_tasks, base.s, p.T
    pool_x = make_task_pool(
        base.replace(n_runs=p.n_pools_exact), np.random.default_rng(p.seed)
    )
    vh_x = unit_signal_directions(pool_x)
    Delta_pools = theory.pool_moments(pool_x.W)[1]
    ideal: dict[int, ModelRow] = {}
    ideal_pool: dict[int, FloatArray] = {}
    for M in p.experts:
        ex = tm.oracle_moe_exact(pool_x.W, vh_x, s, T, M, cluster_of=_groups_for(N, M))
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
    return Model(ideal, ideal_pool, Delta_pools)


def _phase_row(
    p: Params, base: ExperimentConfig, M: int, t0: int
) -> tuple[ModelRow, FloatArray, FloatArray]:
    """2. The learning phase for one ``M``: forced routing random until ``t0``,
    specialised afterwards; its row (with the check against the exact expectation
    given the routing), pool-error curves and model gap per run."""
    cfg = base.replace(n_experts=M)
    sim = forced.simulate_specialised(
        cfg, t0=t0, task_group=_groups_for(base.n_tasks, M)
    )
    cond = moe_exact_given_routing(
        sim.pool.W,
        unit_signal_directions(sim.pool),
        base.s,
        sim.tasks.astype(int),
        sim.experts.astype(int),
        M,
    )
    Delta_r = theory.pool_moments(sim.pool.W)[1]
    dG, dF = mean_se(sim.G - cond.G), mean_se(sim.F - cond.F)
    ok_G = bool(
        abs(dG[0][-1]) < p.z_tolerance * dG[1][-1] + p.abs_tolerance * Delta_r.mean()
    )
    ok_F = bool(
        abs(dF[0][-1]) < p.z_tolerance * dF[1][-1] + p.abs_tolerance * Delta_r.mean()
    )
    Gp = sim.G_pool.mean(0)
    G = mean_se(sim.G)
    row = ModelRow(
        M,
        float(G[0][-1]),
        float(np.nanmean(sim.F[:, -1])),
        float(Gp[-1]),
        float(tm.convergence_round(Gp, p.eps * Delta_r.mean())),
        G[0],
        float(G[1][-1]),
        {"t0": t0, "ok_G": ok_G, "ok_F": ok_F},
    )
    row.extra["G_T_run"] = sim.G[:, -1].copy()
    return row, sim.G_pool, Delta_r


def phase_model(
    p: Params, base: ExperimentConfig, T1: dict[int, int], configs: dict[str, Any]
) -> tuple[Model, bool]:
    """2. Learning phase (``t0 = T1(M)`` or ``t1_per_expert * M``), then specialised
    routing, for every ``M``; also whether every ``M`` agrees with its exact
    expectation given the routing."""
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
        phase[M], phase_pool[M], Delta_r = _phase_row(p, base, M, t0)
        Delta_phase = Delta_r if Delta_phase is None else Delta_phase
        phase_ok = phase_ok and phase[M].extra["ok_G"] and phase[M].extra["ok_F"]
        configs[f"phase/M={M}"] = {
            **base.replace(n_experts=M).to_dict(),
            "model": "simulate_specialised",
            "t0": t0,
        }
    assert Delta_phase is not None
    return Model(phase, phase_pool, Delta_phase), phase_ok


def alg_model(p: Params, T1: dict[int, int], configs: dict[str, Any]) -> Model:
    """3. Algorithm 1 (the learned router) for every ``M``."""
    alg: dict[int, ModelRow] = {}
    alg_pool: dict[int, FloatArray] = {}
    Delta_alg = None
    for M in p.experts:
        cfg = base_config(p, M, p.alg1_runs)
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
    assert Delta_alg is not None
    return Model(alg, alg_pool, Delta_alg)
