"""Theorem 1 (claim ``thm1``): with at least as many experts as tasks the model-gap
floor disappears.

**What the paper states** (SPEC §6.6; content [V], details [R-L]): for ``M >= N`` (in
the paper ``M = Omega(N ln N)``) the MoE beats a single expert: after specialisation no
new forgetting arises (``F_t -> 0``), ``G_t`` decreases because the single expert's
model-gap floor disappears, and more experts make the convergence slower.

**What this module runs** (formulas: this project's derivations, [D], book page
*Derivations for the MoE*):

1. *ideal MoE*: forced specialised routing from round 1 (no router), one shared pool,
   signal variant ``ideal_signal``, ``M = 1`` and every ``M`` in ``experts``, against
   the exact expectation (``theory_moe.oracle_moe_exact``;
   ``theory_exact.single_expert_exact`` for ``M = 1``);
2. *specialisation at t0*: random routing for rounds ``1..t0``, specialised afterwards
   (``M = M_post``, one pool per run), against the formula conditional on the state at
   ``t0`` and its ``c/t`` tail;
3. *Algorithm 1*: the learned router of the named ``setting`` (``calibrated`` [C] or
   ``recalled`` [R-L], :mod:`moecl_lib.analysis.calibration`) for ``M = 1`` and every
   ``M`` in ``experts`` (``alg1_runs`` runs, one pool per run, the same pools for every
   ``M``), against the exact expectation given the realised routing.

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck`, setting = ``setting``;
each must clear its threshold by 2 s.e.; a reading over several ``M`` is the one with
the least margin, named in its statement):

1. ``ideal_G``: ideal MoE, ``G_T(M) / G_T(single) <= 0.1`` for every ``M`` (the floor
   disappears);
2. ``ideal_F``: ideal MoE, ``|F_T(M)| / F_T(single) <= 0.1`` for every ``M``
   (``F_t -> 0``);
3. ``post_G``: specialised from ``t0``: ``G_T / G_{t0+1} <= 0.5`` (``G_t`` decreases
   after specialisation);
4. ``post_F``: specialised from ``t0``: ``|F_T| / |F_{t0+1}| <= 0.5`` (forgetting
   fades);
5. ``alg1_G``: Algorithm 1, ``G_T(M) / G_T(single) <= 1`` for every ``M`` (beats the
   single expert);
6. ``alg1_F``: Algorithm 1, ``F_T(M) / F_T(single) <= 1`` for every ``M``;
7. ``alg1_pool``: Algorithm 1, ``M >= N ln N``: pool error of the current models
   ``G^pool_T <= 0.1 x`` the single expert's exact floor (the floor disappears);
8. ``alg1_G_decreases``: Algorithm 1, ``G_T / G_{T1} <= 1`` for every ``M`` with
   ``T1 < alg1_T``;
9. ``alg1_F_decreases``: Algorithm 1, ``F_T / F_{T1} <= 1`` likewise;
10. ``alg1_F_to_zero``: Algorithm 1, ``M >= N ln N`` with ``T1 < alg1_T``:
    ``(T-1) F_T / ((T1-1) F_{T1}) <= 1``. Since
    ``(t-1) F_t = t G_t - sum_{tau<=t} err_tau(tau)``, under a specialised routing (each
    expert sees only the tasks of its set) every later update lowers ``(t-1) F_t`` in
    expectation: what is left is the ``c/t`` tail of the arrivals before ``T2`` (section
    2), so ``F_t -> 0`` at least as fast as ``1/t``. An impure routing keeps a
    forgetting floor of its own and makes ``(t-1) F_t`` grow.

**Quantities.** Means over runs with their s.e.; ratios of means carry the delta-method
s.e. (paired when both come from the same runs or pools, e.g. every Algorithm-1 ``M``
shares the pools of its seed). Deterministic numbers (exact curves and floors of the
shared pool, decay factors) are ``kind="exact"``; the exact curves of the setting's
aligned generator, zero up to round-off, are ``kind="roundoff"``. The companion's own
agreement checks are ``agree_*``:
``max_t |mean(sim - exact)| / (z_tolerance s.e. + abs_tolerance x Delta_single)`` over
the checked rounds and the curves (below 1 = agreement), recorded with s.e.
``1 / z_tolerance``. Tolerance floors: :data:`ROUNDOFF_FLOOR` for the ideal-MoE
estimates (``G_T`` of round-off size), :data:`FRACTION_FLOOR` for the routing fractions
(purity, coverage, frozen runs).

**Conventions.** Round ``t`` has index ``t - 1``; ``F_1`` is NaN; curves as in
:mod:`moecl_lib.linear.engine` (``G_t`` arrival-averaged, ``G^pool_t`` pool-averaged
over the experts of each task's set).

**Where the parts are.** Parameters, configurations, simulations and the
:class:`Result`: :mod:`moecl_lib.claims.thm1_sections`; figures and run-dependent
sentences: :mod:`moecl_lib.claims.thm1_report`; what is shared with the Theorem 2
chapter: :mod:`moecl_lib.claims.moe_theorems`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moecl_lib.claims.estimators import (
    agreement,
    agreement_quantity,
    least_margin,
    paired_ratio,
)
from moecl_lib.claims.moe_theorems import (
    alg1_member_quantities,
    check_same_pools,
    ideal_member_quantities,
)
from moecl_lib.claims.prop4_single_expert import config_lines, independent_ratio
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.claims.thm1_report import plot_alg1, plot_ideal, plot_post, prose
from moecl_lib.claims.thm1_sections import (
    CHAPTER,
    Alg1,
    Ideal,
    Params,
    Post,
    Result,
    alg1_config,
    base_config,
    configs,
    simulate_alg1,
    simulate_ideal,
    simulate_post,
)
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import unit_signal_directions

CLAIM = "thm1"
IDEAL_RATIO = 0.1
"""Ideal MoE: ``G_T`` and ``|F_T|`` at most this fraction of the single expert's."""
POST_RATIO = 0.5
"""Specialised from ``t0``: ``G_T`` and ``|F_T|`` at most this fraction of their value
right after ``t0``."""
POOL_RATIO = 0.1
"""Algorithm 1 with ``M >= N ln N``: pool error at most this fraction of the single
expert's floor."""
FRACTION_FLOOR = 0.05
"""Absolute tolerance floor of the routing fractions (purity, coverage, frozen runs): a
fraction that is 1 in every run has s.e. 0, yet another floating-point path may send a
few of the runs through another near-tie of the router (5 % = 5 of 100 runs)."""

__all__ = [
    "CHAPTER",
    "CLAIM",
    "Alg1",
    "Ideal",
    "Params",
    "Post",
    "Result",
    "alg1_config",
    "base_config",
    "config_lines",
    "configs",
    "least_margin",
    "prose",
    "run",
    "plot_ideal",
    "plot_post",
    "plot_alg1",
]

ROUNDOFF_FLOOR = 1e-9
"""Absolute tolerance floor of the ideal-MoE estimates: ``G_T`` of the ideal MoE is
~1e-15 for small ``M`` (round-off of the simulated errors, with a round-off-sized s.e.);
1e-9 is far above round-off and far below any error level the chapter discusses (the
single expert's floor is ~2)."""


# --------------------------------------------------------------------------- quantities


def _ideal_quantities(
    p: Params, ideal: Ideal, z: float, slack: float
) -> tuple[list[Quantity], dict[int, Quantity], dict[int, Quantity]]:
    """Section 1: floors, per-``M`` estimates and agreement, and the ratios to the
    single expert that the readings use (``G``, ``F``, keyed by ``M``)."""
    rounds1 = [t for t in p.check_rounds if t <= p.T]
    q: list[Quantity] = [
        Quantity(
            "rho_ideal",
            ideal.rho,
            kind="exact",
            label="per-update factor rho (ideal signal variant)",
        ),
        Quantity(
            "G_floor_single_ideal",
            ideal.G_floor,
            kind="exact",
            label="single expert's exact floor of G_t (shared pool)",
        ),
        Quantity(
            "F_floor_single_ideal",
            ideal.F_floor,
            kind="exact",
            label="single expert's exact floor of F_t (shared pool)",
        ),
    ]
    ideal_G: dict[int, Quantity] = {}
    ideal_F: dict[int, Quantity] = {}
    s1 = ideal.sim[1]
    for M, sim in ideal.sim.items():
        ex = ideal.exact[M]
        q += ideal_member_quantities(
            M, sim, ex, rounds1, z, slack, floor=ROUNDOFF_FLOOR
        )
        if M > 1:
            q.append(
                Quantity(
                    f"rate_M{M}",
                    float(ex.rate[0]),
                    kind="exact",
                    label=f"per-round decay factor 1 - (1 - rho)/M, M={M}",
                )
            )
            ideal_G[M] = independent_ratio(
                f"G_ratio_ideal_M{M}",
                sim.G[:, -1],
                s1.G[:, -1],
                label=f"ideal MoE: G_T(M={M}) / G_T(single)",
                floor=ROUNDOFF_FLOOR,
            )
            ideal_F[M] = independent_ratio(
                f"F_ratio_ideal_M{M}",
                sim.F[:, -1],
                s1.F[:, -1],
                label=f"ideal MoE: F_T(M={M}) / F_T(single)",
                floor=ROUNDOFF_FLOOR,
            )
    q += list(ideal_G.values()) + list(ideal_F.values())
    q += [
        Quantity(
            "max_G_aligned",
            ideal.aligned_max[0],
            kind="roundoff",
            label=(
                "setting's aligned generator, ideal MoE: max_t E[G_t] (zero up to "
                "round-off)"
            ),
        ),
        Quantity(
            "max_F_aligned",
            ideal.aligned_max[1],
            kind="roundoff",
            label=(
                "setting's aligned generator, ideal MoE: max_t |E[F_t]| (zero up to "
                "round-off)"
            ),
        ),
    ]
    return q, ideal_G, ideal_F


def _post_quantities(
    p: Params, post: Post, z: float, slack: float
) -> tuple[list[Quantity], Quantity, Quantity]:
    """Section 2: estimates at ``t0 + 1`` and ``T``, the conditional formula, the
    ``c/t`` tail and agreement; also the two ratios the readings use
    (``G_T / G_(t0+1)``, ``F_T / F_(t0+1)``)."""
    s2, t0, T = post.sim, p.t0, p.T
    G_post = paired_ratio(
        "G_ratio_post", s2.G[:, -1], s2.G[:, t0], label=f"G_T / G_(t0+1), M={p.M_post}"
    )
    F_post = paired_ratio(
        "F_ratio_post", s2.F[:, -1], s2.F[:, t0], label=f"F_T / F_(t0+1), M={p.M_post}"
    )
    q = [
        estimate("G_t0p1_post", s2.G[:, t0], label="G_(t0+1), specialised from t0"),
        estimate("G_T_post", s2.G[:, -1], label="G_T, specialised from t0"),
        estimate("F_t0p1_post", s2.F[:, t0], label="F_(t0+1), specialised from t0"),
        estimate("F_T_post", s2.F[:, -1], label="F_T, specialised from t0"),
        estimate(
            "G_T_post_formula",
            post.formula["G"][:, -1],
            label="G_T, conditional formula",
        ),
        estimate("c_residual", post.c, label="pre-specialisation residual c"),
        paired_ratio(
            "TG_T_over_c",
            T * post.formula["G"][:, -1],
            post.c,
            label="T E[G_T] (formula) / c (the c/t tail)",
        ),
        G_post,
        F_post,
        paired_ratio(
            "tF_ratio_post",
            (T - 1) * s2.F[:, -1],
            t0 * s2.F[:, t0],
            label=(
                "(T-1) F_T / (t0 F_(t0+1)), specialised from t0 (<= 1: decay at "
                "least as 1/t)"
            ),
        ),
        agreement_quantity(
            "agree_post",
            max(
                agreement(getattr(s2, k), post.formula[k], post.rounds, z, slack)
                for k in ("G", "F")
            ),
            z,
            s2.G.shape[0],
            "specialised from t0: max |sim - conditional formula| / tolerance",
        ),
    ]
    return q, G_post, F_post


@dataclass
class Alg1Ratios:
    """Per-``M`` ratios of section 3 that the readings use (keyed by ``M``)."""

    G: dict[int, Quantity] = field(default_factory=dict)
    F: dict[int, Quantity] = field(default_factory=dict)
    pool: dict[int, Quantity] = field(default_factory=dict)  # M >= N ln N
    dec_G: dict[int, Quantity] = field(default_factory=dict)  # T1 < alg1_T
    dec_F: dict[int, Quantity] = field(default_factory=dict)
    rate_F: dict[int, Quantity] = field(default_factory=dict)  # both


def _router_quantities(
    p: Params, M: int, a: Alg1, a1: Alg1, floor_alg1: np.ndarray, ratios: Alg1Ratios
) -> list[Quantity]:
    """Section 3, one ``M > 1``: routing fractions, ratios to the single expert, to its
    floor (``M >= N ln N``) and to round ``T1`` (if ``T1 < alg1_T``); the ratios the
    readings use are added to ``ratios``."""
    r, r1 = a.res, a1.res
    n_tasks = r1.config.n_tasks
    spec = a.spec
    assert spec is not None
    q = [
        estimate(
            f"purity_alg1_M{M}",
            spec.purity_post,
            floor=FRACTION_FLOOR,
            label=f"routing purity after T2, M={M}",
        ),
        estimate(
            f"coverage_alg1_M{M}",
            spec.coverage,
            floor=FRACTION_FLOOR,
            label=f"coverage of the tasks, M={M}",
        ),
        estimate(
            f"frozen_alg1_M{M}",
            (r.T2 >= 0).astype(float),
            floor=FRACTION_FLOOR,
            label=f"fraction of runs frozen, M={M}",
        ),
    ]
    ratios.G[M] = paired_ratio(
        f"G_ratio_alg1_M{M}",
        r.G[:, -1],
        r1.G[:, -1],
        label=f"Algorithm 1: G_T(M={M}) / G_T(single)",
    )
    ratios.F[M] = paired_ratio(
        f"F_ratio_alg1_M{M}",
        r.F[:, -1],
        r1.F[:, -1],
        label=f"Algorithm 1: F_T(M={M}) / F_T(single)",
    )
    q += [ratios.G[M], ratios.F[M]]
    if M >= n_tasks * math.log(n_tasks):
        ratios.pool[M] = paired_ratio(
            f"Gpool_over_floor_alg1_M{M}",
            r.G_pool[:, -1],
            floor_alg1,
            label=f"Algorithm 1: G^pool_T / single floor, M={M}",
        )
        q.append(ratios.pool[M])
    T1 = r.config.T1_value
    if T1 < p.alg1_T:
        q += _decay_quantities(p, M, r, T1, ratios, M >= n_tasks * math.log(n_tasks))
    return q


def _decay_quantities(
    p: Params, M: int, r: Any, T1: int, ratios: Alg1Ratios, big: bool
) -> list[Quantity]:
    """Section 3, one ``M`` with ``T1 < alg1_T``: ``G_T / G_T1``, ``F_T / F_T1`` and the
    ``1/t`` decay ratios; ``big`` (``M >= N ln N``) makes the ``F`` rate a reading."""
    ratios.dec_G[M] = paired_ratio(
        f"G_decrease_alg1_M{M}",
        r.G[:, -1],
        r.G[:, T1 - 1],
        label=f"Algorithm 1: G_T / G_T1, M={M} (T1={T1})",
    )
    ratios.dec_F[M] = paired_ratio(
        f"F_decrease_alg1_M{M}",
        r.F[:, -1],
        r.F[:, T1 - 1],
        label=f"Algorithm 1: F_T / F_T1, M={M} (T1={T1})",
    )
    rate = paired_ratio(
        f"tF_ratio_alg1_M{M}",
        (p.alg1_T - 1) * r.F[:, -1],
        (T1 - 1) * r.F[:, T1 - 1],
        label=(f"Algorithm 1: (T-1) F_T / ((T1-1) F_T1), M={M} (1 = decay as 1/t)"),
    )
    if big:
        ratios.rate_F[M] = rate
    return [
        ratios.dec_G[M],
        ratios.dec_F[M],
        paired_ratio(
            f"tG_ratio_alg1_M{M}",
            p.alg1_T * r.G[:, -1],
            T1 * r.G[:, T1 - 1],
            label=f"Algorithm 1: T G_T / (T1 G_T1), M={M} (1 = decay as 1/t)",
        ),
        rate,
    ]


def _alg1_quantities(
    p: Params, alg: dict[int, Alg1], z: float
) -> tuple[list[Quantity], np.ndarray, Alg1Ratios]:
    """Section 3: the single expert's exact floor per pool, per-``M`` estimates and
    agreement, and the ratios the readings use."""
    a1 = alg[1].res
    floor_alg1 = tm.cluster_floors_exact(
        a1.pool.W,
        unit_signal_directions(a1.pool),
        a1.config.s,
        np.zeros(a1.config.n_tasks, int),
    )[0]
    q = [
        estimate(
            "floor_single_alg1",
            floor_alg1,
            label="single expert's exact floor (Algorithm-1 pools)",
        )
    ]
    slack3 = p.abs_tolerance * float(floor_alg1.mean())
    rounds3 = [t for t in p.alg1_check_rounds if t <= p.alg1_T]
    ratios = Alg1Ratios()
    check_same_pools(alg)
    for M, a in alg.items():
        r = a.res
        q += alg1_member_quantities(M, r, a.cond, rounds3, z, slack3)
        if M > 1:
            q += _router_quantities(p, M, a, alg[1], floor_alg1, ratios)
    return q, floor_alg1, ratios


# ----------------------------------------------------------------------------- readings


def _readings(
    p: Params,
    ideal_G: dict[int, Quantity],
    ideal_F: dict[int, Quantity],
    G_post: Quantity,
    F_post: Quantity,
    ratios: Alg1Ratios,
) -> list[Reading]:
    """The Theorem 1 readings (module docstring); the Algorithm-1 readings over a set
    of ``M`` appear only where that set is not empty."""
    readings = [
        least_margin(
            "ideal_G",
            "ideal MoE, the floor disappears: G_T(M) / G_T(single)",
            ideal_G,
            IDEAL_RATIO,
        ),
        least_margin(
            "ideal_F",
            "ideal MoE, F_t -> 0: |F_T(M)| / F_T(single)",
            ideal_F,
            IDEAL_RATIO,
            absolute=True,
        ),
        Reading(
            "post_G",
            f"specialised from t0 = {p.t0} (M = {p.M_post}), G_t decreases: G_T / "
            "G_(t0+1)",
            G_post.value,
            POST_RATIO,
            G_post.se,
            "<=",
        ),
        Reading(
            "post_F",
            f"specialised from t0 = {p.t0} (M = {p.M_post}), F_t fades: "
            "|F_T / F_(t0+1)|",
            abs(F_post.value),
            POST_RATIO,
            F_post.se,
            "<=",
        ),
        least_margin(
            "alg1_G",
            "Algorithm 1 beats the single expert: G_T(M) / G_T(single)",
            ratios.G,
            1.0,
        ),
        least_margin(
            "alg1_F",
            "Algorithm 1 beats the single expert: F_T(M) / F_T(single)",
            ratios.F,
            1.0,
        ),
    ]
    return readings + _alg1_set_readings(ratios)


def _alg1_set_readings(ratios: Alg1Ratios) -> list[Reading]:
    """Readings 7-10 (Algorithm 1 floor, decrease after ``T1`` and ``F_t -> 0``), each
    only where its set of ``M`` is not empty."""
    readings = []
    if ratios.pool:
        readings.append(
            least_margin(
                "alg1_pool",
                "Algorithm 1, M >= N ln N, the floor disappears: "
                "G^pool_T / single expert's floor",
                ratios.pool,
                POOL_RATIO,
            )
        )
    if ratios.dec_G:
        readings += [
            least_margin(
                "alg1_G_decreases",
                "Algorithm 1, G_t decreases after the router freezes: G_T / G_T1",
                ratios.dec_G,
                1.0,
            ),
            least_margin(
                "alg1_F_decreases",
                "Algorithm 1, F_t decreases after the router freezes: F_T / F_T1",
                ratios.dec_F,
                1.0,
            ),
        ]
    if ratios.rate_F:
        readings.append(
            least_margin(
                "alg1_F_to_zero",
                "Algorithm 1, M >= N ln N, F_t -> 0 (at least as fast as the 1/t "
                "tail after the router freezes): (T-1) F_T / ((T1-1) F_T1)",
                ratios.rate_F,
                1.0,
            )
        )
    return readings


def run(params: Params = Params()) -> Result:
    """Run the three sections and derive the quantities and the Theorem 1 claim
    check."""
    start = time.perf_counter()
    p = params
    cfgs = configs(p)
    z = p.z_tolerance
    ideal = simulate_ideal(p, cfgs)
    post = simulate_post(p, cfgs)
    alg = simulate_alg1(p, cfgs)
    slack = p.abs_tolerance * ideal.G_floor
    q1, ideal_G, ideal_F = _ideal_quantities(p, ideal, z, slack)
    q2, G_post, F_post = _post_quantities(p, post, z, slack)
    q3, floor_alg1, ratios = _alg1_quantities(p, alg, z)
    readings = _readings(p, ideal_G, ideal_F, G_post, F_post, ratios)
    return Result(
        params=p,
        ideal=ideal,
        post=post,
        alg=alg,
        floor_alg1=floor_alg1,
        quantities=q1 + q2 + q3,
        checks=[ClaimCheck(CLAIM, p.setting, tuple(readings))],
        configs={k: c.to_dict() for k, c in cfgs.items()},
        wall_time_s=time.perf_counter() - start,
        seeds=[p.seed],
    )
