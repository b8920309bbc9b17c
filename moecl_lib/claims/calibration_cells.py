"""The cells of the calibration study (:mod:`moecl_lib.claims.calibration`): its
parameters, the simulation of one configuration and its per-run statistics, the claim
readings of a cell (P1, P2, P3a, P3b), the sweeps and the chapter's :class:`Result`.

Estimators here return ``(mean, s.e., n)`` tuples (``ddof = 1``); a cell's outcome for
a claim is the conjunction of its readings (:func:`conjunction`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moecl_lib.analysis.calibration import (
    ClaimThresholds,
)
from moecl_lib.analysis.routing import specialisation
from moecl_lib.analysis.sweeps import config_key
from moecl_lib.claims.estimators import ratio_of_means
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Outcome, Quantity, Reading
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import simulate

CHAPTER = "calibration"
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

    def __init__(
        self,
        base: ExperimentConfig,
        window: int | None = None,
        scheduler: str | None = "inline",
    ) -> None:
        self.base = base
        self.window = window
        self.scheduler = scheduler  # where prefetch() runs (moecl_lib.sweep.tasks)
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

    @staticmethod
    def key(cfg: ExperimentConfig) -> tuple[tuple[str, Any], ...]:
        """Identity of a member (:func:`moecl_lib.analysis.sweeps.config_key`)."""
        return config_key(cfg)

    def member(
        self, labels: Mapping[str, Any], T1_per_expert: float | None
    ) -> MemberRuns:
        cfg = self.config(labels, T1_per_expert)
        key = self.key(cfg)
        if key not in self.cache:
            self.cache[key] = simulate_member(cfg, self.window)
        return self.cache[key]

    def prefetch(
        self, requests: Sequence[tuple[Mapping[str, Any], float | None]]
    ) -> None:
        """Simulate the requested members not simulated yet, all at once where
        ``scheduler`` says (:func:`moecl_lib.sweep.tasks.map_calls`), and keep them in
        the order of the requests, the order in which :meth:`member` would have made
        them. Results are those of :meth:`member` (every run has its own streams)."""
        from moecl_lib.sweep.tasks import map_calls

        todo: dict[Any, ExperimentConfig] = {}
        for labels, t1 in requests:
            cfg = self.config(labels, t1)
            key = self.key(cfg)
            if key not in self.cache and key not in todo:
                todo[key] = cfg
        calls = [(cfg, self.window) for cfg in todo.values()]
        results = map_calls(
            simulate_member, calls, self.scheduler, progress=False, desc="members"
        )
        self.cache.update(zip(todo, results))

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


CELL_MEMBERS: tuple[dict[str, Any], ...] = (
    {"termination": "gap"},
    {"termination": "never"},
    {"n_experts": 1},
)
"""The members of a cell, in the order they are simulated: the gap rule, no
termination, a single expert."""


def run_cell(
    sim: Simulator,
    labels: Mapping[str, Any],
    T1_per_expert: float | None,
    th: ClaimThresholds = ClaimThresholds(),
) -> Cell:
    """Simulate one cell (``gap``, ``never``, single expert) and read P1, P2, P3a,
    P3b."""
    gap, never, single = (
        sim.member(dict(labels, **change), T1_per_expert) for change in CELL_MEMBERS
    )
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
    sim.prefetch(
        [(dict(c, **change), T1_per_expert) for c in cells for change in CELL_MEMBERS]
    )  # the members run_cell asks for, in its order
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
    """Output of :func:`moecl_lib.claims.calibration.run`: the sweeps (cells), the point
    checks, quantities and claim checks."""

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
