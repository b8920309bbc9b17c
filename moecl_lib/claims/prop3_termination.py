"""Proposition 3 (claim ``prop3``): with termination the router freezes and picks the
right experts uniformly.

**What the paper states** (SPEC §6.4; content [V], orders [R-L]): under Algorithm 1 the
router update terminates at some ``T2 = O(eta^-1 sigma0^-0.25 M) >= T1``; afterwards
every arriving task ``n`` is routed to *each* expert of its set ``M_n`` with equal
probability ``1 / |M_n|`` (within-set gate gaps below the noise range ``lambda``,
across-set gaps above it), and the forgetting and generalisation error converge.

**What this module runs.** For each setting of :mod:`moecl_lib.analysis.calibration`
(``calibrated`` and ``recalled``; ``M = n_experts``): the MoE with the ``gap``
termination rule (SPEC §4.6), the same seed with ``never`` (for the figures) and the
single expert ``M = 1``. ``n_runs``, ``seed`` and ``T`` go straight into
:func:`moecl_lib.analysis.calibration.setting_config`: the ``calibrated``/``gap`` member
is the configuration of the ``M = 20`` ``gap`` runs of ``prop2_no_termination``,
``fig2_dynamics`` and ``calibration`` (same configuration and seed, same numbers).

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck` per setting; each must
clear its threshold by 2 standard errors, :mod:`moecl_lib.claims.rule`; thresholds of
:class:`moecl_lib.analysis.calibration.ClaimThresholds`):

1. ``frozen``: the router freezes: fraction of runs with ``T2 <= T`` ``>= 0.95``
   (binomial s.e.).
2. ``purity_after_T2``: the frozen router sends each task to its own experts: routing
   purity in the rounds after ``T2`` ``>= 0.9`` (mean over the frozen runs).
3. ``converged``: the errors converge far below the single expert:
   ``G_T(gap) / G_T(single) <= 0.5`` (independent samples, delta-method s.e.).
4. ``uniform``: the choice inside a task's expert set is uniform: mean normalised
   within-set routing entropy after ``T2`` ``>= 0.8`` (1 = uniform; tasks with a set of
   two or more experts; ``within_set_uniformity``).

Also recorded (not readings): the fraction of runs freezing exactly at ``T1 + 1`` (the
first round the ``gap`` test is allowed), the mean ``T2 - T1``, set sizes and idle
experts, the frozen gate gaps against ``lambda``, and ``G_t``/``F_t`` at ``T2``, ``T/2``
and ``T``.

**Conventions.** Expert sets are the primary tasks of the experts in the routing after
``T2`` (frozen runs; the last window of
:func:`moecl_lib.analysis.routing.specialisation` for a run that never froze), as in
:func:`moecl_lib.analysis.routing.specialisation`. Frozen gate gaps are
:func:`moecl_lib.analysis.routing.gate_gaps` on the last gate snapshot (after round
``T``). Per-run values are averaged over runs with their standard error; a run without a
defined value (e.g. no set of two experts) is left out of that mean, and a quantity
without any data is NaN (its reading inconclusive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import ClaimThresholds
from moecl_lib.analysis.routing import (
    expert_loads,
    expert_sets,
    gate_gaps,
    load_entropy,
    result_routing_matrix,
    set_sizes,
)
from moecl_lib.analysis.sweeps import FamilyRun, run_family
from moecl_lib.claims.estimators import (
    SettingEstimator,
    independent_ratio,
    reading_of,
    setting_estimator,
)
from moecl_lib.claims.prop_settings import (
    SettingParams,
    run_settings,
    setting_base,
)
from moecl_lib.claims.record import SettingsResult, outcome_texts
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.linear.engine import SimulationResult

__all__ = [
    "CHAPTER",
    "CLAIM",
    "Params",
    "Result",
    "SettingData",
    "outcome_texts",
    "plot_loads_convergence",
    "plot_within_set",
    "run",
    "within_set_gaps",
    "within_set_shares",
]

CHAPTER = "prop3_termination"
CLAIM = "prop3"


@dataclass(frozen=True)
class Params(SettingParams):
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    parameter of the computation and stays out)."""

    n_runs: int = 200


@dataclass
class SettingData:
    """One setting: its family members and the routing after ``T2`` (per-run arrays)."""

    setting: str
    T1: int
    lam: float
    gap: FamilyRun
    never: FamilyRun
    single: FamilyRun
    sets: np.ndarray  # (R, M) primary task after T2 (-1 idle)
    routing: np.ndarray  # (R, M, N) routing matrix after T2
    within_final: np.ndarray  # (R, N) frozen within-set gate gap (NaN for empty sets)
    across_final: np.ndarray  # (R, N) frozen across-set margin


@dataclass
class Result(SettingsResult[Params, SettingData]):
    """Output of :func:`run`: per-setting data, quantities, claim checks and the
    configurations run."""

    chapter = CHAPTER

    def termination_rows(self) -> list[dict[str, Any]]:
        """When the router froze, per setting (for display)."""
        rows = []
        for setting, sd in self.data.items():
            T2 = (
                sd.gap.result.T2
                if sd.gap.result is not None
                else np.zeros(0, dtype=int)
            )
            done = T2 >= 0
            rows.append(
                {
                    "setting": setting,
                    "T1": sd.T1,
                    "frozen": float(done.mean()),
                    "T2_min": int(T2[done].min()) if done.any() else -1,
                    "T2_median": float(np.median(T2[done]))
                    if done.any()
                    else float("nan"),
                    "T2_max": int(T2[done].max()) if done.any() else -1,
                    "share_T2_eq_T1+1": float((T2 == sd.T1 + 1).mean()),
                }
            )
        return rows


def _row_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row mean of ``x`` over ``mask`` (NaN where the mask is empty), shape (R,)."""
    cnt = mask.sum(axis=1)
    tot = np.where(mask, x, 0.0).sum(axis=1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def measure_setting(setting: str, p: Params) -> SettingData:
    """Simulate one setting (``gap``, ``never``, single expert) and the routing after
    ``T2``."""
    base = setting_base(setting, p)
    fam = run_family(
        base,
        [dict(termination="gap"), dict(termination="never"), dict(n_experts=1)],
        keep_results=True,
        window=p.window,
        progress=False,
    )
    gap, never, single = fam.runs
    res = gap.result
    assert res is not None
    frozen = res.T2 >= 0
    rm_post = result_routing_matrix(res, after=res.T2)
    rm_late = result_routing_matrix(res, after=p.T - gap.spec.window)
    rm = np.where(frozen[:, None, None], rm_post, rm_late)
    sets = expert_sets(rm)
    gaps = gate_gaps(res.gate_snapshots[:, -1:], sets)
    return SettingData(
        setting=setting,
        T1=gap.spec.T1,
        lam=base.lam,
        gap=gap,
        never=never,
        single=single,
        sets=sets,
        routing=rm,
        within_final=gaps.within[:, 0],
        across_final=gaps.across[:, 0],
    )


def _freeze_quantities(
    sd: SettingData, res: SimulationResult, est: SettingEstimator
) -> None:
    """When the router froze (``T2``) and how it routes afterwards (purity,
    uniformity)."""
    frozen = res.T2 >= 0
    est("frozen", "frozen", frozen.astype(float), "fraction of runs frozen")
    est(
        "at_T1p1",
        "frozen_at_T1_plus_1",
        (res.T2 == sd.T1 + 1).astype(float),
        "fraction of runs frozen exactly at T1 + 1",
    )
    est(
        "T2_minus_T1",
        "T2_minus_T1",
        (res.T2[frozen] - sd.T1).astype(float),
        "mean T2 - T1, frozen runs",
    )
    est(
        "purity_post",
        "purity_after_T2",
        sd.gap.spec.purity_post,
        "routing purity after T2",
    )
    est(
        "uniformity",
        "uniformity",
        sd.gap.spec.uniformity,
        "normalised within-set routing entropy after T2",
    )


def _set_quantities(sd: SettingData, N: int, est: SettingEstimator) -> None:
    """The expert sets after ``T2``: sizes, idle experts and the frozen gate gaps
    against ``lambda``."""
    sizes = set_sizes(sd.sets, N)
    multi = sizes >= 2
    est(
        "set_size",
        "mean_set_size",
        _row_mean(sizes.astype(float), sizes > 0),
        "mean size of a non-empty expert set",
    )
    est(
        "share_multi",
        "share_tasks_set2",
        multi.mean(axis=1),
        "share of tasks with a set of >= 2 experts",
    )
    est(
        "idle",
        "experts_idle",
        (sd.sets < 0).sum(axis=1).astype(float),
        "idle experts after T2",
    )
    est(
        "within_lt_lam",
        "share_within_gap_below_lambda",
        _row_mean((sd.within_final < sd.lam) * 1.0, multi),
        "share of sets (>= 2 experts) with frozen within-set gap < lambda",
    )
    has_across = ~np.isnan(sd.across_final)
    across = np.nan_to_num(sd.across_final)
    est(
        "across",
        "across_margin_frozen",
        _row_mean(across, has_across),
        "frozen across-set margin",
    )
    est(
        "across_gt_lam",
        "share_across_above_lambda",
        _row_mean((across > sd.lam) * 1.0, has_across),
        "share of tasks with frozen across-set margin > lambda",
    )


def _error_quantities(
    sd: SettingData, p: Params, q: dict[str, Quantity], est: SettingEstimator
) -> None:
    """``G`` at ``T2``, ``T/2`` and ``T``, ``F_T``, the never-frozen and single-expert
    ``G_T``, the ratio to the single expert and the late load entropy."""
    s, T = sd.setting, p.T
    res, nres, sres = sd.gap.result, sd.never.result, sd.single.result
    assert res is not None and nres is not None and sres is not None
    frozen = res.T2 >= 0
    idx = np.where(frozen, np.minimum(res.T2, T), T) - 1
    est(
        "G_T2",
        "G_at_T2",
        res.G[np.arange(res.G.shape[0]), idx],
        "G at T2 (at T if never frozen)",
    )
    est("G_half", "G_half", res.G[:, T // 2 - 1], "G at T/2, gap")
    est("G_T_gap", "G_T_gap", res.G[:, -1], "G_T gap")
    est("F_T_gap", "F_T_gap", res.F[:, -1], "F_T gap")
    est("G_T_never", "G_T_never", nres.G[:, -1], "G_T never")
    est("G_T_single", "G_T_single", sres.G[:, -1], "G_T single expert")
    q["ratio_single"] = independent_ratio(
        f"ratio_gap_single_{s}",
        res.G[:, -1],
        sres.G[:, -1],
        label=f"G_T(gap) / G_T(single) ({s})",
    )
    est(
        "load_entropy",
        "load_entropy_late",
        sd.gap.spec.load_entropy_late,
        "normalised load entropy, last window",
    )


def setting_quantities(sd: SettingData, p: Params) -> dict[str, Quantity]:
    """The recorded quantities of one setting, keyed by short name (the recorded name
    adds ``_<setting>``)."""
    res = sd.gap.result
    assert res is not None
    q: dict[str, Quantity] = {}
    est = setting_estimator(q, sd.setting)
    _freeze_quantities(sd, res, est)
    _set_quantities(sd, res.config.n_tasks, est)
    _error_quantities(sd, p, q, est)
    return q


def setting_check(
    sd: SettingData, q: dict[str, Quantity], th: ClaimThresholds
) -> ClaimCheck:
    """The four readings of Prop. 3 in one setting (module docstring)."""
    readings = (
        reading_of(
            "frozen",
            f"the router freezes: fraction of runs frozen >= {th.frozen:g}",
            q["frozen"],
            th.frozen,
        ),
        reading_of(
            "purity_after_T2",
            f"the frozen router picks the right set: purity after T2 >= {th.purity:g}",
            q["purity_post"],
            th.purity,
        ),
        reading_of(
            "converged",
            "G_T converges below the single expert: G_T(gap) / G_T(single) <= "
            f"{th.converge_frac:g}",
            q["ratio_single"],
            th.converge_frac,
            "<=",
        ),
        reading_of(
            "uniform",
            "uniform choice inside a set: normalised within-set routing entropy >= "
            f"{th.uniform:g}",
            q["uniformity"],
            th.uniform,
        ),
    )
    return ClaimCheck(CLAIM, sd.setting, readings)


def _configs(setting: str, sd: SettingData) -> dict[str, Any]:
    """The configurations of one setting, by ``<setting>|<member>``."""
    return {
        f"{setting}|{name}": fr.config.to_dict()
        for name, fr in (("gap", sd.gap), ("never", sd.never), ("single", sd.single))
    }


def run(
    params: Params = Params(), thresholds: ClaimThresholds = ClaimThresholds()
) -> Result:
    """Simulate both settings and derive the chapter's quantities and Prop. 3 claim
    checks."""
    start = time.perf_counter()
    data, quantities, checks, configs = run_settings(
        lambda s: measure_setting(s, params),
        lambda sd: setting_quantities(sd, params),
        lambda sd, q: setting_check(sd, q, thresholds),
        _configs,
    )
    return Result(
        params=params,
        data=data,
        quantities=quantities,
        checks=checks,
        configs=configs,
        wall_time_s=time.perf_counter() - start,
        seeds=[params.seed],
    )


# ------------------------------------------------------------------------------ figures


def within_set_shares(sd: SettingData) -> np.ndarray:
    """Share of each set's most used expert, over all tasks with a set of two or more
    experts."""
    shares = []
    for r in range(sd.sets.shape[0]):
        for n in range(sd.routing.shape[2]):
            members = np.flatnonzero(sd.sets[r] == n)
            if members.size >= 2:
                c = np.sort(sd.routing[r, members, n])[::-1]
                if c.sum() > 0:
                    shares.append(c[0] / c.sum())
    return np.asarray(shares, dtype=float)


def within_set_gaps(sd: SettingData) -> np.ndarray:
    """Frozen within-set gate gaps of the sets with two or more experts (flattened)."""
    multi = set_sizes(sd.sets, sd.routing.shape[2]) >= 2
    return sd.within_final[multi]


def plot_within_set(
    result: Result, setting: str = "calibrated"
) -> tuple[Figure, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Histogram of the top member's share inside a set and of the frozen within-set
    gaps (vs lambda)."""
    import matplotlib.pyplot as plt

    sd = result.data[setting]
    shares, w = within_set_shares(sd), within_set_gaps(sd)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    axes[0].hist(shares, bins=np.linspace(0, 1, 21), color="C0")
    axes[0].set_xlabel("share of the set's most used expert")
    axes[0].set_ylabel("tasks (sets of >= 2 experts)")
    axes[0].set_title(f"{setting}: inside a set after $T_2$", fontsize=10)
    axes[1].hist(np.log10(w + 1e-6), bins=30, color="C1")
    axes[1].axvline(np.log10(sd.lam), color="k", ls="--", label="$\\lambda$")
    axes[1].set_xlabel("log10 within-set gate gap (frozen router)")
    axes[1].legend()
    return fig, {"top_share": shares}, {"within_gap": w}


def plot_loads_convergence(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Normalised load entropy per window and G_t with and without termination; figure
    + CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    t = np.arange(1, p.T + 1)
    csv: dict[str, np.ndarray] = {"t": t}
    for setting, ls in [("calibrated", "-"), ("recalled", ":")]:
        sd = result.data[setting]
        for term, fr in (("gap", sd.gap), ("never", sd.never)):
            assert fr.result is not None
            loads, ends = expert_loads(fr.result.experts, p.n_experts, p.window)
            H = load_entropy(loads, normalised=True).mean(axis=0)
            axes[0].plot(ends, H, ls, label=f"{setting}, {term}")
            plotting.band(
                axes[1 if term == "gap" else 2],
                t,
                fr.G_mean,
                fr.G_se,
                z=2.0,
                label=setting,
            )
            csv[f"{setting}_{term}_G_mean"], csv[f"{setting}_{term}_G_se"] = (
                fr.G_mean,
                fr.G_se,
            )
            csv[f"{setting}_{term}_F_mean"] = fr.F_mean
        csv[f"{setting}_single_G_mean"] = sd.single.G_mean
    axes[0].set_ylabel("normalised load entropy")
    axes[0].set_xlabel("round $t$")
    axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, -0.45), fontsize=9)
    cal = result.data["calibrated"]
    for ax, term in [(axes[1], "gap"), (axes[2], "never")]:
        ax.plot(t, cal.single.G_mean, "k", lw=0.8, label="single expert (calibrated)")
        ax.set_title(f"$G_t$, termination={term}", fontsize=10)
        ax.set_xlabel("round $t$")
        ax.axvline(cal.T1, color="grey", ls=":", lw=1)
        ax.set_ylabel("$G_t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(0.0, -0.45), fontsize=9)
    return fig, csv
