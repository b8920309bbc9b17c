"""Calibration note (claim ``calibration_note``): where Propositions 1-3 hold; the
recalled values fail.

**What is checked.** SPEC §9 (our reconstruction, not the paper) observed that with the
recalled Figure-2 parameters (SPEC §7.2, tag [R-L]: unit signal ``c = 1``,
``eta = 0.5``, ``alpha = 0.5``, ``lambda = 0.3``) the router does **not** specialise,
and that a stronger signal or a larger ``eta`` makes it specialise. This chapter checks
that observation and maps, over a phase diagram (signal scale ``c`` x router learning
rate ``eta``) and slices (aux-gradient variant, ``lambda``, ``alpha``), where the claim
checks P1, P2, P3a (and P3b) of :mod:`moecl_lib.analysis.calibration` hold. It selects
the calibrated defaults (``moecl_lib.analysis.calibration.CALIBRATED``, tag [C]) that
the other linear chapters use.

**Claim checks** (:mod:`moecl_lib.claims.rule`: a reading holds when it clears its
threshold by 2 s.e.):

* ``calibration_note [recalled]`` -- the recalled setting (``T1`` from the SPEC A15
  formula) does not specialise. Readings: routing purity right after ``T1`` ``<= 0.9``
  (the P1 purity threshold, ``ClaimThresholds.purity``) with the literal decaying aux
  gradient and with the non-decaying one, and purity in the last window of a router that
  is never frozen ``<= 0.9`` (no specialisation even with ``T`` rounds of router
  training).
* ``calibration_note [calibrated]`` -- the calibrated point (``CALIBRATED``,
  ``T1 = 30 M``) lies where P1, P2 and P3a hold; one reading per part of each (the parts
  of ``moecl_lib.analysis.calibration.check_claims``):

  - P1: purity after ``T1`` ``>= 0.9``; fraction of tasks owning an expert set
    ``>= 0.9``;
  - P2: ``G_T(never) / G_T(gap) >= 1.25`` (paired delta-method s.e.);
    ``G_T(never) - G_T(gap) >= 0`` (paired);
  - P3a: fraction of runs frozen ``>= 0.95`` (binomial s.e.); purity after
    ``T2 >= 0.9``; ``G_{T/2}(gap) - G_T(gap) >= 0`` (still decreasing; paired);
    ``G_T(gap) / G_T(M=1) <= 0.5`` (independent batches, delta-method s.e.).

  The point is simulated with ``n_runs_point`` runs (more than a phase-diagram cell) so
  that these readings are decided at every seed.

**Phase diagram.** Every cell is simulated with ``gap`` and ``never`` (same seed:
identical task streams and draws up to ``T1``) and the single expert, ``n_runs`` runs
each. A claim in a cell is the conjunction of its readings: it *holds* when every
reading holds, *fails* when at least one fails, and is *inconclusive* otherwise
(:func:`conjunction`). P3b adds to P3a's first two readings the within-set uniformity
``>= 0.8``; a cell without any set of two or more experts has no uniformity (NaN) and
P3b fails there. The statistics behind the outcomes are recorded per cell
(``pd_c<c>_eta<eta>_<statistic>``); the numbers of cells where a claim holds are printed
and glued into the prose (:func:`phase_sentence`) but not recorded as compared
quantities: with a few runs per cell some cells sit near the 2-s.e. margin, and those
counts moved when the same runs were simulated with the numpy backend (a stand-in for
another CPU's rounding).

**Conventions.** Diagnostics are those of
:func:`moecl_lib.analysis.routing.specialisation` with its default window
(``max(200, 20 M)`` rounds, at most ``T / 4``): *purity after T1* is the purity of the
routing in ``(T1, T1 + window]`` of the ``gap`` run, *purity after T2* that of
``(T2, T]``, expert sets come from the post-``T2`` routing (primary task of every
expert). ``G_{T/2}`` is ``G_t`` at ``t = T // 2``. Every quantity is a mean over the
runs of one batch with its standard error (``ddof = 1``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import (
    CALIBRATED,
    CALIBRATED_T1_PER_EXPERT,
    ClaimThresholds,
    phase_heatmap,
    setting_config,
)
from moecl_lib.analysis.routing import specialisation
from moecl_lib.analysis.sweeps import ROUTER_ONLY
from moecl_lib.claims.estimators import ratio_of_means
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Outcome, Quantity, Reading
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import simulate

CHAPTER = "calibration"
CLAIM = "calibration_note"
#: Claims of the phase diagram, in the order of the figure panels.
CLAIMS: tuple[str, ...] = ("P1", "P2", "P3a", "P3b")
#: Statistics recorded per phase-diagram cell (names: ``pd_c<c>_eta<eta>_<statistic>``).
CELL_STATS: tuple[str, ...] = (
    "purity_T1",
    "ratio_never_gap",
    "G_gap_over_single",
    "uniformity",
)


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    parameter of the computation)."""

    n_experts: int = 20
    T: int = 1200
    n_runs: int = 16
    n_runs_point: int = 256
    seed: int = 0
    signal_scales: tuple[float, ...] = (3.0, 5.0, 8.0)
    etas: tuple[float, ...] = (0.25, 0.5, 1.0)
    aux_slice_scales: tuple[float, ...] = (3.0, 5.0, 8.0)
    lams: tuple[float, ...] = (0.3, 3.0)
    alphas: tuple[float, ...] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("signal_scales", "etas", "aux_slice_scales", "lams", "alphas"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))


# --------------------------------------------------------------------------- simulation


@dataclass
class MemberRuns:
    """Per-run statistics of one simulated configuration (arrays of shape (R,))."""

    config: ExperimentConfig
    purity_early: np.ndarray
    purity_late: np.ndarray
    purity_post: np.ndarray
    coverage: np.ndarray
    uniformity: np.ndarray
    frozen: np.ndarray
    T2: np.ndarray
    G_T: np.ndarray
    G_half: np.ndarray
    F_T: np.ndarray
    G_mean: np.ndarray
    wall_time: float


def simulate_member(cfg: ExperimentConfig, window: int | None = None) -> MemberRuns:
    """Simulate ``cfg`` and keep the per-run statistics the claim checks need (the full
    result is dropped)."""
    res = simulate(cfg)
    sp = specialisation(res, window=window)
    T = cfg.T
    return MemberRuns(
        config=cfg,
        purity_early=sp.purity_early,
        purity_late=sp.purity_late,
        purity_post=sp.purity_post,
        coverage=sp.coverage,
        uniformity=sp.uniformity,
        frozen=np.asarray(res.T2) >= 0,
        T2=np.asarray(res.T2),
        G_T=res.G[:, -1].copy(),
        G_half=res.G[:, T // 2 - 1].copy(),
        F_T=res.F[:, -1].copy(),
        G_mean=res.G.mean(axis=0),
        wall_time=res.wall_time,
    )


class Simulator:
    """Members of one base configuration, simulated once each (cells shared by several
    sweeps are re-used).

    A member is given by config overrides (``labels``); ``T1 = ceil(T1_per_expert * M)``
    unless the labels set ``T1`` (``None``: the config formula), and ``M = 1`` ignores
    router-only knobs (as :func:`moecl_lib.analysis.sweeps.run_family`).
    """

    def __init__(self, base: ExperimentConfig, window: int | None = None) -> None:
        self.base = base
        self.window = window
        self.cache: dict[Any, MemberRuns] = {}

    def config(
        self, labels: Mapping[str, Any], T1_per_expert: float | None
    ) -> ExperimentConfig:
        changes = dict(labels)
        M = int(changes.get("n_experts", self.base.n_experts))
        if T1_per_expert is not None and "T1" not in changes:
            changes["T1"] = int(math.ceil(T1_per_expert * M))
        if M == 1:
            changes["termination"] = "never"
        return self.base.replace(**changes)

    def member(
        self, labels: Mapping[str, Any], T1_per_expert: float | None
    ) -> MemberRuns:
        cfg = self.config(labels, T1_per_expert)
        items = cfg.to_dict()
        if cfg.n_experts == 1:
            for name in ROUTER_ONLY:
                items.pop(name)
        key = tuple(sorted(items.items()))
        if key not in self.cache:
            self.cache[key] = simulate_member(cfg, self.window)
        return self.cache[key]

    def configs(self) -> dict[str, dict[str, Any]]:
        """Every configuration simulated so far (``member_<i>`` -> all fields)."""
        return {
            f"member_{i}": m.config.to_dict() for i, m in enumerate(self.cache.values())
        }

    @property
    def wall_time(self) -> float:
        return float(sum(m.wall_time for m in self.cache.values()))


# --------------------------------------------------------------------------- estimators


def mean_se(x: Iterable[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error (``ddof = 1``) and count of the finite values of ``x`` (NaN,
    0, 0 if none)."""
    a = np.asarray(x, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan, 0.0, 0
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    return float(a.mean()), se, int(a.size)


def paired_ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float, int]:
    """``mean(num) / mean(den)`` over paired runs (finite pairs), delta-method s.e."""
    return ratio_of_means(num, den, drop="nonfinite")


def independent_ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float, int]:
    """``mean(num) / mean(den)`` of two independent batches with its delta-method
    s.e."""
    ma, sa, na = mean_se(num)
    mb, sb, nb = mean_se(den)
    r = ma / mb
    return r, abs(r) * math.hypot(sa / ma, sb / mb), min(na, nb)


def proportion(x: np.ndarray) -> tuple[float, float, int]:
    """Fraction of true values with its binomial s.e. ``sqrt(p (1 - p) / n)`` (0 when p
    is 0 or 1)."""
    a = np.asarray(x, dtype=bool).ravel()
    p = float(a.mean())
    return p, math.sqrt(p * (1 - p) / a.size), int(a.size)


# ----------------------------------------------------------------------------- readings


def conjunction(readings: Iterable[Reading]) -> Outcome:
    """Outcome of a claim that needs every reading: holds if all hold, fails if one
    fails, else inconclusive."""
    out = [r.outcome for r in readings]
    if any(o == "fails" for o in out):
        return "fails"
    if all(o == "holds" for o in out):
        return "holds"
    return "inconclusive"


def _reading(
    name: str,
    statement: str,
    est: tuple[float, float, int],
    threshold: float,
    sense: str = ">=",
) -> Reading:
    """A reading from ``(mean, se, n)``; with no finite value (e.g. purity after ``T2``
    when no run froze) the estimate is 0 with no s.e., which fails a ``>=`` reading with
    a positive threshold."""
    if est[2] == 0:
        return Reading(
            name,
            statement + " (no run defines it: counted as 0)",
            0.0,
            threshold,
            0.0,
            sense,
        )  # type: ignore[arg-type]
    return Reading(name, statement, est[0], threshold, est[1], sense)  # type: ignore[arg-type]


def p1_readings(
    gap: MemberRuns, th: ClaimThresholds = ClaimThresholds()
) -> tuple[Reading, ...]:
    """P1 (specialisation after ``T1``): purity after ``T1`` and coverage of the expert
    sets."""
    return (
        _reading(
            "P1_purity",
            f"P1: routing purity in the window after T1 ≥ {th.purity:g}",
            mean_se(gap.purity_early),
            th.purity,
        ),
        _reading(
            "P1_coverage",
            f"P1: fraction of tasks owning an expert set ≥ {th.coverage:g}",
            mean_se(gap.coverage),
            th.coverage,
        ),
    )


def p2_readings(
    gap: MemberRuns, never: MemberRuns, th: ClaimThresholds = ClaimThresholds()
) -> tuple[Reading, ...]:
    """P2 (no termination hurts): paired ratio and paired difference of the final
    ``G_T``."""
    return (
        _reading(
            "P2_ratio",
            f"P2: G_T(never) / G_T(gap) ≥ {th.p2_ratio:g}",
            paired_ratio(never.G_T, gap.G_T),
            th.p2_ratio,
        ),
        _reading(
            "P2_difference",
            "P2: G_T(never) − G_T(gap) ≥ 0 (paired over runs)",
            mean_se(never.G_T - gap.G_T),
            0.0,
        ),
    )


def p3a_readings(
    gap: MemberRuns, single: MemberRuns, th: ClaimThresholds = ClaimThresholds()
) -> tuple[Reading, ...]:
    """P3a (termination freezes a correct routing and converges)."""
    return (
        _reading(
            "P3a_frozen",
            f"P3a: fraction of runs whose router froze ≥ {th.frozen:g}",
            proportion(gap.frozen),
            th.frozen,
        ),
        _reading(
            "P3a_purity_post",
            f"P3a: routing purity after T2 ≥ {th.purity:g}",
            mean_se(gap.purity_post),
            th.purity,
        ),
        _reading(
            "P3a_decreasing",
            "P3a: G_{T/2}(gap) − G_T(gap) ≥ 0 (still decreasing; paired)",
            mean_se(gap.G_half - gap.G_T),
            0.0,
        ),
        _reading(
            "P3a_beats_single",
            f"P3a: G_T(gap) / G_T(M=1) ≤ {th.converge_frac:g}",
            independent_ratio(gap.G_T, single.G_T),
            th.converge_frac,
            "<=",
        ),
    )


def p3b_readings(
    gap: MemberRuns, th: ClaimThresholds = ClaimThresholds()
) -> tuple[Reading, ...]:
    """P3b (uniform choice inside the set): P3a's first two readings and the within-set
    uniformity.

    Runs without a set of two or more experts have no uniformity; if no run has one, the
    uniformity reading is 0 with no s.e. (it fails: there is no set to be uniform over;
    see :func:`_reading`).
    """
    return p3a_readings(gap, gap, th)[:2] + (
        _reading(
            "P3b_uniformity",
            f"P3b: normalised within-set routing entropy after T2 ≥ {th.uniform:g}",
            mean_se(gap.uniformity),
            th.uniform,
        ),
    )


# -------------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One cell of a sweep: its labels, the three members and the claim readings."""

    labels: dict[str, Any]
    gap: MemberRuns
    never: MemberRuns
    single: MemberRuns
    readings: dict[str, tuple[Reading, ...]]

    @property
    def outcomes(self) -> dict[str, Outcome]:
        """P1, P2, P3a, P3b and ``all`` (= P1 and P2 and P3a) in this cell
        (:func:`conjunction`)."""
        out = {k: conjunction(v) for k, v in self.readings.items()}
        out["all"] = conjunction(
            r for k in ("P1", "P2", "P3a") for r in self.readings[k]
        )
        return out

    def stats(self) -> dict[str, tuple[float, float, int]]:
        """Key statistics (mean, s.e., n) of the cell."""
        return {
            "purity_T1": mean_se(self.gap.purity_early),
            "coverage": mean_se(self.gap.coverage),
            "ratio_never_gap": paired_ratio(self.never.G_T, self.gap.G_T),
            "G_T_gap": mean_se(self.gap.G_T),
            "G_T_never": mean_se(self.never.G_T),
            "G_T_single": mean_se(self.single.G_T),
            "G_gap_over_single": independent_ratio(self.gap.G_T, self.single.G_T),
            "purity_post_T2": mean_se(self.gap.purity_post),
            "purity_late_never": mean_se(self.never.purity_late),
            "frozen": proportion(self.gap.frozen),
            "uniformity": mean_se(self.gap.uniformity),
        }

    def row(self) -> dict[str, Any]:
        """Tidy row for tables, heat maps and CSV: labels, statistic means, outcomes
        (``holds`` etc.)."""
        row: dict[str, Any] = dict(self.labels)
        row["gain"] = (
            self.gap.config.eta * self.gap.config.signal_scale**2
        )  # router gain eta c^2
        row.update({k: v[0] for k, v in self.stats().items()})
        row.update(self.outcomes)
        return row


def run_cell(
    sim: Simulator,
    labels: Mapping[str, Any],
    T1_per_expert: float | None,
    th: ClaimThresholds = ClaimThresholds(),
) -> Cell:
    """Simulate one cell (``gap``, ``never``, single expert) and read P1, P2, P3a,
    P3b."""
    gap = sim.member(dict(labels, termination="gap"), T1_per_expert)
    never = sim.member(dict(labels, termination="never"), T1_per_expert)
    single = sim.member(dict(labels, n_experts=1), T1_per_expert)
    readings = {
        "P1": p1_readings(gap, th),
        "P2": p2_readings(gap, never, th),
        "P3a": p3a_readings(gap, single, th),
        "P3b": p3b_readings(gap, th),
    }
    return Cell(dict(labels), gap, never, single, readings)


def sweep(
    sim: Simulator,
    cells: Sequence[Mapping[str, Any]],
    T1_per_expert: float | None,
    th: ClaimThresholds = ClaimThresholds(),
) -> list[Cell]:
    return [run_cell(sim, c, T1_per_expert, th) for c in cells]


def count_outcomes(cells: Sequence[Cell]) -> dict[str, dict[str, int]]:
    """``claim -> outcome -> number of cells`` (claims P1, P2, P3a, P3b, all)."""
    out: dict[str, dict[str, int]] = {}
    for claim in CLAIMS + ("all",):
        out[claim] = {
            o: sum(c.outcomes[claim] == o for c in cells)
            for o in ("holds", "fails", "inconclusive")
        }
    return out


def cell_key(signal_scale: float, eta: float) -> str:
    """Identifier of a phase-diagram cell: ``c5_eta0p5``."""
    return f"c{signal_scale:g}_eta{eta:g}".replace(".", "p").replace("-", "m")


# ------------------------------------------------------------------------------- result


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: the sweeps (cells), the point checks, quantities and claim
    checks."""

    chapter = CHAPTER

    params: Params
    recalled: list[Cell]
    recalled_T1: int
    point: Cell
    phase: list[Cell]
    aux: list[Cell]
    lam: list[Cell]
    alpha: list[Cell]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    counts: dict[str, dict[str, int]]
    wall_time_s: float
    thresholds: ClaimThresholds = field(default_factory=ClaimThresholds)

    def rows(self, cells: Sequence[Cell]) -> list[dict[str, Any]]:
        return [c.row() for c in cells]


def _q(name: str, est: tuple[float, float, int], label: str = "") -> Quantity:
    return Quantity(name, est[0], est[1], est[2], "estimate", 0.0, label)


def run(params: Params = Params()) -> Result:
    """Simulate the recalled setting, the calibrated point, the phase diagram and the
    slices; read the claims."""
    start = time.perf_counter()
    p, th = params, ClaimThresholds()
    kw = dict(T=p.T, n_runs=p.n_runs, seed=p.seed)
    # 1. recalled setting: T1 from the config formula, both aux-gradient variants
    rec_sim = Simulator(setting_config("recalled", p.n_experts, **kw))
    recalled = sweep(
        rec_sim, [dict(aux_grad="decay"), dict(aux_grad="no_decay")], None, th
    )
    # 2. phase diagram and slices around the calibrated point (T1 = 30 M)
    sim = Simulator(setting_config("calibrated", p.n_experts, **kw))
    t1 = CALIBRATED_T1_PER_EXPERT
    phase = sweep(
        sim,
        [dict(signal_scale=c, eta=e) for c in p.signal_scales for e in p.etas],
        t1,
        th,
    )
    aux = sweep(
        sim,
        [
            dict(signal_scale=c, eta=CALIBRATED["eta"], aux_grad=a)
            for c in p.aux_slice_scales
            for a in ("decay", "no_decay")
        ],
        t1,
        th,
    )
    lam = sweep(
        sim, [dict(lam=v) for v in sorted(set(p.lams) | {CALIBRATED["lam"]})], t1, th
    )
    alpha = sweep(
        sim,
        [dict(alpha=v) for v in sorted(set(p.alphas) | {CALIBRATED["alpha"]})],
        t1,
        th,
    )
    # 3. the calibrated point with more runs (decides the claim readings)
    point_sim = Simulator(
        setting_config(
            "calibrated", p.n_experts, T=p.T, n_runs=p.n_runs_point, seed=p.seed
        )
    )
    point = run_cell(point_sim, {}, t1, th)

    checks = [recalled_check(recalled, th), calibrated_check(point)]
    counts = count_outcomes(phase)
    quantities = _quantities(recalled, point, phase, aux, lam, alpha)
    configs = {f"recalled_{k}": v for k, v in rec_sim.configs().items()}
    configs.update({f"sweep_{k}": v for k, v in sim.configs().items()})
    configs.update({f"point_{k}": v for k, v in point_sim.configs().items()})
    return Result(
        params=p,
        recalled=recalled,
        recalled_T1=rec_sim.base.T1_value,
        point=point,
        phase=phase,
        aux=aux,
        lam=lam,
        alpha=alpha,
        quantities=quantities,
        checks=checks,
        configs=configs,
        counts=counts,
        wall_time_s=time.perf_counter() - start,
        thresholds=th,
    )


def recalled_check(
    recalled: Sequence[Cell], th: ClaimThresholds = ClaimThresholds()
) -> ClaimCheck:
    """``calibration_note [recalled]``: the router does not specialise with the recalled
    values."""
    by_aux = {c.labels["aux_grad"]: c for c in recalled}
    readings = []
    for aux, words in (
        ("decay", "literal 1/t aux gradient"),
        ("no_decay", "non-decaying aux gradient"),
    ):
        readings.append(
            _reading(
                f"not_specialised_{aux}",
                f"recalled, {words}: routing purity in the window after T1 ≤ "
                f"{th.purity:g}",
                mean_se(by_aux[aux].gap.purity_early),
                th.purity,
                "<=",
            )
        )
    readings.append(
        _reading(
            "not_specialised_late",
            "recalled, router never frozen: routing purity in the last window "
            f"≤ {th.purity:g}",
            mean_se(by_aux["decay"].never.purity_late),
            th.purity,
            "<=",
        )
    )
    return ClaimCheck(CLAIM, "recalled", tuple(readings))


def calibrated_check(point: Cell) -> ClaimCheck:
    """``calibration_note [calibrated]``: P1, P2 and P3a hold at the calibrated point
    (every part)."""
    return ClaimCheck(
        CLAIM,
        "calibrated",
        point.readings["P1"] + point.readings["P2"] + point.readings["P3a"],
    )


def _quantities(
    recalled: Sequence[Cell],
    point: Cell,
    phase: Sequence[Cell],
    aux: Sequence[Cell],
    lam: Sequence[Cell],
    alpha: Sequence[Cell],
) -> list[Quantity]:
    qs: list[Quantity] = []
    for c in recalled:
        a = c.labels["aux_grad"]
        s = c.stats()
        qs += [
            _q(f"recalled_{a}_purity_T1", s["purity_T1"]),
            _q(f"recalled_{a}_purity_late_never", s["purity_late_never"]),
            _q(f"recalled_{a}_coverage", s["coverage"]),
            _q(f"recalled_{a}_ratio_never_gap", s["ratio_never_gap"]),
            _q(f"recalled_{a}_G_gap_over_single", s["G_gap_over_single"]),
        ]
    s = point.stats()
    for k in (
        "purity_T1",
        "coverage",
        "ratio_never_gap",
        "G_T_gap",
        "G_T_never",
        "G_T_single",
        "G_gap_over_single",
        "purity_post_T2",
        "frozen",
        "uniformity",
    ):
        qs.append(_q(f"point_{k}", s[k]))
    qs.append(_q("point_G_half_minus_G_T", mean_se(point.gap.G_half - point.gap.G_T)))
    for c in phase:
        s = c.stats()
        key = cell_key(c.labels["signal_scale"], c.labels["eta"])
        qs += [_q(f"pd_{key}_{k}", s[k]) for k in CELL_STATS if np.isfinite(s[k][0])]
    for c in aux:
        s = c.stats()
        key = f"aux_c{c.labels['signal_scale']:g}_{c.labels['aux_grad']}".replace(
            ".", "p"
        )
        qs += [
            _q(f"{key}_purity_T1", s["purity_T1"]),
            _q(f"{key}_ratio_never_gap", s["ratio_never_gap"]),
        ]
    for name, cells in (("lam", lam), ("alpha", alpha)):
        for c in cells:
            s = c.stats()
            key = f"{name}{c.labels[name]:g}".replace(".", "p")
            qs += [
                _q(f"{key}_{k}", s[k])
                for k in ("purity_T1", "ratio_never_gap", "uniformity")
                if np.isfinite(s[k][0])
            ]
    # The numbers of cells where a claim holds are not recorded: they moved when the
    # same runs were simulated by the numpy backend instead of the numba kernel (a
    # stand-in for another CPU's rounding), because several 16-run cells sit near the
    # 2-s.e. margin. The per-cell statistics above are recorded.
    return qs


# ---------------------------------------------------------------------------- reporting

#: Columns of the chapter's tables (cell statistics), besides the cell labels and
#: outcomes.
TABLE_STATS: tuple[str, ...] = (
    "purity_T1",
    "coverage",
    "ratio_never_gap",
    "G_T_gap",
    "G_T_single",
    "purity_post_T2",
    "uniformity",
)


def table_rows(
    cells: Sequence[Cell],
    labels: Sequence[str],
    stats: Sequence[str] = TABLE_STATS,
    claims: Sequence[str] = CLAIMS,
) -> list[dict[str, Any]]:
    """Rows for :func:`moecl_lib.figures.tables.table`: labels, statistic means and
    claim outcomes."""
    out = []
    for c in cells:
        row = c.row()
        out.append({k: row[k] for k in (*labels, *stats, *claims)})
    return out


def _where(cells: Sequence[Cell], claim: str, outcome: str) -> list[str]:
    return [
        f"c = {c.labels['signal_scale']:g}, η = {c.labels['eta']:g}"
        for c in cells
        if c.outcomes[claim] == outcome
    ]


def phase_sentence(result: Result) -> str:
    """Where P1, P2 and P3a hold together in the phase diagram (generated: true at any
    profile)."""
    n = len(result.phase)
    cnt = result.counts["all"]
    s = (
        f"P1, P2 and P3a all hold in {cnt['holds']} of the {n} cells, fail in "
        f"{cnt['fails']} and are undecided at this batch size "
        f"({result.params.n_runs} runs per cell) in {cnt['inconclusive']}"
    )
    parts = []
    for outcome, word in (("holds", "they hold at"), ("inconclusive", "undecided at")):
        where = _where(result.phase, "all", outcome)
        if where:
            parts.append(f"{word} {'; '.join(where)}")
    return s + (f" ({', '.join(parts)})" if parts else "")


def p2_high_gain_sentence(result: Result) -> str:
    """Never/gap ratio, purity after ``T1`` and P2 in the (up to) three cells of largest
    router gain."""
    rows = sorted((c.row() for c in result.phase), key=lambda r: r["gain"])
    top = rows[-min(3, len(rows)) :][::-1]
    vals = "; ".join(
        f"gain {r['gain']:g}: ratio {r['ratio_never_gap']:.2f}, purity "
        f"{r['purity_T1']:.2f}, P2 {r['P2']}"
        for r in top
    )
    best = max(rows, key=lambda r: r["purity_T1"])
    return (
        f"{vals} (G_T(never)/G_T(gap) and purity after T1 in the cells of largest "
        f"gain; the highest purity of the diagram, {best['purity_T1']:.2f}, is at "
        f"gain {best['gain']:g})"
    )


def p3b_sentence(result: Result) -> str:
    """Where P3b holds, and the within-set uniformity of the cells with a nearly pure
    routing."""
    n = result.counts["P3b"]["holds"]
    pure = [c.row() for c in result.phase if c.row()["purity_T1"] >= 0.85]
    s = f"P3b holds in {n} of the {len(result.phase)} cells"
    u = [r["uniformity"] for r in pure if np.isfinite(r["uniformity"])]
    if u:
        s += (
            f"; in the {len(pure)} cells whose purity after T1 is at least 0.85 the "
            f"within-set uniformity is at most {max(u):.2f}"
        )
    return s


def aux_sentence(result: Result) -> str:
    """Never/gap ratio with the decaying vs the non-decaying aux gradient at the
    calibrated signal scale."""
    c0 = CALIBRATED["signal_scale"]
    by = {c.labels["aux_grad"]: c for c in result.aux if c.labels["signal_scale"] == c0}
    if set(by) != {"decay", "no_decay"}:
        return "the calibrated signal scale is not in the aux-gradient slice"
    d, n = (by[a].stats()["ratio_never_gap"] for a in ("decay", "no_decay"))
    return (
        f"at c = {c0:g} the ratio G_T(never)/G_T(gap) is {d[0]:.2f} ± {d[1]:.2f} "
        f"with the literal decaying gradient (P2 {by['decay'].outcomes['P2']}) and "
        f"{n[0]:.2f} ± {n[1]:.2f} without decay (P2 {by['no_decay'].outcomes['P2']})"
    )


def alpha_sentence(result: Result) -> str:
    """The excess error of never freezing at ``alpha = 0`` vs the calibrated ``alpha``,
    and P1 at the largest ``alpha`` of the slice (generated: true at any profile)."""
    by = {c.labels["alpha"]: c for c in result.alpha}
    a0 = CALIBRATED["alpha"]
    parts = []
    if 0.0 in by and a0 in by:
        e0 = by[0.0].stats()["ratio_never_gap"][0] - 1
        ec = by[a0].stats()["ratio_never_gap"][0] - 1
        parts.append(
            f"the excess error of the never-frozen router, G_T(never)/G_T(gap) − 1, is "
            f"{e0:.2f} without load balancing (α = 0) against {ec:.2f} at α = {a0:g}"
        )
    top = max(by)
    if top > a0:
        s = by[top].stats()["purity_T1"]
        parts.append(
            f"at α = {top:g} the purity after T1 is {s[0]:.3f} ± {s[1]:.3f} "
            f"(P1 {by[top].outcomes['P1']})"
        )
    return "; ".join(parts)


def phase_figure(result: Result) -> tuple[Figure, dict[str, list[Any]]]:
    """Heat maps of the phase diagram (one per claim), cells where the claim holds
    framed in red, undecided cells in dashed orange; and the CSV columns behind them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = result.rows(result.phase)
    for r in rows:
        for k in CLAIMS + ("all",):
            r[f"{k}_holds"] = r[k] == "holds"
    fig, axes = plt.subplots(2, 2, figsize=(9, 7.0))
    axes = axes.ravel()
    specs = [
        ("purity_T1", "P1", "P1: purity after $T_1$", "viridis", 0.2, 1.0),
        ("ratio_never_gap", "P2", "P2: $G_T$(never) / $G_T$(gap)", "magma", 0.5, 3.0),
        (
            "G_gap_over_single",
            "P3a",
            "P3a: $G_T$(gap) / $G_T$(M=1)",
            "viridis_r",
            0.0,
            1.0,
        ),
        ("uniformity", "P3b", "P3b: within-set uniformity", "viridis", 0.0, 1.0),
    ]
    xs = sorted({r["eta"] for r in rows})
    ys = sorted({r["signal_scale"] for r in rows})
    for ax, (key, claim, title, cmap, lo, hi) in zip(axes, specs):
        im = phase_heatmap(
            ax,
            rows,
            "eta",
            "signal_scale",
            key,
            passed=f"{claim}_holds",
            cmap=cmap,
            title=title,
            vmin=lo,
            vmax=hi,
        )
        for r in rows:
            if r[claim] == "inconclusive":
                ax.add_patch(
                    Rectangle(
                        (xs.index(r["eta"]) - 0.5, ys.index(r["signal_scale"]) - 0.5),
                        1,
                        1,
                        fill=False,
                        ec="orange",
                        lw=2,
                        ls="--",
                    )
                )
        fig.colorbar(im, ax=ax, shrink=0.8)
    p = result.params
    fig.suptitle(
        f"M={p.n_experts}, no-decay aux, alpha={CALIBRATED['alpha']}, "
        f"lambda={CALIBRATED['lam']}, T1=30M, T={p.T}, {p.n_runs} runs per cell\n"
        "red frame = claim holds (2 s.e.), dashed = undecided",
        fontsize=10,
    )
    fig.tight_layout()
    keys = [
        "signal_scale",
        "eta",
        "gain",
        *TABLE_STATS,
        "G_gap_over_single",
        *CLAIMS,
        "all",
    ]
    return fig, {k: [r[k] for r in rows] for k in keys}


def slices_figure(result: Result) -> tuple[Figure, dict[str, list[Any]]]:
    """Purity, uniformity and never/gap ratio along the ``lambda`` and ``alpha`` slices;
    and the CSV columns."""
    import matplotlib.pyplot as plt

    th = result.thresholds
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, cells, key in [
        (axes[0], result.lam, "lam"),
        (axes[1], result.alpha, "alpha"),
    ]:
        rows = result.rows(cells)
        xv = [r[key] for r in rows]
        ax.plot(
            xv, [r["purity_T1"] for r in rows], "o-", label="purity after $T_1$ (P1)"
        )
        ax.plot(
            xv,
            [r["uniformity"] for r in rows],
            "s-",
            label="within-set uniformity (P3b)",
        )
        ax.plot(
            xv,
            [r["ratio_never_gap"] / 3 for r in rows],
            "^-",
            label="$G_T$(never)/$G_T$(gap) / 3 (P2)",
        )
        ax.axhline(th.purity, color="grey", ls=":", lw=1)
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel(key)
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("slices through the calibrated point", fontsize=10)
    lam_rows, alpha_rows = result.rows(result.lam), result.rows(result.alpha)
    cols: dict[str, list[Any]] = {
        "knob": ["lam"] * len(lam_rows) + ["alpha"] * len(alpha_rows),
        "value": [r["lam"] for r in lam_rows] + [r["alpha"] for r in alpha_rows],
    }
    for k in (*TABLE_STATS, *CLAIMS):
        cols[k] = [r[k] for r in lam_rows + alpha_rows]
    return fig, cols
