"""The three simulated sections of the Theorem 1 chapter
(:mod:`moecl_lib.claims.thm1_moe_many_experts`): parameters, configurations,
simulations, their data and the chapter's :class:`Result`.

1. *ideal MoE* (:func:`simulate_ideal`): forced specialised routing, one shared pool,
   against the exact expectation;
2. *specialisation at t0* (:func:`simulate_post`): random routing until ``t0``,
   specialised afterwards, against the conditional formula;
3. *Algorithm 1* (:func:`simulate_alg1`): the learned router of the setting, against
   the exact expectation given the realised routing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moecl_lib.analysis import calibration
from moecl_lib.analysis import routing as diagnostics
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.estimators import nanmean0
from moecl_lib.claims.moe_theorems import clean_row, ideal_rows
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import forced
from moecl_lib.linear.engine import SimulationResult, simulate
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import (
    ExactCurves,
    moe_exact_given_routing,
    single_expert_exact,
    unit_signal_directions,
)

CHAPTER = "thm1_moe_many_experts"


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    computation parameter)."""

    setting: str = "calibrated"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    experts: tuple[int, ...] = (6, 12, 24)
    ideal_signal: str = "random"
    T: int = 300
    n_runs: int = 300
    t0: int = 60
    M_post: int = 12
    seed: int = 0
    check_rounds: tuple[int, ...] = (2, 10, 50, 100, 200, 300)
    z_tolerance: float = 4.0
    abs_tolerance: float = 1e-3
    alg1_T: int = 800
    alg1_runs: int = 100
    alg1_check_rounds: tuple[int, ...] = (100, 400, 800)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))
        for name in ("experts", "check_rounds", "alg1_check_rounds"):
            object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))


# ------------------------------------------------------------------------------ configs


def base_config(p: Params) -> ExperimentConfig:
    """The setting's generator for the forced-routing sections (``M = 1``, one shared
    pool)."""
    return calibration.setting_config(
        p.setting,
        1,
        T=p.T,
        n_runs=p.n_runs,
        seed=p.seed,
        shared_pool=True,
        **p.overrides,
    )


def alg1_config(p: Params, M: int) -> ExperimentConfig:
    """The setting's Algorithm-1 configuration with ``M`` experts."""
    return calibration.setting_config(
        p.setting, M, T=p.alg1_T, n_runs=p.alg1_runs, seed=p.seed, **p.overrides
    )


def configs(p: Params) -> dict[str, ExperimentConfig]:
    """Every configuration the chapter runs (forced-routing simulations ignore the
    router fields)."""
    base = base_config(p)
    ideal = base.replace(signal=p.ideal_signal)
    out = {"ideal|M=1": ideal}
    out.update({f"ideal|M={M}": ideal.replace(n_experts=M) for M in p.experts})
    out["setting_generator"] = base.replace(T=1, n_runs=1)
    out[f"post_specialisation|M={p.M_post}"] = base.replace(
        n_experts=p.M_post, shared_pool=False
    )
    out.update({f"alg1|M={M}": alg1_config(p, M) for M in (1, *p.experts)})
    return out


# ------------------------------------------------------------------------------- result


@dataclass
class Ideal:
    """Section 1: simulations and exact curves per ``M`` (``M = 1`` is the single
    expert)."""

    sim: dict[int, Any]
    exact: dict[int, Any]
    G_floor: float
    F_floor: float
    rho: float
    aligned_max: tuple[
        float, float
    ]  # max_t E[G_t], max_t |E[F_t]| of the setting's generator, largest M


@dataclass
class Post:
    """Section 2: forced routing random until ``t0``, specialised afterwards."""

    sim: Any
    formula: dict[
        str, np.ndarray
    ]  # "G", "F" -> conditional formula per run, (R, T) (NaN before t0)
    c: np.ndarray  # pre-specialisation residual per run
    rounds: list[int]


@dataclass
class Alg1:
    """Section 3, one ``M``: Algorithm-1 result, exact curves given its routing,
    diagnostics."""

    res: SimulationResult
    cond: ExactCurves
    spec: diagnostics.Specialisation | None  # None for the single expert


@dataclass
class Result(ChapterResult):
    """Output of :func:`moecl_lib.claims.thm1_moe_many_experts.run`: data for the
    figures, quantities, claim check and configurations."""

    chapter = CHAPTER

    params: Params
    ideal: Ideal
    post: Post
    alg: dict[int, Alg1]
    floor_alg1: np.ndarray  # single expert's exact floor per Algorithm-1 pool
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    def rows_ideal(self) -> list[dict[str, Any]]:
        """Section 1 table at the checked rounds."""
        return ideal_rows(
            self.ideal.sim, self.ideal.exact, self.params.check_rounds, self.params.T
        )

    def rows_post(self) -> list[dict[str, Any]]:
        (G, _), (F, _) = mean_se(self.post.sim.G), mean_se(self.post.sim.F)
        form = {k: nanmean0(v) for k, v in self.post.formula.items()}
        return [
            clean_row(
                {
                    "t": t,
                    "G_sim": G[t - 1],
                    "G_formula": form["G"][t - 1],
                    "c_over_t": float(self.post.c.mean()) / t,
                    "F_sim": F[t - 1],
                    "F_formula": form["F"][t - 1],
                }
            )
            for t in self.post.rounds
        ]

    def rows_alg1(self) -> list[dict[str, Any]]:
        rows = []
        for M, a in self.alg.items():
            sp = a.spec.summary() if a.spec is not None else {}
            rows.append(
                clean_row(
                    {
                        "M": M,
                        "G_T": float(a.res.G[:, -1].mean()),
                        "G_T_cond": float(np.mean(a.cond.G[:, -1])),
                        "F_T": float(a.res.F[:, -1].mean()),
                        "F_T_cond": float(np.mean(a.cond.F[:, -1])),
                        "Gpool_T": float(a.res.G_pool[:, -1].mean()),
                        "purity": sp.get("purity_post", math.nan),
                        "coverage": sp.get("coverage", math.nan),
                        "T1": a.res.config.T1_value if M > 1 else 0,
                        "T2_median": sp.get("T2_median", 0.0),
                    }
                )
            )
        return rows


def simulate_ideal(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> Ideal:
    """Section 1: the single expert and the ideal MoE per ``M`` on one shared pool,
    their exact curves and floors."""
    base_ideal = cfgs["ideal|M=1"]
    s, T = base_ideal.s, base_ideal.T
    res_single = simulate(base_ideal)
    W0 = res_single.pool.W[0]
    vh = unit_signal_directions(res_single.pool)
    vh0 = None if vh is None else vh[0]
    sim: dict[int, Any] = {1: res_single}
    exact: dict[int, Any] = {1: single_expert_exact(W0, vh0, s, T)}
    for M in p.experts:
        sim[M] = forced.simulate_specialised(cfgs[f"ideal|M={M}"])
        if not np.allclose(sim[M].pool.W[0], W0):
            raise AssertionError("the ideal-MoE simulations must share one pool")
        exact[M] = tm.oracle_moe_exact(W0, vh0, s, T, M)
    G_floor, F_floor = tm.cluster_floors_exact(
        W0, vh0, s, np.zeros(base_ideal.n_tasks, int)
    )
    pool_set = simulate(cfgs["setting_generator"]).pool
    vh_set = unit_signal_directions(pool_set)
    ex_set = tm.oracle_moe_exact(
        pool_set.W[0], None if vh_set is None else vh_set[0], s, T, max(p.experts)
    )
    rho = tm.update_factor(base_ideal.d, s, p.ideal_signal != "none")
    return Ideal(
        sim=sim,
        exact=exact,
        G_floor=float(G_floor),
        F_floor=float(F_floor),
        rho=rho,
        aligned_max=(float(np.abs(ex_set.G).max()), float(np.nanmax(np.abs(ex_set.F)))),
    )


def simulate_post(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> Post:
    """Section 2: random routing until ``t0``, specialised afterwards, and the formula
    conditional on the state at ``t0``."""
    cfg2 = cfgs[f"post_specialisation|M={p.M_post}"]
    sim2 = forced.simulate_specialised(cfg2, t0=p.t0)
    vh2 = unit_signal_directions(sim2.pool)
    post = tm.post_specialisation_curves(
        sim2.w_t0,
        sim2.pool.W,
        vh2,
        cfg2.s,
        p.t0,
        p.T,
        sim2.expert_cluster,
        sim2.counts_t0,
        sim2.self_sum_t0,
    )
    c = tm.pre_specialisation_residual(
        sim2.counts_t0, sim2.pool.W, np.tile(sim2.expert_cluster, (cfg2.n_runs, 1))
    )
    rounds = sorted({p.t0 + 1, p.t0 + 10, p.t0 + 50, (p.t0 + p.T) // 2, p.T})
    rounds = [t for t in rounds if t <= p.T]
    return Post(sim=sim2, formula={"G": post.G, "F": post.F}, c=c, rounds=rounds)


def simulate_alg1(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> dict[int, Alg1]:
    """Section 3: Algorithm 1 per ``M`` (``M = 1``: the single expert) and the exact
    curves given each realised routing."""
    out = {}
    for M in (1, *p.experts):
        cfg = cfgs[f"alg1|M={M}"]
        res = simulate(cfg)
        vh = unit_signal_directions(res.pool)
        cond = moe_exact_given_routing(
            res.pool.W, vh, cfg.s, res.tasks.astype(int), res.experts.astype(int), M
        )
        spec = diagnostics.specialisation(res) if M > 1 else None
        out[M] = Alg1(res=res, cond=cond, spec=spec)
    return out
