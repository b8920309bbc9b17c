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
    config_lines,
    independent_ratio,
)
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
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
    "Params",
    "Result",
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


# ------------------------------------------------------------------------------ helpers


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Rows for printing: exact zeros that come out as -1e-17 are shown as 0."""
    return {
        k: (0.0 if isinstance(v, float) and abs(v) < 1e-12 else v)
        for k, v in row.items()
    }


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
    """Output of :func:`run`: data for the figures, quantities, claim check and
    configurations."""

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
        rows = []
        for M, sim in self.ideal.sim.items():
            (G, Gse), (F, _) = mean_se(sim.G), mean_se(sim.F)
            ex = self.ideal.exact[M]
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

    def rows_post(self) -> list[dict[str, Any]]:
        (G, _), (F, _) = mean_se(self.post.sim.G), mean_se(self.post.sim.F)
        form = {k: nanmean0(v) for k, v in self.post.formula.items()}
        return [
            _clean(
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
                _clean(
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


def _ideal(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> Ideal:
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


def _post(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> Post:
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


def _alg1(p: Params, cfgs: Mapping[str, ExperimentConfig]) -> dict[int, Alg1]:
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


def run(params: Params = Params()) -> Result:
    """Run the three sections and derive the quantities and the Theorem 1 claim
    check."""
    start = time.perf_counter()
    p = params
    cfgs = configs(p)
    z = p.z_tolerance
    ideal = _ideal(p, cfgs)
    post = _post(p, cfgs)
    alg = _alg1(p, cfgs)
    slack = p.abs_tolerance * ideal.G_floor
    rounds1 = [t for t in p.check_rounds if t <= p.T]
    q: list[Quantity] = []

    # 1. ideal MoE
    q.append(
        Quantity(
            "rho_ideal",
            ideal.rho,
            kind="exact",
            label="per-update factor rho (ideal signal variant)",
        )
    )
    q.append(
        Quantity(
            "G_floor_single_ideal",
            ideal.G_floor,
            kind="exact",
            label="single expert's exact floor of G_t (shared pool)",
        )
    )
    q.append(
        Quantity(
            "F_floor_single_ideal",
            ideal.F_floor,
            kind="exact",
            label="single expert's exact floor of F_t (shared pool)",
        )
    )
    ideal_G: dict[int, Quantity] = {}
    ideal_F: dict[int, Quantity] = {}
    s1 = ideal.sim[1]
    for M, sim in ideal.sim.items():
        ex = ideal.exact[M]
        q += [
            estimate(
                f"G_T_ideal_M{M}",
                sim.G[:, -1],
                floor=ROUNDOFF_FLOOR,
                label=f"G_T, ideal MoE M={M} (simulation)",
            ),
            estimate(
                f"F_T_ideal_M{M}",
                sim.F[:, -1],
                floor=ROUNDOFF_FLOOR,
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
                    agreement(getattr(sim, k), getattr(ex, k), rounds1, z, slack)
                    for k in ("G", "F", "G_pool")
                ),
                z,
                sim.G.shape[0],
                f"ideal MoE M={M}: max |sim - exact| / tolerance",
            ),
        ]
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

    # 2. specialisation at t0
    s2, t0, T = post.sim, p.t0, p.T
    G_post = paired_ratio(
        "G_ratio_post", s2.G[:, -1], s2.G[:, t0], label=f"G_T / G_(t0+1), M={p.M_post}"
    )
    F_post = paired_ratio(
        "F_ratio_post", s2.F[:, -1], s2.F[:, t0], label=f"F_T / F_(t0+1), M={p.M_post}"
    )
    q += [
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

    # 3. Algorithm 1
    a1 = alg[1].res
    floor_alg1 = tm.cluster_floors_exact(
        a1.pool.W,
        unit_signal_directions(a1.pool),
        a1.config.s,
        np.zeros(a1.config.n_tasks, int),
    )[0]
    q.append(
        estimate(
            "floor_single_alg1",
            floor_alg1,
            label="single expert's exact floor (Algorithm-1 pools)",
        )
    )
    slack3 = p.abs_tolerance * float(floor_alg1.mean())
    rounds3 = [t for t in p.alg1_check_rounds if t <= p.alg1_T]
    n_tasks = a1.config.n_tasks
    alg_G: dict[int, Quantity] = {}
    alg_F: dict[int, Quantity] = {}
    alg_pool: dict[int, Quantity] = {}
    dec_G: dict[int, Quantity] = {}
    dec_F: dict[int, Quantity] = {}
    rate_F: dict[int, Quantity] = {}
    for M, a in alg.items():
        r = a.res
        if not np.allclose(r.pool.W, a1.pool.W):
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
        spec = a.spec
        assert spec is not None
        q += [
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
        q += [alg_G[M], alg_F[M]]
        if M >= n_tasks * math.log(n_tasks):
            alg_pool[M] = paired_ratio(
                f"Gpool_over_floor_alg1_M{M}",
                r.G_pool[:, -1],
                floor_alg1,
                label=f"Algorithm 1: G^pool_T / single floor, M={M}",
            )
            q.append(alg_pool[M])
        T1 = r.config.T1_value
        if T1 < p.alg1_T:
            dec_G[M] = paired_ratio(
                f"G_decrease_alg1_M{M}",
                r.G[:, -1],
                r.G[:, T1 - 1],
                label=f"Algorithm 1: G_T / G_T1, M={M} (T1={T1})",
            )
            dec_F[M] = paired_ratio(
                f"F_decrease_alg1_M{M}",
                r.F[:, -1],
                r.F[:, T1 - 1],
                label=f"Algorithm 1: F_T / F_T1, M={M} (T1={T1})",
            )
            q += [dec_G[M], dec_F[M]]
            q.append(
                paired_ratio(
                    f"tG_ratio_alg1_M{M}",
                    p.alg1_T * r.G[:, -1],
                    T1 * r.G[:, T1 - 1],
                    label=f"Algorithm 1: T G_T / (T1 G_T1), M={M} (1 = decay as 1/t)",
                )
            )
            rate = paired_ratio(
                f"tF_ratio_alg1_M{M}",
                (p.alg1_T - 1) * r.F[:, -1],
                (T1 - 1) * r.F[:, T1 - 1],
                label=(
                    f"Algorithm 1: (T-1) F_T / ((T1-1) F_T1), M={M} (1 = decay as 1/t)"
                ),
            )
            q.append(rate)
            if M >= n_tasks * math.log(n_tasks):
                rate_F[M] = rate

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
            f"specialised from t0 = {t0} (M = {p.M_post}), G_t decreases: G_T / "
            "G_(t0+1)",
            G_post.value,
            POST_RATIO,
            G_post.se,
            "<=",
        ),
        Reading(
            "post_F",
            f"specialised from t0 = {t0} (M = {p.M_post}), F_t fades: |F_T / F_(t0+1)|",
            abs(F_post.value),
            POST_RATIO,
            F_post.se,
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
            "Algorithm 1 beats the single expert: F_T(M) / F_T(single)",
            alg_F,
            1.0,
        ),
    ]
    if alg_pool:
        readings.append(
            least_margin(
                "alg1_pool",
                "Algorithm 1, M >= N ln N, the floor disappears: "
                "G^pool_T / single expert's floor",
                alg_pool,
                POOL_RATIO,
            )
        )
    if dec_G:
        readings += [
            least_margin(
                "alg1_G_decreases",
                "Algorithm 1, G_t decreases after the router freezes: G_T / G_T1",
                dec_G,
                1.0,
            ),
            least_margin(
                "alg1_F_decreases",
                "Algorithm 1, F_t decreases after the router freezes: F_T / F_T1",
                dec_F,
                1.0,
            ),
        ]
    if rate_F:
        readings.append(
            least_margin(
                "alg1_F_to_zero",
                "Algorithm 1, M >= N ln N, F_t -> 0 (at least as fast as the 1/t "
                "tail after the router freezes): (T-1) F_T / ((T1-1) F_T1)",
                rate_F,
                1.0,
            )
        )
    checks = [ClaimCheck(CLAIM, p.setting, tuple(readings))]
    return Result(
        params=p,
        ideal=ideal,
        post=post,
        alg=alg,
        floor_alg1=floor_alg1,
        quantities=q,
        checks=checks,
        configs={k: c.to_dict() for k, c in cfgs.items()},
        wall_time_s=time.perf_counter() - start,
        seeds=[p.seed],
    )


# -------------------------------------------------------------------------------- prose


def _listing(result: Result, fmt: str, Ms: list[int]) -> str:
    """``"v (M = 6), v (M = 12)"`` for the quantities named ``fmt.format(M=M)``."""
    from moecl_lib.claims.rule import fmt_number

    parts = []
    for M in Ms:
        qq = result.quantity(fmt.format(M=M))
        parts.append(f"{fmt_number(qq.value, qq.se)} (M = {M})")
    return ", ".join(parts)


def prose(result: Result) -> dict[str, str]:
    """Sentences of the Reading paragraph whose wording depends on the run, by glue
    key."""
    p = result.params
    Ms = list(p.experts)
    out: dict[str, str] = {}
    agree = [q for q in result.quantities if q.name.startswith("agree_")]
    worst = max(agree, key=lambda x: x.value)
    out["thm1_agree_sentence"] = (
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
    out["thm1_rates"] = _listing(result, "rate_M{M}", Ms)
    out["thm1_alg1_G_ratios"] = _listing(result, "G_ratio_alg1_M{M}", Ms)
    big_n = [
        M
        for M in Ms
        if any(q.name == f"Gpool_over_floor_alg1_M{M}" for q in result.quantities)
    ]
    out["thm1_alg1_pool"] = (
        _listing(result, "Gpool_over_floor_alg1_M{M}", big_n)
        if big_n
        else "(no M >= N ln N in this run)"
    )
    out["thm1_alg1_purity"] = _listing(result, "purity_alg1_M{M}", Ms)
    n_tasks = int(result.configs["alg1|M=1"]["n_tasks"])
    rate_Ms = [
        M
        for M in Ms
        if M >= n_tasks * math.log(n_tasks)
        and any(q.name == f"tF_ratio_alg1_M{M}" for q in result.quantities)
    ]
    reading = next(
        (r for r in result.checks[0].readings if r.name == "alg1_F_to_zero"), None
    )
    if reading is None:
        out["thm1_rate_sentence"] = (
            "no M >= N ln N froze early enough in this run to read the decay of F_t"
        )
    else:
        verb = {
            "fails": "grows between T1 and T for at least one M >= N ln N",
            "holds": "does not grow between T1 and T for any M >= N ln N",
            "inconclusive": (
                "may or may not grow between T1 and T (the data cannot tell)"
            ),
        }
        ratios = _listing(result, "tF_ratio_alg1_M{M}", rate_Ms)
        out["thm1_rate_sentence"] = (
            f"(t-1) F_t {verb[reading.outcome]}: (T-1) F_T / ((T1-1) F_T1) = {ratios}"
        )
    G = {M: result.quantity(f"G_T_alg1_M{M}") for M in Ms}
    best = min(Ms, key=lambda m: G[m].value)
    big = max(Ms)
    if big == best:
        out["thm1_alg1_sentence"] = (
            f"the largest M = {big} also ends with the lowest G_T ({G[big].value:.3f})"
        )
    else:
        out["thm1_alg1_sentence"] = (
            f"the largest M = {big} ends with a larger G_T ({G[big].value:.3f} ± "
            f"{G[big].se:.3f}) than M = {best} ({G[best].value:.3f} ± "
            f"{G[best].se:.3f})"
        )
    return out


# ------------------------------------------------------------------------------ figures


def plot_ideal(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 1 figure (simulation bands, exact curves, single-expert floor) and its
    CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p, ideal = result.params, result.ideal
    t = np.arange(1, p.T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": t}
    for M, sim in ideal.sim.items():
        lab = "single expert" if M == 1 else f"MoE M={M}"
        for ax, key in [(axes[0], "F"), (axes[1], "G")]:
            m, se = mean_se(getattr(sim, key))
            plotting.band(ax, t, m, se, label=lab, z=2.0, color=plotting.m_color(M))
            ax.plot(t, getattr(ideal.exact[M], key), "k--", lw=0.8)
            csv[f"{key}_mean_M{M}"], csv[f"{key}_se_M{M}"] = m, se
            csv[f"{key}_exact_M{M}"] = getattr(ideal.exact[M], key)
    axes[1].axhline(ideal.G_floor, color="grey", ls=":", label="single-expert floor")
    axes[0].axhline(ideal.F_floor, color="grey", ls=":")
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        f"Ideal MoE (specialised routing, {p.ideal_signal} signals), simulation "
        "$\\pm$ 2 s.e.; dashed: exact expectation (ours)",
        fontsize=10,
    )
    return fig, csv


def plot_post(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 2 figure (simulation, conditional formula, c/t tail) and its CSV
    columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p, post = result.params, result.post
    t = np.arange(1, p.T + 1)
    tt = t[p.t0 :]
    form = {k: nanmean0(v) for k, v in post.formula.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": t}
    for ax, key in [(axes[0], "F"), (axes[1], "G")]:
        m, se = mean_se(getattr(post.sim, key))
        plotting.band(ax, t, m, se, label="simulation ($\\pm$ 2 s.e.)", z=2.0)
        ax.plot(tt, form[key][p.t0 :], "k--", lw=1, label="conditional formula (ours)")
        ax.axvline(p.t0, color="grey", lw=0.8)
        ax.set_xlabel("round $t$")
        csv[f"{key}_mean"], csv[f"{key}_se"], csv[f"{key}_formula"] = m, se, form[key]
    axes[1].plot(tt, post.c.mean() / tt, ":", color="C3", label="tail $c/t$")
    axes[1].set_yscale("log")
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$ (log scale)")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        f"M={p.M_post}, random routing until $t_0$={p.t0}, specialised afterwards",
        fontsize=10,
    )
    csv["c_over_t"] = post.c.mean() / t
    return fig, csv


def plot_alg1(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 3 figure (Algorithm 1 per M, exact given the routing, single floor) and
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
        float(result.floor_alg1.mean()),
        color="grey",
        ls=":",
        label="single-expert floor",
    )
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        "Algorithm 1 (learned router, termination); dashed: exact given the realised "
        "routing",
        fontsize=10,
    )
    return fig, csv
