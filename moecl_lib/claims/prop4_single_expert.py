"""Proposition 4 (claim ``prop4``): a single expert never gets rid of the model gap.

**What the paper states** (SPEC §6.5; model-gap term [V], exact form [R-M]): for
``M = 1`` the expected forgetting ``E[F_t]`` and generalisation error ``E[G_t]`` have
explicit expressions in ``r = 1 - s/d``, the norms of the ground truths and the model
gap; ``G_t`` plateaus at a floor set by the model gap.

**What this module runs.** The paper's expressions were not available; the closed forms
of :mod:`moecl_lib.theory.isotropic` are this project's derivation (SPEC §6.5, [D]),
exact for isotropic columns (``signal="none"``). Two simulations of ``n_runs`` runs
(each run draws its own pool, tasks and data):

1. *isotropic columns*: simulation vs the closed form evaluated at each run's own pool
   (paired);
2. *Definition 1* (the paper's generator, ``signal = definition1_signal``, SPEC §2.3):
   simulation vs the exact second-moment recursion of :mod:`moecl_lib.theory.exact`
   (this project's, exact for that generator) on the first ``n_exact_pools`` pools, and
   vs the isotropic closed form.

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck`, setting ``"-"``; each must
clear its threshold by 2 standard errors):

1. ``iso_G_form``: isotropic columns, ``|G_T(sim) / G_T(closed form) - 1| <= 0.1``;
2. ``iso_F_form``: isotropic columns, ``|F_T(sim) / F_T(closed form) - 1| <= 0.1``;
3. ``iso_plateau``: isotropic columns, ``|G_T / Delta - 1| <= 0.1`` (``G_t`` plateaus at
   the model gap);
4. ``def1_floor``: Definition 1, ``G_T / Delta >= 0.8`` (a floor set by the pool, never
   zero);
5. ``def1_plateau``: Definition 1, ``|G_T / Delta - 1| <= 0.1`` (the floor *is* the
   model gap);
6. ``def1_F_form``: Definition 1, ``|F_T(sim) / F_T(closed form) - 1| <= 0.1``.

Readings 1-3 test the explicit expressions where they are exact, 4 the qualitative
content, 5-6 the explicit expressions under the paper's own generator; where 5-6 fail
the rule gives ``partly``.

**Quantities.** Final-round means (``G_T``, ``F_T``) with their s.e. over runs; ratios
of two means carry the paired delta-method s.e. (same runs); the model gap ``Delta`` is
the per-run pool's (``theory.pool_moments``). The companion's own agreement checks are
recorded as ``agree_*``: the largest, over the ``check_rounds`` and the curves, of
``|mean(sim - theory)| / (z_tolerance s.e.)`` (below 1 = agreement within
``z_tolerance`` s.e.), recorded with s.e. ``1 / z_tolerance`` (a z-statistic in these
units).

**Conventions.** Round ``t`` has index ``t - 1``; ``F_1`` is NaN; curves as in
:mod:`moecl_lib.linear.engine`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.estimators import (
    agreement,
    agreement_quantity,
    nanmean0,
    paired_ratio,
)
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import simulate
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory.exact import (
    single_expert_exact_for_pool,
    single_expert_limits_exact,
    unit_signal_directions,
)

CHAPTER = "prop4_single_expert"
CLAIM = "prop4"
FORM_TOL = 0.10
"""Relative agreement asked of a formula (closed form, plateau value):
``|ratio - 1| <= FORM_TOL``."""
FLOOR_MIN = 0.8
"""A non-zero floor: ``G_T >= FLOOR_MIN * Delta``."""


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``progress`` and
    ``out_dir`` are not computation parameters)."""

    n_tasks: int = 4
    d: int = 20
    s: int = 6
    T: int = 200
    sigma0: float = 0.4
    n_runs: int = 1000
    seed: int = 0
    check_rounds: tuple[int, ...] = (2, 5, 10, 25, 50, 100, 200)
    z_tolerance: float = 4.0
    definition1_signal: str = "aligned"
    n_exact_pools: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "check_rounds", tuple(int(t) for t in self.check_rounds)
        )

    @property
    def rounds_checked(self) -> tuple[int, ...]:
        """``check_rounds`` that lie in ``1..T``."""
        return tuple(t for t in self.check_rounds if 1 <= t <= self.T)


# ----------------------------------------------------------------------------- readings


def within(name: str, statement: str, q: Quantity, tol: float = FORM_TOL) -> Reading:
    """Two-sided agreement reading ``|q - 1| <= tol`` (the s.e. of ``|q - 1|`` is that
    of ``q``)."""
    return Reading(name, statement, abs(q.value - 1.0), tol, q.se, "<=")


def at_least(
    name: str,
    statement: str,
    q: Quantity,
    threshold: float,
    sense: Literal[">=", "<="] = ">=",
) -> Reading:
    """Reading ``q >= threshold`` (or ``<=``) with ``q``'s s.e."""
    return Reading(name, statement, q.value, threshold, q.se, sense)


def independent_ratio(
    name: str,
    num: Sequence[float] | np.ndarray,
    den: Sequence[float] | np.ndarray,
    *,
    label: str = "",
    floor: float = 0.0,
) -> Quantity:
    """``mean(num) / mean(den)`` of two independent samples, delta-method s.e. as
    ``hypot(se_a, r se_b) / |b|``; the Proposition 2/3 chapters compute the same s.e.
    in another floating-point order
    (:func:`moecl_lib.claims.estimators.independent_ratio`)."""
    qa, qb = estimate("num", num), estimate("den", den)
    r = qa.value / qb.value
    se = math.hypot(qa.se, r * qb.se) / abs(qb.value)
    return Quantity(name, r, se, min(qa.n, qb.n), "estimate", floor, label)


# ------------------------------------------------------------------------------ configs


def configs(p: Params) -> dict[str, ExperimentConfig]:
    """The two configurations the chapter runs: isotropic columns and the Definition-1
    generator."""
    iso = ExperimentConfig(
        n_tasks=p.n_tasks,
        n_experts=1,
        d=p.d,
        s=p.s,
        T=p.T,
        sigma0=p.sigma0,
        signal="none",
        n_runs=p.n_runs,
        seed=p.seed,
    )
    return {"isotropic": iso, "definition1": iso.replace(signal=p.definition1_signal)}


# ------------------------------------------------------------------------------- result


@dataclass
class Curves:
    """Mean curves (length ``T``) of one generator: simulation (mean, s.e.) and
    theory."""

    sim: dict[str, tuple[np.ndarray, np.ndarray]]  # "G", "F", "G_pool" -> (mean, se)
    theory: dict[str, np.ndarray]  # name -> mean curve


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: curves for the figures, quantities, claim check and
    configurations."""

    chapter = CHAPTER

    params: Params
    r: float
    iso: Curves
    def1: Curves
    G_floor: float  # closed-form floor of G_t (mean model gap), isotropic runs
    F_floor: float  # (1 - r) Delta
    G_floor_def1_exact: (
        float  # exact floor of G_t under Definition 1 (mean over the exact pools)
    )
    n_exact: int
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    def rows_isotropic(self) -> list[dict[str, Any]]:
        """Table of section 1 at the checked rounds."""
        (G, Gse), (F, Fse) = self.iso.sim["G"], self.iso.sim["F"]
        return [
            {
                "t": t,
                "G_sim": G[t - 1],
                "G_se": Gse[t - 1],
                "G_formula": self.iso.theory["G"][t - 1],
                "F_sim": F[t - 1],
                "F_se": Fse[t - 1],
                "F_formula": self.iso.theory["F"][t - 1],
            }
            for t in self.params.rounds_checked
        ]

    def rows_definition1(self) -> list[dict[str, Any]]:
        """Table of section 2 at the checked rounds (simulation, exact recursion,
        isotropic formula)."""
        (G, _), (F, _) = self.def1.sim["G"], self.def1.sim["F"]
        th = self.def1.theory
        return [
            {
                "t": t,
                "G_sim": G[t - 1],
                "G_exact": th["G_exact"][t - 1],
                "G_isotropic": th["G_iso"][t - 1],
                "G_sim/iso": G[t - 1] / th["G_iso"][t - 1],
                "F_sim": F[t - 1],
                "F_exact": th["F_exact"][t - 1],
                "F_isotropic": th["F_iso"][t - 1],
                "F_sim/iso": F[t - 1] / th["F_iso"][t - 1],
            }
            for t in self.params.rounds_checked
        ]


@dataclass
class Section:
    """One generator's simulation: mean curves, recorded quantities and what the
    Result keeps of it."""

    curves: Curves
    quantities: list[Quantity]
    extra: dict[str, Any]


def _isotropic(p: Params, cfg: ExperimentConfig, progress: bool) -> Section:
    """1. Isotropic columns: the simulation against the closed form at each run's own
    pool (``extra``: the rounds ``t``, ``G_floor`` and ``F_floor``)."""
    rounds, z = p.rounds_checked, p.z_tolerance
    res = simulate(cfg, progress=progress)
    wbar2, gap = theory.pool_moments(res.pool.W)  # (R,)
    t = res.rounds[None, :].astype(float)
    form = {
        "G": theory.single_expert_G(t, cfg.r, wbar2[:, None], gap[:, None]),
        "F": theory.single_expert_F(t, cfg.r, wbar2[:, None], gap[:, None]),
        "G_pool": theory.single_expert_G_pool(t, cfg.r, wbar2[:, None], gap[:, None]),
    }
    sim = {"G": res.G, "F": res.F, "G_pool": res.G_pool}
    iso = Curves(
        sim={k: mean_se(v) for k, v in sim.items()},
        theory={k: nanmean0(v) for k, v in form.items()},
    )
    G_floor, F_floor = theory.single_expert_limits(cfg.r, float(gap.mean()))
    R = cfg.n_runs
    q = [
        Quantity("r", cfg.r, kind="exact", label="r = 1 - s/d"),
        estimate("gap_iso", gap, label="model gap Delta (isotropic runs' pools)"),
        estimate("G_T_iso", res.G[:, -1], label="G_T, isotropic columns (simulation)"),
        estimate("F_T_iso", res.F[:, -1], label="F_T, isotropic columns (simulation)"),
        estimate(
            "G_T_iso_formula",
            form["G"][:, -1],
            label="G_T, closed form at each run's pool",
        ),
        estimate(
            "F_T_iso_formula",
            form["F"][:, -1],
            label="F_T, closed form at each run's pool",
        ),
        paired_ratio(
            "G_T_iso_over_formula",
            res.G[:, -1],
            form["G"][:, -1],
            label="G_T(sim) / G_T(closed form), isotropic",
        ),
        paired_ratio(
            "F_T_iso_over_formula",
            res.F[:, -1],
            form["F"][:, -1],
            label="F_T(sim) / F_T(closed form), isotropic",
        ),
        paired_ratio(
            "G_T_iso_over_gap", res.G[:, -1], gap, label="G_T / Delta, isotropic"
        ),
        estimate(
            "F_floor_iso",
            (1 - cfg.r) * gap,
            label="closed-form floor of F_t, (1 - r) Delta",
        ),
        agreement_quantity(
            "agree_iso",
            max(agreement(sim[k], form[k], rounds, z) for k in sim),
            z,
            R,
            "isotropic: max over checked rounds and G, F, G_pool of |sim - closed "
            f"form| / ({z:g} s.e.)",
        ),
    ]
    return Section(
        iso, q, {"t": t, "G_floor": float(G_floor), "F_floor": float(F_floor)}
    )


def _definition1(
    p: Params, cfg1: ExperimentConfig, r: float, t: np.ndarray, progress: bool
) -> Section:
    """2. Definition 1: the simulation against the exact recursion on the first
    ``n_exact_pools`` pools and the isotropic closed form (at ``r`` of the isotropic
    columns) on all (``extra``: the exact floor of ``G_t`` and the number of exact
    pools)."""
    rounds, z = p.rounds_checked, p.z_tolerance
    res1 = simulate(cfg1, progress=progress)
    runs = np.arange(min(p.n_runs, p.n_exact_pools))
    ex = single_expert_exact_for_pool(res1.pool, p.s, p.T, runs=runs)
    wbar2_1, gap_1 = theory.pool_moments(res1.pool.W)
    iso1 = {
        "G": theory.single_expert_G(t, r, wbar2_1[:, None], gap_1[:, None]),
        "F": theory.single_expert_F(t, r, wbar2_1[:, None], gap_1[:, None]),
    }
    vh = unit_signal_directions(res1.pool)
    lim = single_expert_limits_exact(
        res1.pool.W[runs], None if vh is None else vh[runs], p.s
    )
    def1 = Curves(
        sim={k: mean_se(getattr(res1, k)) for k in ("G", "F", "G_pool")},
        theory={
            "G_exact": ex.G.mean(0),
            "F_exact": nanmean0(ex.F),
            "G_iso": iso1["G"].mean(0),
            "F_iso": nanmean0(iso1["F"]),
        },
    )
    q = [
        estimate("G_T_def1", res1.G[:, -1], label="G_T, Definition 1 (simulation)"),
        estimate("F_T_def1", res1.F[:, -1], label="F_T, Definition 1 (simulation)"),
        estimate(
            "G_T_def1_exact", ex.G[:, -1], label="G_T, exact recursion (Definition 1)"
        ),
        estimate(
            "F_T_def1_exact", ex.F[:, -1], label="F_T, exact recursion (Definition 1)"
        ),
        paired_ratio(
            "G_T_def1_over_gap", res1.G[:, -1], gap_1, label="G_T / Delta, Definition 1"
        ),
        paired_ratio(
            "G_T_def1_over_formula",
            res1.G[:, -1],
            iso1["G"][:, -1],
            label="G_T(sim) / G_T(isotropic closed form), Definition 1",
        ),
        paired_ratio(
            "F_T_def1_over_formula",
            res1.F[:, -1],
            iso1["F"][:, -1],
            label="F_T(sim) / F_T(isotropic closed form), Definition 1",
        ),
        estimate("G_floor_def1_exact", lim.G, label="exact floor of G_t, Definition 1"),
        paired_ratio(
            "G_floor_def1_over_gap",
            lim.G,
            gap_1[runs],
            label="exact floor of G_t / Delta, Definition 1",
        ),
        agreement_quantity(
            "agree_def1_exact",
            max(
                agreement(getattr(res1, k)[runs], getattr(ex, k), rounds, z)
                for k in ("G", "F")
            ),
            z,
            int(runs.size),
            "Definition 1: max over checked rounds and G, F of "
            f"|sim - exact recursion| / ({z:g} s.e.)",
        ),
    ]
    return Section(
        def1, q, {"G_floor_exact": float(lim.G.mean()), "n_exact": int(runs.size)}
    )


def _readings(q: list[Quantity]) -> tuple[Reading, ...]:
    """The six readings of Prop. 4 (module docstring)."""
    qd = {x.name: x for x in q}
    return (
        within(
            "iso_G_form",
            "isotropic columns, closed form (ours) for G: |G_T(sim) / G_T(closed "
            "form) - 1|",
            qd["G_T_iso_over_formula"],
        ),
        within(
            "iso_F_form",
            "isotropic columns, closed form (ours) for F: |F_T(sim) / F_T(closed "
            "form) - 1|",
            qd["F_T_iso_over_formula"],
        ),
        within(
            "iso_plateau",
            "isotropic columns, plateau at the model gap: |G_T / Delta - 1|",
            qd["G_T_iso_over_gap"],
        ),
        at_least(
            "def1_floor",
            "Definition 1, a non-zero floor set by the pool: G_T / Delta",
            qd["G_T_def1_over_gap"],
            FLOOR_MIN,
        ),
        within(
            "def1_plateau",
            "Definition 1, plateau at the model gap: |G_T / Delta - 1|",
            qd["G_T_def1_over_gap"],
        ),
        within(
            "def1_F_form",
            "Definition 1, closed form (ours) for F: |F_T(sim) / F_T(closed form) - 1|",
            qd["F_T_def1_over_formula"],
        ),
    )


def run(params: Params = Params(), *, progress: bool = False) -> Result:
    """Simulate both generators and derive the quantities and the Prop. 4 claim
    check."""
    start = time.perf_counter()
    p = params
    cfgs = configs(p)
    cfg = cfgs["isotropic"]
    iso = _isotropic(p, cfg, progress)
    def1 = _definition1(p, cfgs["definition1"], cfg.r, iso.extra["t"], progress)
    q = iso.quantities + def1.quantities
    return Result(
        params=p,
        r=cfg.r,
        iso=iso.curves,
        def1=def1.curves,
        G_floor=iso.extra["G_floor"],
        F_floor=iso.extra["F_floor"],
        G_floor_def1_exact=def1.extra["G_floor_exact"],
        n_exact=def1.extra["n_exact"],
        quantities=q,
        checks=[ClaimCheck(CLAIM, "-", _readings(q))],
        configs={k: c.to_dict() for k, c in cfgs.items()},
        wall_time_s=time.perf_counter() - start,
        seeds=[p.seed],
    )


# -------------------------------------------------------------------------------- prose


def prose(result: Result) -> dict[str, str]:
    """Sentences of the Reading paragraph whose wording depends on the run, by glue
    key."""
    fl = result.quantity("G_floor_def1_over_gap")
    fr = result.quantity("F_T_def1_over_formula")
    above = "above" if fl.value > 1 else "below"
    return {
        "prop4_def1_sentence": (
            f"with {result.params.definition1_signal} signals the single expert's "
            f"exact floor is {fl.value:.2f} x the model gap ({above} it), and F_T is "
            f"{fr.value:.2f} x the isotropic prediction"
        )
    }


# ------------------------------------------------------------------------------ figures


def plot_isotropic(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 1 figure (simulation band, closed form, floor) and its CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    t = np.arange(1, p.T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, floor, label in [
        (axes[0], "F", result.F_floor, "forgetting $F_t$"),
        (axes[1], "G", result.G_floor, "generalisation error $G_t$"),
    ]:
        m, se = result.iso.sim[key]
        plotting.band(ax, t, m, se, label="simulation (mean $\\pm$ 2 s.e.)", z=2.0)
        ax.plot(
            t,
            result.iso.theory[key],
            "k--",
            lw=1,
            label="closed form (ours, isotropic)",
        )
        ax.axhline(floor, color="grey", ls=":", label="model-gap floor")
        ax.set_xlabel("round $t$")
        ax.set_title(label)
    axes[0].legend(loc="lower right")
    fig.suptitle(
        f"Single expert, isotropic columns: d={p.d}, s={p.s}, N={p.n_tasks}, "
        f"{p.n_runs} runs"
    )
    csv: dict[str, np.ndarray] = {"t": t}
    for key in ("F", "G", "G_pool"):
        csv[f"{key}_mean"], csv[f"{key}_se"] = result.iso.sim[key]
        csv[f"{key}_formula"] = result.iso.theory[key]
    return fig, csv


def plot_definition1(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 2 figure (simulation, exact recursion, isotropic formula) and its CSV
    columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    t = np.arange(1, p.T + 1)
    th = result.def1.theory
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in [
        (axes[0], "F", "forgetting $F_t$"),
        (axes[1], "G", "generalisation error $G_t$"),
    ]:
        m, se = result.def1.sim[key]
        plotting.band(
            ax,
            t,
            m,
            se,
            label=f"simulation, Definition 1 ({p.definition1_signal})",
            z=2.0,
        )
        ax.plot(
            t,
            th[f"{key}_exact"],
            "k-",
            lw=1,
            label="exact recursion (ours, Definition 1)",
        )
        ax.plot(t, th[f"{key}_iso"], "k--", lw=1, label="isotropic closed form (ours)")
        ax.set_xlabel("round $t$")
        ax.set_title(label)
    axes[1].axhline(
        result.G_floor_def1_exact, color="grey", ls=":", label="exact floor"
    )
    axes[1].legend(loc="lower right")
    csv: dict[str, np.ndarray] = {"t": t}
    for key in ("F", "G"):
        csv[f"{key}_mean"], csv[f"{key}_se"] = result.def1.sim[key]
        csv[f"{key}_exact"], csv[f"{key}_isotropic"] = (
            th[f"{key}_exact"],
            th[f"{key}_iso"],
        )
    return fig, csv


def config_lines(cfgs: Mapping[str, ExperimentConfig]) -> str:
    """Every field of every configuration, one block per configuration (printed near the
    parameters)."""
    out = []
    for name, c in cfgs.items():
        out.append(f"[{name}]")
        out.append(", ".join(f"{k}={v!r}" for k, v in c.to_dict().items()))
    return "\n".join(out)
