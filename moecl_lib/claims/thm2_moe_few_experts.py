"""Theorem 2 (claim ``thm2``): with fewer experts than tasks the floor shrinks to the
within-cluster gap.

**What the paper states** (SPEC §6.7; content [V], form [R-L]): with ``M < N`` experts
and tasks that form clusters of similar tasks, experts specialise on clusters,
forgetting stays bounded and the errors converge to a floor set by the within-cluster
gaps instead of the single expert's full model gap.

**What this module runs** (formulas: this project's derivations, [D], book page
*Derivations for the MoE*); the tasks form ``n_clusters`` clusters (spread
``cluster_spread``, default ``sigma0^1.5``, SPEC A6):

1. *floors* of the shared pool of section 2: the SPEC closed form
   (``theory_moe.cluster_floor``, exact for isotropic columns) and the exact stationary
   value for the simulated generator (``theory_moe.cluster_floors_exact``), for the
   single expert and for cluster-specialised experts;
2. *ideal MoE*: forced cluster routing from round 1 (no router), one shared pool,
   ``M = 1`` and every ``M`` in ``experts``, against the exact expectation
   (``theory_moe.oracle_moe_exact``);
3. *Algorithm 1*: the learned router of the named ``setting`` (``calibrated`` [C] or
   ``recalled`` [R-L]) for ``M = 1`` and every ``M`` in ``experts`` (``alg1_runs`` runs,
   one pool per run, the same pools for every ``M``), against the exact expectation
   given the realised routing; the floors are averaged over these pools.

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck`, setting = ``setting``;
each must clear its threshold by 2 s.e.; a reading over several ``M`` is the one with
the least margin, named in its statement):

1. ``ideal_floor``: ideal MoE, ``|G_T(M) / G_inf - 1| <= 0.1`` for every ``M``
   (``G_inf``: the exact within-cluster floor of the shared pool): the errors converge
   to the within-cluster floor;
2. ``floor_is_gap``: ``|mean G_inf / mean Delta_within - 1| <= 0.1`` over the
   Algorithm-1 pools (``Delta_within``: the SPEC within-cluster model gap): the floor is
   the within-cluster gap;
3. ``floor_below_single``: ``mean G_inf / mean G_inf(single) <= 0.5`` over the same
   pools: the within-cluster floor is well below the single expert's;
4. ``alg1_G``: Algorithm 1, ``G_T(M) / G_T(single) <= 1`` for every ``M`` (beats the
   single expert);
5. ``alg1_F``: Algorithm 1, ``F_T(M) / F_T(single) <= 1`` for every ``M`` (forgetting
   bounded below the single expert's);
6. ``alg1_floor``: Algorithm 1, largest ``M``: ``G_T / G_inf <= 1.5`` (paired over
   pools): the learned router approaches the within-cluster floor.

**Quantities.** As in :mod:`moecl_lib.claims.thm1_moe_many_experts`: means over runs
with their s.e., ratios with delta-method s.e. (paired where the samples share runs or
pools), deterministic numbers of the shared pool as ``kind="exact"``, the companion's
agreement checks as ``agree_*`` (below 1 = agreement within ``z_tolerance`` s.e.
+ ``abs_tolerance x Delta_single``; s.e. ``1 / z_tolerance``). ``cluster_purity``:
purity of the post-``T2`` routing matrix with tasks merged into their clusters (1
= every expert serves one cluster); the routing fractions carry the tolerance floor
``FRACTION_FLOOR`` of the thm1 module.

**Conventions.** Round ``t`` has index ``t - 1``; ``F_1`` is NaN; curves as in
:mod:`moecl_lib.linear.engine`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis import calibration
from moecl_lib.analysis import routing as diagnostics
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.estimators import least_margin, nanmean0, paired_ratio
from moecl_lib.claims.prop4_single_expert import (
    agreement,
    agreement_quantity,
    independent_ratio,
)
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.claims.thm1_moe_many_experts import (
    FRACTION_FLOOR,
    _clean,
    config_lines,
)
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
CLAIM = "thm2"
FLOOR_TOL = 0.10
"""Relative agreement asked of a floor: ``|ratio - 1| <= FLOOR_TOL``."""
SINGLE_RATIO = 0.5
"""The within-cluster floor is at most this fraction of the single expert's."""
ALG1_FLOOR_RATIO = 1.5
"""Algorithm 1, largest ``M``: ``G_T`` at most this multiple of the within-cluster
floor."""

__all__ = [
    "CHAPTER",
    "CLAIM",
    "Params",
    "Result",
    "config_lines",
    "configs",
    "prose",
    "run",
    "plot_ideal",
    "plot_alg1",
]


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
    """Output of :func:`run`: data for the figures, quantities, claim check and
    configurations."""

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
        rows = []
        for M, sim in self.sim.items():
            (G, Gse), (F, _) = mean_se(sim.G), mean_se(sim.F)
            ex = self.exact[M]
            for t in (t for t in self.params.check_rounds if t <= self.params.T):
                rows.append(
                    _clean(
                        {
                            "M": M,
                            "t": t,
                            "G_sim": G[t - 1],
                            "G_se": Gse[t - 1],
                            "G_exact": ex.G[t - 1],
                            "F_sim": F[t - 1],
                            "F_exact": ex.F[t - 1],
                        }
                    )
                )
        return rows

    def rows_alg1(self) -> list[dict[str, Any]]:
        rows = []
        for M, a in self.alg.items():
            r = a.res
            rows.append(
                _clean(
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


def run(params: Params = Params()) -> Result:
    """Run the three sections and derive the quantities and the Theorem 2 claim
    check."""
    start = time.perf_counter()
    p = params
    cfgs = configs(p)
    z = p.z_tolerance
    base = cfgs["ideal|M=1"]
    n_tasks, s, T = base.n_tasks, base.s, base.T
    r_iso = 1 - s / base.d
    q: list[Quantity] = []

    # 1. floors of the shared pool
    res_single = simulate(base)
    W0 = res_single.pool.W[0]
    cl = np.asarray(res_single.pool.cluster_of, dtype=int)
    vh = unit_signal_directions(res_single.pool)
    vh0 = None if vh is None else vh[0]
    one = np.zeros(n_tasks, int)
    spec_single, spec_moe = (
        float(tm.cluster_floor(W0, one)),
        float(tm.cluster_floor(W0, cl)),
    )
    ex_single = tm.cluster_floors_exact(W0, vh0, s, one)
    ex_moe = tm.cluster_floors_exact(W0, vh0, s, cl)
    floors: dict[str, tuple[float, float]] = {
        "single: SPEC/Prop.4 (Delta)": (spec_single, (1 - r_iso) * spec_single),
        "single: exact": (float(ex_single[0]), float(ex_single[1])),
        "MoE: SPEC formula": (spec_moe, (1 - r_iso) * spec_moe),
        "MoE: exact": (float(ex_moe[0]), float(ex_moe[1])),
    }
    G_floor_1 = floors["single: exact"][0]
    G_floor_moe = floors["MoE: exact"][0]
    for key, name in (
        ("single: SPEC/Prop.4 (Delta)", "single_spec"),
        ("single: exact", "single_exact"),
        ("MoE: SPEC formula", "moe_spec"),
        ("MoE: exact", "moe_exact"),
    ):
        q += [
            Quantity(
                f"G_floor_{name}",
                floors[key][0],
                kind="exact",
                label=f"G floor, {key} (shared pool)",
            ),
            Quantity(
                f"F_floor_{name}",
                floors[key][1],
                kind="exact",
                label=f"F floor, {key} (shared pool)",
            ),
        ]

    # 2. ideal MoE (forced cluster routing)
    slack = p.abs_tolerance * G_floor_1
    rounds = [t for t in p.check_rounds if t <= T]
    sim: dict[int, Any] = {1: res_single}
    exact: dict[int, Any] = {1: single_expert_exact(W0, vh0, s, T)}
    for M in p.experts:
        sim[M] = forced.simulate_specialised(cfgs[f"ideal|M={M}"])
        if not np.allclose(sim[M].pool.W[0], W0):
            raise AssertionError("the ideal-MoE simulations must share one pool")
        exact[M] = tm.oracle_moe_exact(W0, vh0, s, T, M, cluster_of=cl)
    ideal_floor: dict[int, Quantity] = {}
    for M, sm in sim.items():
        ex = exact[M]
        q += [
            estimate(
                f"G_T_ideal_M{M}",
                sm.G[:, -1],
                label=f"G_T, ideal MoE M={M} (simulation)",
            ),
            estimate(
                f"F_T_ideal_M{M}",
                sm.F[:, -1],
                label=f"F_T, ideal MoE M={M} (simulation)",
            ),
            Quantity(
                f"G_T_ideal_exact_M{M}",
                float(ex.G[-1]),
                kind="exact",
                label=f"exact E[G_T], M={M}",
            ),
            Quantity(
                f"F_T_ideal_exact_M{M}",
                float(ex.F[-1]),
                kind="exact",
                label=f"exact E[F_T], M={M}",
            ),
            agreement_quantity(
                f"agree_ideal_M{M}",
                max(
                    agreement(getattr(sm, k), getattr(ex, k), rounds, z, slack)
                    for k in ("G", "F", "G_pool")
                ),
                z,
                sm.G.shape[0],
                f"ideal MoE M={M}: max |sim - exact| / tolerance",
            ),
        ]
        if M == 1:
            continue
        q.append(
            Quantity(
                f"rate_M{M}",
                float(ex.rate[0]),
                kind="exact",
                label=f"per-round decay factor of a cluster's experts, M={M}",
            )
        )
        g = estimate("g", sm.G[:, -1])
        ideal_floor[M] = Quantity(
            f"G_over_floor_ideal_M{M}",
            g.value / G_floor_moe,
            g.se / G_floor_moe,
            g.n,
            label=f"ideal MoE: G_T(M={M}) / within-cluster floor",
        )
        q += [
            ideal_floor[M],
            independent_ratio(
                f"G_ratio_ideal_M{M}",
                sm.G[:, -1],
                res_single.G[:, -1],
                label=f"ideal MoE: G_T(M={M}) / G_T(single)",
            ),
        ]

    # 3. Algorithm 1
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
    a1 = alg[1].res
    pools = a1.pool
    if not np.array_equal(np.asarray(pools.cluster_of), cl):
        raise AssertionError("the cluster labels must be the same in every section")
    vh_p = unit_signal_directions(pools)
    floor_single = tm.cluster_floors_exact(pools.W, vh_p, s, one)[0]
    floor_moe = tm.cluster_floors_exact(pools.W, vh_p, s, cl)[0]
    gap_within = tm.cluster_floor(pools.W, cl)
    floor_is_gap = paired_ratio(
        "floor_over_within_gap",
        floor_moe,
        gap_within,
        label="exact within-cluster floor / SPEC within-cluster gap "
        "(Algorithm-1 pools)",
    )
    floor_vs_single = paired_ratio(
        "floor_moe_over_single",
        floor_moe,
        floor_single,
        label="within-cluster floor / single expert's floor (Algorithm-1 pools)",
    )
    q += [
        estimate(
            "floor_single_alg1",
            floor_single,
            label="single expert's exact floor (Algorithm-1 pools)",
        ),
        estimate(
            "floor_moe_alg1",
            floor_moe,
            label="exact within-cluster floor (Algorithm-1 pools)",
        ),
        estimate(
            "within_gap_alg1",
            gap_within,
            label="SPEC within-cluster gap (Algorithm-1 pools)",
        ),
        floor_is_gap,
        floor_vs_single,
    ]
    slack3 = p.abs_tolerance * float(floor_single.mean())
    rounds3 = [t for t in p.alg1_check_rounds if t <= p.alg1_T]
    alg_G: dict[int, Quantity] = {}
    alg_F: dict[int, Quantity] = {}
    alg_floor: dict[int, Quantity] = {}
    for M, a in alg.items():
        r = a.res
        if not np.allclose(r.pool.W, pools.W):
            raise AssertionError("every Algorithm-1 M must use the same pools")
        q += [
            estimate(f"G_T_alg1_M{M}", r.G[:, -1], label=f"G_T, Algorithm 1, M={M}"),
            estimate(f"F_T_alg1_M{M}", r.F[:, -1], label=f"F_T, Algorithm 1, M={M}"),
            estimate(
                f"Gpool_T_alg1_M{M}",
                r.G_pool[:, -1],
                label=f"G^pool_T, Algorithm 1, M={M}",
            ),
            agreement_quantity(
                f"agree_alg1_M{M}",
                max(
                    agreement(getattr(r, k), getattr(a.cond, k), rounds3, z, slack3)
                    for k in ("G", "F")
                ),
                z,
                r.G.shape[0],
                f"Algorithm 1 M={M}: max |sim - exact given the routing| / tolerance",
            ),
        ]
        if M == 1:
            continue
        alg_G[M] = paired_ratio(
            f"G_ratio_alg1_M{M}",
            r.G[:, -1],
            a1.G[:, -1],
            label=f"Algorithm 1: G_T(M={M}) / G_T(single)",
        )
        alg_F[M] = paired_ratio(
            f"F_ratio_alg1_M{M}",
            r.F[:, -1],
            a1.F[:, -1],
            label=f"Algorithm 1: F_T(M={M}) / F_T(single)",
        )
        alg_floor[M] = paired_ratio(
            f"G_over_floor_alg1_M{M}",
            r.G[:, -1],
            floor_moe,
            label=f"Algorithm 1: G_T(M={M}) / within-cluster floor",
        )
        q += [
            estimate(
                f"cluster_purity_alg1_M{M}",
                a.cluster_purity,
                floor=FRACTION_FLOOR,
                label=f"cluster purity after T2, M={M}",
            ),
            estimate(
                f"frozen_alg1_M{M}",
                (r.T2 >= 0).astype(float),
                floor=FRACTION_FLOOR,
                label=f"fraction of runs frozen, M={M}",
            ),
            alg_G[M],
            alg_F[M],
            alg_floor[M],
        ]

    big = max(p.experts)
    fl = alg_floor[big]
    pct = f"{FLOOR_TOL:.0%}"
    readings = (
        least_margin(
            "ideal_floor",
            "ideal MoE converges to the within-cluster floor: |G_T(M) / G_inf - 1|",
            ideal_floor,
            FLOOR_TOL,
            absolute=True,
            center=1.0,
        ),
        Reading(
            "floor_is_gap",
            f"the floor is the within-cluster gap (within {pct}, mean over the "
            "Algorithm-1 pools): |G_inf / Delta_within - 1|",
            abs(floor_is_gap.value - 1),
            FLOOR_TOL,
            floor_is_gap.se,
            "<=",
        ),
        Reading(
            "floor_below_single",
            "the within-cluster floor is well below the single expert's: "
            "G_inf / G_inf(single)",
            floor_vs_single.value,
            SINGLE_RATIO,
            floor_vs_single.se,
            "<=",
        ),
        least_margin(
            "alg1_G",
            "Algorithm 1 beats the single expert: G_T(M) / G_T(single)",
            alg_G,
            1.0,
        ),
        least_margin(
            "alg1_F",
            "Algorithm 1 keeps forgetting below the single expert's: F_T(M) / "
            "F_T(single)",
            alg_F,
            1.0,
        ),
        Reading(
            "alg1_floor",
            f"Algorithm 1 approaches the floor, M = {big}: G_T / G_inf",
            fl.value,
            ALG1_FLOOR_RATIO,
            fl.se,
            "<=",
        ),
    )
    checks = [ClaimCheck(CLAIM, p.setting, readings)]
    return Result(
        params=p,
        cluster_of=cl.tolist(),
        floors=floors,
        sim=sim,
        exact=exact,
        alg=alg,
        floor_single_alg1=floor_single,
        floor_moe_alg1=floor_moe,
        quantities=q,
        checks=checks,
        configs={k: c.to_dict() for k, c in cfgs.items()},
        wall_time_s=time.perf_counter() - start,
        seeds=[p.seed],
    )


# -------------------------------------------------------------------------------- prose


def prose(result: Result) -> dict[str, str]:
    """Sentences of the Reading paragraph whose wording depends on the run, by glue
    key."""
    out: dict[str, str] = {}
    agree = [q for q in result.quantities if q.name.startswith("agree_")]
    worst = max(agree, key=lambda x: x.value)
    out["thm2_agree_sentence"] = (
        f"the largest agreement statistic of the chapter is {worst.value:.2f} "
        f"({worst.label}); "
        + (
            "below 1: every checked round agrees within the tolerance"
            if worst.value < 1
            else (
                "above 1: at least one checked round departs from the exact expectation"
            )
        )
    )
    parts = []
    for M in result.params.experts:
        g = result.quantity(f"G_over_floor_alg1_M{M}")
        c = result.quantity(f"cluster_purity_alg1_M{M}")
        parts.append(
            f"M = {M} ends at {g.value:.2f} ± {g.se:.2f} times the floor "
            f"(cluster purity {c.value:.2f})"
        )
    out["thm2_alg1_sentence"] = "; ".join(parts)
    return out


# ------------------------------------------------------------------------------ figures


def plot_ideal(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 2 figure (simulation bands, exact curves, both floors) and its CSV
    columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    t = np.arange(1, p.T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": t}
    for M, sm in result.sim.items():
        lab = "single expert" if M == 1 else f"MoE M={M}"
        for ax, key in [(axes[0], "F"), (axes[1], "G")]:
            m, se = mean_se(getattr(sm, key))
            plotting.band(ax, t, m, se, label=lab, z=2.0, color=plotting.m_color(M))
            ax.plot(t, getattr(result.exact[M], key), "k--", lw=0.8)
            csv[f"{key}_mean_M{M}"], csv[f"{key}_se_M{M}"] = m, se
            csv[f"{key}_exact_M{M}"] = getattr(result.exact[M], key)
    single, moe = result.floors["single: exact"], result.floors["MoE: exact"]
    for ax, i in [(axes[1], 0), (axes[0], 1)]:
        ax.axhline(single[i], color="grey", ls=":")
        ax.axhline(moe[i], color="C3", ls=":")
    axes[1].plot([], [], color="grey", ls=":", label="single-expert floor")
    axes[1].plot([], [], color="C3", ls=":", label="within-cluster floor")
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    n_tasks = len(result.cluster_of)
    fig.suptitle(
        f"Ideal MoE with M < N={n_tasks}, K={p.n_clusters} clusters; dashed: exact "
        "(ours)",
        fontsize=10,
    )
    return fig, csv


def plot_alg1(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 3 figure (Algorithm 1 per M, exact given the routing, both floors) and
    its CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    ta = np.arange(1, p.alg1_T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": ta}
    for M, a in result.alg.items():
        lab = "single expert" if M == 1 else f"MoE M={M}"
        for ax, key in [(axes[0], "F"), (axes[1], "G")]:
            m, se = mean_se(getattr(a.res, key))
            cm = nanmean0(getattr(a.cond, key))
            plotting.band(ax, ta, m, se, label=lab, z=2.0)
            ax.plot(ta, cm, "k--", lw=0.7)
            csv[f"{key}_mean_M{M}"], csv[f"{key}_se_M{M}"], csv[f"{key}_cond_M{M}"] = (
                m,
                se,
                cm,
            )
    axes[1].axhline(
        float(result.floor_single_alg1.mean()),
        color="grey",
        ls=":",
        label="single-expert floor",
    )
    axes[1].axhline(
        float(result.floor_moe_alg1.mean()),
        color="C3",
        ls=":",
        label="within-cluster floor",
    )
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        "Algorithm 1 on clustered tasks; dashed: exact given the realised routing",
        fontsize=10,
    )
    return fig, csv
