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

**Where the parts are.** Parameters, configurations, simulations and the
:class:`Result`: :mod:`moecl_lib.claims.thm2_sections`; figures and run-dependent
sentences: :mod:`moecl_lib.claims.thm2_report`; what is shared with the Theorem 1
chapter: :mod:`moecl_lib.claims.moe_theorems`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from moecl_lib.claims.estimators import least_margin, paired_ratio
from moecl_lib.claims.moe_theorems import (
    alg1_member_quantities,
    check_same_pools,
    ideal_member_quantities,
)
from moecl_lib.claims.prop4_single_expert import independent_ratio
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.claims.thm1_moe_many_experts import FRACTION_FLOOR, config_lines
from moecl_lib.claims.thm2_report import plot_alg1, plot_ideal, prose
from moecl_lib.claims.thm2_sections import (
    CHAPTER,
    Alg1,
    Params,
    Result,
    configs,
    pool_floors,
    simulate_alg1,
    simulate_ideal,
    simulate_shared_pool,
)
from moecl_lib.config import ExperimentConfig
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import unit_signal_directions

CLAIM = "thm2"
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
    "Alg1",
    "Params",
    "Result",
    "config_lines",
    "configs",
    "prose",
    "run",
    "plot_ideal",
    "plot_alg1",
]


# --------------------------------------------------------------------------- quantities


def _floor_quantities(floors: dict[str, tuple[float, float]]) -> list[Quantity]:
    """Section 1: the G and F floors of the shared pool (``kind="exact"``)."""
    q: list[Quantity] = []
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
    return q


def _ideal_quantities(
    p: Params,
    sim: dict[int, Any],
    exact: dict[int, Any],
    floors: dict[str, tuple[float, float]],
    z: float,
) -> tuple[list[Quantity], dict[int, Quantity]]:
    """Section 2: per-``M`` estimates and agreement, decay factors, and ``G_T`` over the
    within-cluster floor (the quantities reading 1 uses, keyed by ``M``)."""
    G_floor_1 = floors["single: exact"][0]
    G_floor_moe = floors["MoE: exact"][0]
    slack = p.abs_tolerance * G_floor_1
    rounds = [t for t in p.check_rounds if t <= p.T]
    q: list[Quantity] = []
    ideal_floor: dict[int, Quantity] = {}
    for M, sm in sim.items():
        ex = exact[M]
        q += ideal_member_quantities(M, sm, ex, rounds, z, slack)
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
                sim[1].G[:, -1],
                label=f"ideal MoE: G_T(M={M}) / G_T(single)",
            ),
        ]
    return q, ideal_floor


@dataclass
class PoolFloors:
    """Section 3: exact floors of the Algorithm-1 pools (per pool) and the two ratios
    readings 2 and 3 use."""

    single: np.ndarray
    moe: np.ndarray
    floor_is_gap: Quantity
    floor_vs_single: Quantity


def _pool_floors(
    alg: dict[int, Alg1], cl: np.ndarray, base: ExperimentConfig
) -> tuple[list[Quantity], PoolFloors]:
    """Section 3: the single expert's and the within-cluster floor of every
    Algorithm-1 pool and the SPEC within-cluster gap."""
    pools = alg[1].res.pool
    if not np.array_equal(np.asarray(pools.cluster_of), cl):
        raise AssertionError("the cluster labels must be the same in every section")
    vh_p = unit_signal_directions(pools)
    s, one = base.s, np.zeros(base.n_tasks, int)
    floor_single = tm.cluster_floors_exact(pools.W, vh_p, s, one)[0]
    floor_moe = tm.cluster_floors_exact(pools.W, vh_p, s, cl)[0]
    gap_within = tm.cluster_floor(pools.W, cl)
    pf = PoolFloors(
        single=floor_single,
        moe=floor_moe,
        floor_is_gap=paired_ratio(
            "floor_over_within_gap",
            floor_moe,
            gap_within,
            label="exact within-cluster floor / SPEC within-cluster gap "
            "(Algorithm-1 pools)",
        ),
        floor_vs_single=paired_ratio(
            "floor_moe_over_single",
            floor_moe,
            floor_single,
            label="within-cluster floor / single expert's floor (Algorithm-1 pools)",
        ),
    )
    q = [
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
        pf.floor_is_gap,
        pf.floor_vs_single,
    ]
    return q, pf


def _alg1_quantities(
    p: Params, alg: dict[int, Alg1], pf: PoolFloors, z: float
) -> tuple[list[Quantity], dict[str, dict[int, Quantity]]]:
    """Section 3: per-``M`` estimates and agreement, cluster purity, frozen runs and
    the ratios the readings use (``"G"``, ``"F"``, ``"floor"``, keyed by ``M``)."""
    a1 = alg[1].res
    slack3 = p.abs_tolerance * float(pf.single.mean())
    rounds3 = [t for t in p.alg1_check_rounds if t <= p.alg1_T]
    ratios: dict[str, dict[int, Quantity]] = {"G": {}, "F": {}, "floor": {}}
    q: list[Quantity] = []
    check_same_pools(alg)
    for M, a in alg.items():
        r = a.res
        q += alg1_member_quantities(M, r, a.cond, rounds3, z, slack3)
        if M == 1:
            continue
        ratios["G"][M] = paired_ratio(
            f"G_ratio_alg1_M{M}",
            r.G[:, -1],
            a1.G[:, -1],
            label=f"Algorithm 1: G_T(M={M}) / G_T(single)",
        )
        ratios["F"][M] = paired_ratio(
            f"F_ratio_alg1_M{M}",
            r.F[:, -1],
            a1.F[:, -1],
            label=f"Algorithm 1: F_T(M={M}) / F_T(single)",
        )
        ratios["floor"][M] = paired_ratio(
            f"G_over_floor_alg1_M{M}",
            r.G[:, -1],
            pf.moe,
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
            ratios["G"][M],
            ratios["F"][M],
            ratios["floor"][M],
        ]
    return q, ratios


def _readings(
    p: Params,
    ideal_floor: dict[int, Quantity],
    pf: PoolFloors,
    ratios: dict[str, dict[int, Quantity]],
) -> tuple[Reading, ...]:
    """The six Theorem 2 readings (module docstring)."""
    big = max(p.experts)
    fl = ratios["floor"][big]
    pct = f"{FLOOR_TOL:.0%}"
    return (
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
            abs(pf.floor_is_gap.value - 1),
            FLOOR_TOL,
            pf.floor_is_gap.se,
            "<=",
        ),
        Reading(
            "floor_below_single",
            "the within-cluster floor is well below the single expert's: "
            "G_inf / G_inf(single)",
            pf.floor_vs_single.value,
            SINGLE_RATIO,
            pf.floor_vs_single.se,
            "<=",
        ),
        least_margin(
            "alg1_G",
            "Algorithm 1 beats the single expert: G_T(M) / G_T(single)",
            ratios["G"],
            1.0,
        ),
        least_margin(
            "alg1_F",
            "Algorithm 1 keeps forgetting below the single expert's: F_T(M) / "
            "F_T(single)",
            ratios["F"],
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


def run(params: Params = Params()) -> Result:
    """Run the three sections and derive the quantities and the Theorem 2 claim
    check."""
    start = time.perf_counter()
    p = params
    cfgs = configs(p)
    z = p.z_tolerance
    base = cfgs["ideal|M=1"]
    pool = simulate_shared_pool(base)
    floors = pool_floors(pool, base)
    sim, exact = simulate_ideal(p, cfgs, pool)
    alg = simulate_alg1(p, cfgs, pool.cluster_of)
    q = _floor_quantities(floors)
    q_ideal, ideal_floor = _ideal_quantities(p, sim, exact, floors, z)
    q_floors, pf = _pool_floors(alg, pool.cluster_of, base)
    q_alg, ratios = _alg1_quantities(p, alg, pf, z)
    readings = _readings(p, ideal_floor, pf, ratios)
    return Result(
        params=p,
        cluster_of=pool.cluster_of.tolist(),
        floors=floors,
        sim=sim,
        exact=exact,
        alg=alg,
        floor_single_alg1=pf.single,
        floor_moe_alg1=pf.moe,
        quantities=q + q_ideal + q_floors + q_alg,
        checks=[ClaimCheck(CLAIM, p.setting, readings)],
        configs={k: c.to_dict() for k, c in cfgs.items()},
        wall_time_s=time.perf_counter() - start,
        seeds=[p.seed],
    )
