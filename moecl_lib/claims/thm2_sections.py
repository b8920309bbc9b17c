"""The simulated sections of the Theorem 2 chapter
(:mod:`moecl_lib.claims.thm2_moe_few_experts`): parameters, configurations, the shared
pool and its floors, the ideal MoE, Algorithm 1 and the chapter's :class:`Result`.

1. *floors* (:func:`pool_floors`) of the shared pool (:func:`simulate_shared_pool`);
2. *ideal MoE* (:func:`simulate_ideal`): forced cluster routing on that pool, with the
   exact expectation;
3. *Algorithm 1* (:func:`simulate_alg1`): the learned router, with the exact
   expectation given its realised routing and the cluster purity after ``T2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moecl_lib.analysis import calibration
from moecl_lib.analysis import routing as diagnostics
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

CHAPTER = "thm2_moe_few_experts"


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    computation parameter)."""

    setting: str = "calibrated"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    n_clusters: int = 2
    cluster_spread: float | None = None
    experts: tuple[int, ...] = (2, 4)
    T: int = 300
    n_runs: int = 300
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

    @property
    def clustering(self) -> dict[str, Any]:
        return {"n_clusters": self.n_clusters, "cluster_spread": self.cluster_spread}


# ------------------------------------------------------------------------------ configs


def configs(p: Params) -> dict[str, ExperimentConfig]:
    """Every configuration the chapter runs (forced-routing simulations ignore the
    router fields)."""
    base = calibration.setting_config(
        p.setting,
        1,
        T=p.T,
        n_runs=p.n_runs,
        seed=p.seed,
        shared_pool=True,
        **p.clustering,
        **p.overrides,
    )
    out = {"ideal|M=1": base}
    out.update({f"ideal|M={M}": base.replace(n_experts=M) for M in p.experts})
    out.update(
        {
            f"alg1|M={M}": calibration.setting_config(
                p.setting,
                M,
                T=p.alg1_T,
                n_runs=p.alg1_runs,
                seed=p.seed,
                **p.clustering,
                **p.overrides,
            )
            for M in (1, *p.experts)
        }
    )
    return out


# ------------------------------------------------------------------------------- result


@dataclass
class Alg1:
    """Section 3, one ``M``: Algorithm-1 result, exact curves given its routing, cluster
    purity per run."""

    res: SimulationResult
    cond: ExactCurves
    cluster_purity: np.ndarray


@dataclass
class Result(ChapterResult):
    """Output of :func:`moecl_lib.claims.thm2_moe_few_experts.run`: data for the
    figures, quantities, claim check and configurations."""

    chapter = CHAPTER

    params: Params
    cluster_of: list[int]
    floors: dict[str, tuple[float, float]]  # name -> (G_inf, F_inf) of the shared pool
    sim: dict[int, Any]  # section 2 simulations (M = 1: engine)
    exact: dict[int, Any]
    alg: dict[int, Alg1]
    floor_single_alg1: np.ndarray  # exact floors per Algorithm-1 pool
    floor_moe_alg1: np.ndarray
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    def rows_floors(self) -> list[dict[str, Any]]:
        return [
            {"floor": k, "G_inf": v[0], "F_inf": v[1]} for k, v in self.floors.items()
        ]

    def rows_ideal(self) -> list[dict[str, Any]]:
        """Section 2 table at the checked rounds."""
        return ideal_rows(self.sim, self.exact, self.params.check_rounds, self.params.T)

    def rows_alg1(self) -> list[dict[str, Any]]:
        rows = []
        for M, a in self.alg.items():
            r = a.res
            rows.append(
                clean_row(
                    {
                        "M": M,
                        "G_T": float(r.G[:, -1].mean()),
                        "G_T_cond": float(np.mean(a.cond.G[:, -1])),
                        "F_T": float(r.F[:, -1].mean()),
                        "F_T_cond": float(np.mean(a.cond.F[:, -1])),
                        "Gpool_T": float(r.G_pool[:, -1].mean()),
                        "cluster_purity": float(np.nanmean(a.cluster_purity))
                        if M > 1
                        else math.nan,
                        "T2_median": float(np.median(r.T2)) if M > 1 else 0.0,
                    }
                )
            )
        return rows


def _cluster_purity(
    res: SimulationResult, cluster_of: np.ndarray, n_clusters: int
) -> np.ndarray:
    """Per-run purity of the post-``T2`` routing with tasks merged into their clusters
    (NaN if never frozen)."""
    rm = diagnostics.result_routing_matrix(
        res, after=np.maximum(res.T2, 0)
    )  # (R, M, N)
    rm_k = np.stack(
        [rm[:, :, cluster_of == k].sum(-1) for k in range(n_clusters)], -1
    )  # (R, M, K)
    pur = diagnostics.routing_purity(rm_k)
    return np.where(res.T2 >= 0, pur, np.nan)


@dataclass
class SharedPool:
    """Sections 1-2: the single expert's run on the shared pool, the pool's first
    ground truths ``W0``, unit signal directions ``vh0`` and cluster labels."""

    res_single: SimulationResult
    W0: np.ndarray
    vh0: np.ndarray | None
    cluster_of: np.ndarray


def simulate_shared_pool(base: ExperimentConfig) -> SharedPool:
    """Simulate the single expert on the shared pool of ``base``."""
    res_single = simulate(base)
    vh = unit_signal_directions(res_single.pool)
    return SharedPool(
        res_single=res_single,
        W0=res_single.pool.W[0],
        vh0=None if vh is None else vh[0],
        cluster_of=np.asarray(res_single.pool.cluster_of, dtype=int),
    )


def pool_floors(
    pool: SharedPool, base: ExperimentConfig
) -> dict[str, tuple[float, float]]:
    """Section 1: ``(G_inf, F_inf)`` of the shared pool, SPEC closed form and exact, for
    the single expert and for cluster-specialised experts."""
    W0, vh0, cl, s = pool.W0, pool.vh0, pool.cluster_of, base.s
    r_iso = 1 - s / base.d
    one = np.zeros(base.n_tasks, int)
    spec_single, spec_moe = (
        float(tm.cluster_floor(W0, one)),
        float(tm.cluster_floor(W0, cl)),
    )
    ex_single = tm.cluster_floors_exact(W0, vh0, s, one)
    ex_moe = tm.cluster_floors_exact(W0, vh0, s, cl)
    return {
        "single: SPEC/Prop.4 (Delta)": (spec_single, (1 - r_iso) * spec_single),
        "single: exact": (float(ex_single[0]), float(ex_single[1])),
        "MoE: SPEC formula": (spec_moe, (1 - r_iso) * spec_moe),
        "MoE: exact": (float(ex_moe[0]), float(ex_moe[1])),
    }


def simulate_ideal(
    p: Params, cfgs: Mapping[str, ExperimentConfig], pool: SharedPool
) -> tuple[dict[int, Any], dict[int, Any]]:
    """Section 2: simulations and exact curves per ``M`` (``M = 1``: the single
    expert), forced cluster routing on the shared pool."""
    base = cfgs["ideal|M=1"]
    W0, vh0, s, T = pool.W0, pool.vh0, base.s, base.T
    sim: dict[int, Any] = {1: pool.res_single}
    exact: dict[int, Any] = {1: single_expert_exact(W0, vh0, s, T)}
    for M in p.experts:
        sim[M] = forced.simulate_specialised(cfgs[f"ideal|M={M}"])
        if not np.allclose(sim[M].pool.W[0], W0):
            raise AssertionError("the ideal-MoE simulations must share one pool")
        exact[M] = tm.oracle_moe_exact(W0, vh0, s, T, M, cluster_of=pool.cluster_of)
    return sim, exact


def simulate_alg1(
    p: Params, cfgs: Mapping[str, ExperimentConfig], cl: np.ndarray
) -> dict[int, Alg1]:
    """Section 3: Algorithm 1 per ``M`` (``M = 1``: the single expert), the exact curves
    given each realised routing and the cluster purity after ``T2``."""
    s = cfgs["ideal|M=1"].s
    alg: dict[int, Alg1] = {}
    for M in (1, *p.experts):
        cfg = cfgs[f"alg1|M={M}"]
        res = simulate(cfg)
        vh3 = unit_signal_directions(res.pool)
        cond = moe_exact_given_routing(
            res.pool.W, vh3, s, res.tasks.astype(int), res.experts.astype(int), M
        )
        cp = (
            _cluster_purity(res, cl, p.n_clusters)
            if M > 1
            else np.full(cfg.n_runs, np.nan)
        )
        alg[M] = Alg1(res=res, cond=cond, cluster_purity=cp)
    return alg
