"""Proposition 1 (claim ``prop1``): after ``T1`` rounds every expert is specialised on
one task.

**What the paper states** (SPEC §6.2; content [V], form [R-M]): under Algorithm 1 with
``M > N`` (and ``M = Omega(N ln N)``), with high probability, for every ``t >= T1``
every expert belongs to exactly one expert set ``M_n``, is routed only tasks ``n``, and
its model stays close to ``w_n``; ``T1 ∝ M``.

**What this module runs.** For each setting of :mod:`moecl_lib.analysis.calibration`
(``calibrated`` and ``recalled``, ``M = n_experts``) one batch of ``n_runs`` runs with
termination rule ``gap`` (the readings) and the same seed with ``never``
(purity-over-time figure). In the calibrated setting, batches with ``never`` for every
``M`` in ``spec_time_experts`` measure how long the routing takes to reach its plateau.

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck` per setting, one reading
per part of the statement; each must clear its threshold by 2 s.e.; thresholds from
``moecl_lib.analysis.calibration.ClaimThresholds``):

1. ``purity`` -- experts are routed one task: routing purity in the ``window`` rounds
   after ``T1`` ``>= 0.9``.
2. ``experts_in_sets`` -- every expert belongs to an expert set: fraction of the ``M``
   experts that have a *majority task* after ``T1`` ``>= 0.9`` (threshold
   ``ClaimThresholds.coverage``).
3. ``coverage`` -- every task owns an expert set: fraction of the tasks that are the
   majority task of at least one expert ``>= 0.9``.
4. ``closeness`` -- the models stay close to their own ground truth: mean over active
   experts of ``||w^(m) - w_n(m)||^2`` divided by the mean distance to the nearest
   *other* task, at ``T``, ``<= 0.25`` (paired delta-method s.e. over runs).

**Conventions.** Expert ``m`` belongs to the set ``M_n`` when task ``n`` supplied more
than half of the rounds routed to ``m`` after ``T1`` (rounds ``T1 < t <= T``; a majority
task is unique, so the sets are disjoint and an expert serving several tasks about
equally belongs to none); an expert with no round after ``T1`` is idle and belongs to no
set. Under random routing no expert has a majority task, so readings 2 and 3 do not hold
trivially. Reading 4 uses the primary task (most rounds) of every active expert
(:func:`moecl_lib.analysis.routing.expert_task_distance`). The plurality-based coverage
of the calibration chapter's P1 (every expert in the set of its primary task) is
recorded as ``<setting>_coverage_primary``. The time to specialise is the end of the
first window whose mean purity (over runs) reaches 95 % of the plateau (mean of the last
five windows); its s.e. is a bootstrap over runs (200 resamples, fixed seed) and its
tolerance floor is one window. Every other quantity is a mean over the runs of a batch
with its standard error (``ddof = 1``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import ClaimThresholds, setting_config
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.analysis.routing import (
    coverage,
    expert_sets,
    expert_task_distance,
    purity_over_time,
    result_routing_matrix,
    routing_purity,
    set_sizes,
)
from moecl_lib.analysis.sweeps import run_family
from moecl_lib.claims.estimators import paired_ratio
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.linear.engine import SimulationResult

CHAPTER = "prop1_specialisation"
CLAIM = "prop1"
SETTINGS: tuple[str, ...] = ("calibrated", "recalled")
#: Bootstrap resamples for the s.e. of the time to specialise.
N_BOOT = 200
#: Fraction of the plateau purity that counts as "specialised" (time to specialise).
PLATEAU_FRACTION = 0.95
#: Number of final windows that define the plateau.
PLATEAU_WINDOWS = 5
#: Ratio of own-task to other-task squared distance at or below which a model is "close
#: to its task".
CLOSENESS = 0.25


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    parameter of the computation)."""

    n_experts: int = 20
    T: int = 1200
    n_runs: int = 96
    seed: int = 0
    window: int = 100
    spec_time_experts: tuple[int, ...] = (8, 20)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "spec_time_experts", tuple(int(m) for m in self.spec_time_experts)
        )


# ----------------------------------------------------------------------------- measures


def majority_sets(rm: np.ndarray) -> np.ndarray:
    """Majority task of every expert, shape (R, M): the task that supplied more than
    half of its rounds in the routing matrix ``rm`` (R, M, N), else ``-1`` (no majority,
    or idle)."""
    rm = np.asarray(rm)
    total = rm.sum(axis=2)
    top = rm.max(axis=2)
    return np.where(2 * top > total, rm.argmax(axis=2), -1)


@dataclass
class SettingData:
    """What one setting measured (per-run arrays have shape (R,))."""

    setting: str
    T1: int
    config: dict[str, Any]
    purity_T1: np.ndarray  # purity in (T1, T1 + window]
    in_sets: np.ndarray  # fraction of experts with a majority task after T1
    coverage: np.ndarray  # fraction of tasks that are some expert's majority task
    coverage_primary: (
        np.ndarray
    )  # fraction of tasks that are some active expert's primary task
    experts_active: np.ndarray  # experts with >= 1 round after T1
    largest_set: np.ndarray  # largest primary-task set
    own_dist: np.ndarray  # mean over active experts, squared distance to own task at T
    other_dist: np.ndarray  # ... to the nearest other task
    routing_example: np.ndarray  # routing matrix after T1 of run 0, (M, N)
    purity_curves: dict[
        str, tuple[np.ndarray, np.ndarray]
    ]  # termination -> (mean, se) per window
    window_ends: np.ndarray


def measure(setting: str, res: SimulationResult, window: int) -> dict[str, Any]:
    """Per-run specialisation measures of a ``gap`` result after ``T1`` (module
    docstring)."""
    cfg = res.config
    T1 = min(cfg.T1_value, cfg.T)
    rm_T1 = result_routing_matrix(res, after=T1, until=min(T1 + window, cfg.T))
    rm_post = result_routing_matrix(res, after=T1)
    major = majority_sets(rm_post)
    primary = expert_sets(rm_post)
    own, other = expert_task_distance(res.final_w, res.pool.W, primary)
    return dict(
        setting=setting,
        T1=T1,
        config=cfg.to_dict(),
        purity_T1=routing_purity(rm_T1),
        in_sets=(major >= 0).mean(axis=1),
        coverage=coverage(major, cfg.n_tasks),
        coverage_primary=coverage(primary, cfg.n_tasks),
        experts_active=(rm_post.sum(axis=2) > 0).sum(axis=1).astype(float),
        largest_set=set_sizes(primary, cfg.n_tasks).max(axis=1).astype(float),
        own_dist=own,
        other_dist=other,
        routing_example=rm_post[0],
    )


def time_to_plateau(purity: np.ndarray, ends: np.ndarray) -> tuple[int, float]:
    """First window end where the mean purity over runs reaches ``PLATEAU_FRACTION`` of
    its plateau, and the plateau (mean of the last ``PLATEAU_WINDOWS`` windows)."""
    m = np.nanmean(purity, axis=0)
    plateau = float(m[-PLATEAU_WINDOWS:].mean())
    return int(ends[int(np.argmax(m >= PLATEAU_FRACTION * plateau))]), plateau


def bootstrap_time(
    purity: np.ndarray, ends: np.ndarray, seed: int, n_boot: int = N_BOOT
) -> float:
    """Bootstrap s.e. over runs of :func:`time_to_plateau` (fixed generator:
    deterministic)."""
    rng = np.random.default_rng(seed)
    R = purity.shape[0]
    t = [time_to_plateau(purity[rng.integers(0, R, R)], ends)[0] for _ in range(n_boot)]
    return float(np.std(t, ddof=1))


# ------------------------------------------------------------------------------- result


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: per-setting data, the time-to-specialise rows, quantities
    and claim checks."""

    chapter = CHAPTER

    params: Params
    settings: dict[str, SettingData]
    spec_rows: list[dict[str, Any]]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per setting (means over runs) for the chapter's table."""
        rows = []
        for s, d in self.settings.items():
            rows.append(
                {
                    "setting": s,
                    "T1": d.T1,
                    "purity_T1": float(np.nanmean(d.purity_T1)),
                    "experts_in_sets": float(d.in_sets.mean()),
                    "coverage": float(d.coverage.mean()),
                    "coverage_primary": float(d.coverage_primary.mean()),
                    "experts_active": float(d.experts_active.mean()),
                    "largest_set": float(d.largest_set.mean()),
                    "own_dist_T": float(np.nanmean(d.own_dist)),
                    "other_dist_T": float(np.nanmean(d.other_dist)),
                }
            )
        return rows

    def spec_time_sentence(self) -> str:
        """How the measured time to specialise scales with ``M`` (for the prose; true at
        any profile)."""
        r = self.spec_rows
        parts = ", ".join(f"{row['t_95pct']} rounds for M = {row['M']}" for row in r)
        per = [row["t_95pct"] / row["M"] for row in r]
        if len(r) < 2:
            trend = "a single M was run"
        elif all(b < a for a, b in zip(per, per[1:])):
            trend = (
                "so the time per expert falls as M grows: it does not grow in "
                "proportion to M"
            )
        elif all(abs(b - a) <= 1e-9 for a, b in zip(per, per[1:])):
            trend = "so it grows in proportion to M"
        else:
            trend = "so the time per expert does not stay constant across M"
        return f"{parts}; {trend}"


def _check(d: SettingData, th: ClaimThresholds) -> ClaimCheck:
    q_dist = paired_ratio("r", d.own_dist, d.other_dist, drop="nonfinite")
    pur = estimate("p", d.purity_T1)
    ins = estimate("i", d.in_sets)
    cov = estimate("c", d.coverage)
    readings = (
        Reading(
            "purity",
            "experts are routed one task: routing purity in the window after T1 "
            f"≥ {th.purity:g}",
            pur.value,
            th.purity,
            pur.se,
        ),
        Reading(
            "experts_in_sets",
            "every expert belongs to an expert set: fraction of experts with a "
            f"majority task after T1 ≥ {th.coverage:g}",
            ins.value,
            th.coverage,
            ins.se,
        ),
        Reading(
            "coverage",
            "every task owns an expert set: fraction of tasks that are some expert's "
            f"majority task ≥ {th.coverage:g}",
            cov.value,
            th.coverage,
            cov.se,
        ),
        Reading(
            "closeness",
            f"models stay near their task: ‖w − w_own‖² / ‖w − w_nearest other‖² at T "
            f"≤ {CLOSENESS:g}",
            q_dist.value,
            CLOSENESS,
            q_dist.se,
            "<=",
        ),
    )
    return ClaimCheck(CLAIM, d.setting, readings)


def _quantities(
    settings: dict[str, SettingData], spec_rows: Sequence[dict[str, Any]], window: int
) -> list[Quantity]:
    qs: list[Quantity] = []
    for s, d in settings.items():
        qs += [
            estimate(f"{s}_purity_T1", d.purity_T1),
            estimate(f"{s}_experts_in_sets", d.in_sets),
            estimate(f"{s}_coverage", d.coverage),
            estimate(f"{s}_coverage_primary", d.coverage_primary),
            estimate(f"{s}_experts_active", d.experts_active),
            estimate(f"{s}_largest_set", d.largest_set),
            estimate(f"{s}_own_dist_T", d.own_dist),
            estimate(f"{s}_other_dist_T", d.other_dist),
            paired_ratio(f"{s}_dist_ratio", d.own_dist, d.other_dist, drop="nonfinite"),
        ]
    for row in spec_rows:
        M = row["M"]
        qs.append(
            Quantity(
                f"spec_M{M}_plateau_purity",
                row["plateau_purity"],
                row["plateau_purity_se"],
                row["n"],
            )
        )
        # floor: the time is quantised to whole windows; one window of slack (see module
        # docstring)
        qs.append(
            Quantity(
                f"spec_M{M}_t_95pct",
                row["t_95pct"],
                row["t_95pct_se"],
                row["n"],
                "estimate",
                float(window),
            )
        )
    return qs


def run(params: Params = Params()) -> Result:
    """Simulate both settings and the time-to-specialise batches; read Proposition 1."""
    start = time.perf_counter()
    p, th = params, ClaimThresholds()
    settings: dict[str, SettingData] = {}
    configs: dict[str, Any] = {}
    for setting in SETTINGS:
        base = setting_config(setting, p.n_experts, T=p.T, n_runs=p.n_runs, seed=p.seed)
        fam = run_family(
            base,
            [dict(termination="gap"), dict(termination="never")],
            keep_results=True,
            window=p.window,
            progress=False,
        )
        runs = {fr.labels["termination"]: fr for fr in fam.runs}
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        ends = np.zeros(0, dtype=int)
        for term, fr in runs.items():
            res = fr.result
            assert res is not None
            pur, ends = purity_over_time(
                res.experts, res.tasks, p.n_experts, res.config.n_tasks, p.window
            )
            m, se = mean_se(pur)
            curves[term] = (m, se)
            configs[f"{setting}_{term}"] = fr.config.to_dict()
        gap = runs["gap"].result
        assert gap is not None
        settings[setting] = SettingData(
            **measure(setting, gap, p.window), purity_curves=curves, window_ends=ends
        )
    spec_rows = []
    for M in p.spec_time_experts:
        cfg = setting_config(
            "calibrated", M, T=p.T, n_runs=p.n_runs, seed=p.seed, termination="never"
        )
        fam = run_family(cfg, [{}], keep_results=True, window=p.window, progress=False)
        res = fam.runs[0].result
        assert res is not None
        configs[f"spec_time_M{M}"] = cfg.to_dict()
        pur, ends = purity_over_time(res.experts, res.tasks, M, cfg.n_tasks, p.window)
        t95, plateau = time_to_plateau(pur, ends)
        plateau_q = estimate("p", pur[:, -PLATEAU_WINDOWS:].mean(axis=1))
        spec_rows.append(
            {
                "M": M,
                "plateau_purity": plateau,
                "plateau_purity_se": plateau_q.se,
                "t_95pct": t95,
                "t_95pct_se": bootstrap_time(pur, ends, p.seed),
                "t_95pct_over_M": t95 / M,
                "n": pur.shape[0],
            }
        )
    checks = [_check(settings[s], th) for s in SETTINGS]
    return Result(
        params=p,
        settings=settings,
        spec_rows=spec_rows,
        quantities=_quantities(settings, spec_rows, p.window),
        checks=checks,
        configs=configs,
        wall_time_s=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------ figures


def routing_figure(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Routing matrix after ``T1`` of run 0 per setting (experts sorted by primary
    task), and its CSV columns."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result.settings), figsize=(10, 3.8))
    for ax, (setting, d) in zip(np.atleast_1d(axes), result.settings.items()):
        rm0 = d.routing_example
        order = np.lexsort(
            (-rm0.max(axis=1), rm0.argmax(axis=1) + 100 * (rm0.sum(axis=1) == 0))
        )
        im = ax.imshow(rm0[order].T, aspect="auto", cmap="Blues")
        ax.set_xlabel("expert (sorted by primary task)")
        ax.set_ylabel("task")
        ax.grid(False)
        ax.set_title(f"{setting}: routing after $T_1$, run 0", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="rounds")
    ex = {s: d.routing_example for s, d in result.settings.items()}
    M, N = next(iter(ex.values())).shape
    cols = {
        "setting": np.repeat(list(ex), M * N),
        "expert": np.tile(np.repeat(np.arange(M), N), len(ex)),
        "task": np.tile(np.arange(N), len(ex) * M),
        "count": np.concatenate([e.ravel() for e in ex.values()]),
    }
    return fig, cols


def purity_figure(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Purity per window (mean ± 2 s.e.), with and without termination, per setting; and
    its CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    fig, axes = plt.subplots(1, len(result.settings), figsize=(10, 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    cols: dict[str, np.ndarray] = {}
    for ax, (setting, d) in zip(axes, result.settings.items()):
        for term, (m, se) in d.purity_curves.items():
            plotting.band(ax, d.window_ends, m, se, z=2.0, label=f"termination={term}")
            cols[f"{setting}_{term}_mean"], cols[f"{setting}_{term}_se"] = m, se
        ax.axvline(d.T1, color="grey", ls=":", lw=1)
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("round $t$")
    axes[0].set_ylabel("routing purity")
    axes[0].legend(loc="lower right")
    ends = next(iter(result.settings.values())).window_ends
    return fig, {"window_end": ends, **cols}
