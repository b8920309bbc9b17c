"""Proposition 2 (claim ``prop2``): without termination the load-balancing loss erases
the specialisation.

**What the paper states** (SPEC §6.3; content [V], orders [R-L]): if the gating network
is trained forever, the load-balancing loss keeps acting on the arriving tasks. Around
``T1`` the expert sets are well separated; by ``t2 = ceil(eta^-1 sigma0^-0.75 M)`` the
load balancing has made *all* gate values nearly equal, the routing is essentially
random, the specialisation is lost and the errors stop converging; hence the router must
be frozen.

**What this module runs.** For each setting of :mod:`moecl_lib.analysis.calibration`
(``calibrated`` and ``recalled``; ``M = n_experts``) the same seed is simulated with the
``gap`` termination rule and with ``never`` (identical task streams and draws; the runs
coincide up to ``T1``), once with the setting's ``alpha`` and once with ``alpha = 0``
(no load-balancing loss), plus the single expert ``M = 1``. In the calibrated setting
the literal decaying aux gradient (``aux_grad="decay"``) is a further control
(quantities only). ``t2`` of the statement is 80 rounds for ``M = 20`` (before the
calibrated ``T1 = 600``), so every reading looks at the end of the horizon ``T``
instead. ``n_runs``, ``seed`` and ``T`` go straight into
:func:`moecl_lib.analysis.calibration.setting_config`: the ``calibrated``/``gap`` member
is the configuration of the other chapters that run ``M = 20`` (same configuration and
seed, same numbers).

**Readings** (one :class:`~moecl_lib.claims.rule.ClaimCheck` per setting; each must
clear its threshold by 2 standard errors, :mod:`moecl_lib.claims.rule`):

1. ``ratio``: ``G_T(never) / G_T(gap) >= 1.25`` (errors stop converging;
   ``ClaimThresholds.p2_ratio``), paired delta-method s.e. over runs.
2. ``difference``: ``G_T(never) - G_T(gap) >= 0`` (paired over runs;
   ``ClaimThresholds.p2_z`` = 2 s.e.).
3. ``load_balancing``: the excess ``G_T(never) - G_T(gap)`` with the setting's ``alpha``
   minus the same excess with ``alpha = 0`` is ``>= 0`` (the load-balancing loss drives
   the loss; paired over runs). In the recalled setting the ``alpha = 0`` router barely
   moves and (almost) never freezes, so its two arms coincide and this reading repeats
   reading 2.
4. ``separated_at_T1``: the expert sets learned by ``T1`` are well separated: across-set
   gate margin at ``T1`` ``>= lambda`` (the precondition stated by the proposition).
5. ``margin_erased``: without termination that margin falls by at least ``lambda``
   between ``T1`` and ``T``.
6. ``churn``: without termination more experts change their primary task per window at
   the end than with it (difference ``>= 0``, mean of the last three windows).
7. ``gates_equal``: by ``T`` the never-frozen router's gate values are all nearly equal:
   spread ``<= lambda``.
8. ``routing_random``: by ``T`` its routing is essentially random: normalised purity
   ``<= 0.5`` in the last three windows (0 = purity of the same rounds with the task
   labels shuffled inside each window, 1 = every expert serves one task).

Readings 7 and 8 are the collapse the statement describes; they fail where the data
contradict it, and the verdict rule then gives ``partly`` (some readings hold, some
fail).

**Conventions.** Expert sets "learned by ``T1``" are the primary tasks of the experts in
the routing of the *terminated* run in the window ``(T1, T1 + window]``
(``moecl_lib.analysis.routing.expert_sets``); gate gaps are
``moecl_lib.analysis.routing.gate_gaps`` on the engine's gate snapshots (every
``window`` rounds; "at ``T1``" is the first snapshot at or after ``T1`` of the
terminated run), averaged over tasks, then over runs. Purity and churn use consecutive
windows of ``window`` rounds (``purity_over_time``, ``primary_task_changes``). Every
quantity is a mean over the ``n_runs`` runs of a configuration with its standard error;
ratios of two means carry a delta-method s.e. (paired over runs when both come from the
same seeds). A quantity without data (e.g. no set learned) is NaN and its reading
inconclusive.

**Where the parts are.** Parameters, simulations and routing diagnostics of a setting:
:mod:`moecl_lib.claims.prop2_measure`; estimators shared with the Proposition 3
chapter: :mod:`moecl_lib.claims.estimators`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import ClaimThresholds
from moecl_lib.claims.estimators import (
    SettingEstimator,
    estimate_or_nan,
    independent_ratio,
    paired_ratio,
    reading_of,
    setting_estimator,
)
from moecl_lib.claims.prop2_measure import (
    DECAY_VARIANT,
    VARIANTS,
    Params,
    SettingData,
    measure_setting,
    nanmean_rows,
    shuffled_purity,
)
from moecl_lib.claims.prop_settings import run_settings
from moecl_lib.claims.record import SettingsResult, outcome_texts
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading
from moecl_lib.claims.specialisation_boundary import t2_of
from moecl_lib.linear.engine import SimulationResult

__all__ = [
    "CHAPTER",
    "CLAIM",
    "DECAY_VARIANT",
    "VARIANTS",
    "Params",
    "Result",
    "SettingData",
    "estimate_or_nan",
    "independent_ratio",
    "measure_setting",
    "outcome_texts",
    "paired_ratio",
    "plot_errors",
    "plot_gate_gaps",
    "plot_routing",
    "reading_of",
    "run",
    "shuffled_purity",
]

CHAPTER = "prop2_no_termination"
CLAIM = "prop2"
#: Number of final windows averaged for the late purity and churn.
LATE_WINDOWS = 3
#: Normalised late purity at or below which the routing counts as "essentially random"
#: (reading 8).
RANDOM_PURITY = 0.5


@dataclass
class Result(SettingsResult[Params, SettingData]):
    """Output of :func:`run`: per-setting data, quantities, claim checks and the
    configurations run."""

    chapter = CHAPTER

    def rows(self) -> list[dict[str, Any]]:
        """Summary table: one row per setting and variant (G_T, F_T, ratio)."""
        out = []
        for setting, sd in self.data.items():
            for var, fr in sd.runs.items():
                g, n = fr["gap"], fr["never"]
                out.append(
                    {
                        "setting": setting,
                        "variant": var,
                        "T1": sd.T1,
                        "G_T_gap": float(g.G_mean[-1]),
                        "G_T_never": float(n.G_mean[-1]),
                        "ratio": float(n.G_mean[-1] / g.G_mean[-1]),
                        "F_T_gap": float(g.F_mean[-1]),
                        "F_T_never": float(n.F_mean[-1]),
                        "G_T_single": float(sd.single.G_mean[-1]),
                    }
                )
        return out


def _result_of(sd: SettingData, var: str, term: str) -> SimulationResult:
    """The kept simulation result of one variant and termination rule."""
    res = sd.runs[var][term].result
    assert res is not None
    return res


def _error_quantities(
    sd: SettingData, q: dict[str, Quantity], est: SettingEstimator
) -> None:
    """``G_T`` and ``F_T`` with and without termination, the single expert's ``G_T``,
    the never/gap ratio and excess per variant, and the load-balancing excess."""
    s = sd.setting
    G = {v: {t: _result_of(sd, v, t).G[:, -1] for t in d} for v, d in sd.runs.items()}
    F = {v: {t: _result_of(sd, v, t).F[:, -1] for t in d} for v, d in sd.runs.items()}
    single = sd.single
    q["G_T_single"] = Quantity(
        f"G_T_single_{s}",
        float(single.G_mean[-1]),
        float(single.G_se[-1]),
        single.config.n_runs,
        label=f"G_T single expert ({s})",
    )
    for term in ("gap", "never"):
        est(f"G_T_{term}", f"G_T_{term}", G["base"][term], f"G_T {term}")
        est(f"F_T_{term}", f"F_T_{term}", F["base"][term], f"F_T {term}")
    for var in sd.runs:
        sfx = "" if var == "base" else f"_{var}"
        q[f"ratio{sfx}"] = paired_ratio(
            f"ratio_never_gap{sfx}_{s}",
            G[var]["never"],
            G[var]["gap"],
            label=f"G_T(never) / G_T(gap), {var} ({s})",
        )
        est(
            f"excess{sfx}",
            f"excess_never_gap{sfx}",
            G[var]["never"] - G[var]["gap"],
            f"G_T(never) - G_T(gap), {var}",
        )
    est(
        "frozen_alpha0",
        "frozen_alpha0",
        (_result_of(sd, "alpha0", "gap").T2 >= 0).astype(float),
        "fraction of terminated runs that froze, alpha = 0",
    )
    excess = {v: G[v]["never"] - G[v]["gap"] for v in ("base", "alpha0")}
    est(
        "excess_lb",
        "excess_load_balancing",
        excess["base"] - excess["alpha0"],
        "excess(alpha) - excess(alpha = 0)",
    )


def _late_routing_quantities(sd: SettingData, p: Params, est: SettingEstimator) -> None:
    """Routing at the end of the horizon: purity and churn of the last
    :data:`LATE_WINDOWS` windows, the churn excess and the normalised purity."""
    late = slice(-LATE_WINDOWS, None)
    churn = {t: nanmean_rows(sd.churn[t][:, late]) for t in ("gap", "never")}
    for term in ("gap", "never"):
        est(
            f"purity_late_{term}",
            f"purity_late_{term}",
            sd.purity[term][:, late].mean(axis=1),
            f"purity, last {LATE_WINDOWS} windows, {term}",
        )
        est(
            f"churn_late_{term}",
            f"churn_late_{term}",
            churn[term],
            f"churn, last {LATE_WINDOWS} windows, {term}",
        )
    est(
        "churn_excess",
        "churn_excess",
        churn["never"] - churn["gap"],
        "churn(never) - churn(gap)",
    )
    p0 = shuffled_purity(
        _result_of(sd, "base", "never"), p.window, LATE_WINDOWS, p.seed
    )
    p_late = sd.purity["never"][:, late].mean(axis=1)
    est(
        "purity_random",
        "purity_shuffled_never",
        p0,
        "purity with shuffled task labels, never",
    )
    est(
        "purity_norm",
        "purity_normalised_never",
        (p_late - p0) / (1.0 - p0),
        "normalised late purity, never",
    )


def _gate_gap_quantities(sd: SettingData, est: SettingEstimator) -> None:
    """Gate gaps of the sets learned by ``T1``: margin and within-set gap at ``T1``,
    margin and spread at ``T`` per termination rule, and the margin's drop."""
    i1, gap_g, nev_g = sd.i_T1, sd.gaps["gap"], sd.gaps["never"]
    est("margin_T1", "margin_T1", gap_g["across"][:, i1], "across-set margin at T1")
    est("within_T1", "within_gap_T1", gap_g["within"][:, i1], "within-set gap at T1")
    for term, gg in (("gap", gap_g), ("never", nev_g)):
        est(
            f"margin_T_{term}",
            f"margin_T_{term}",
            gg["across"][:, -1],
            f"across-set margin at T, {term}",
        )
        est(
            f"spread_T_{term}",
            f"spread_T_{term}",
            gg["spread"][:, -1],
            f"gate spread at T, {term}",
        )
    est(
        "margin_drop",
        "margin_drop_never",
        gap_g["across"][:, i1] - nev_g["across"][:, -1],
        "margin at T1 - margin at T, never",
    )


def setting_quantities(sd: SettingData, p: Params) -> dict[str, Quantity]:
    """The recorded quantities of one setting, keyed by short name (the recorded name
    adds ``_<setting>``)."""
    q: dict[str, Quantity] = {}
    est = setting_estimator(q, sd.setting)
    _error_quantities(sd, q, est)
    _late_routing_quantities(sd, p, est)
    _gate_gap_quantities(sd, est)
    return q


def setting_check(
    sd: SettingData, q: dict[str, Quantity], th: ClaimThresholds
) -> ClaimCheck:
    """The eight readings of Prop. 2 in one setting (module docstring)."""
    lam = sd.lam

    def reading(
        name: str, statement: str, key: str, threshold: float, sense: str = ">="
    ) -> Reading:
        return reading_of(name, statement, q[key], threshold, sense)

    readings = (
        reading(
            "ratio", f"G_T(never) / G_T(gap) >= {th.p2_ratio:g}", "ratio", th.p2_ratio
        ),
        reading("difference", "G_T(never) - G_T(gap) >= 0 (paired)", "excess", 0.0),
        reading(
            "load_balancing",
            "excess G_T(never) - G_T(gap) is larger with the load-balancing loss than "
            "with alpha = 0",
            "excess_lb",
            0.0,
        ),
        reading(
            "separated_at_T1",
            "sets learned by T1 are separated: across-set margin at T1 >= "
            f"lambda = {lam:g}",
            "margin_T1",
            lam,
        ),
        reading(
            "margin_erased",
            f"without termination that margin falls by >= lambda = {lam:g} by T",
            "margin_drop",
            lam,
        ),
        reading(
            "churn",
            "without termination more experts change primary task per window at the "
            "end (churn(never) - churn(gap) >= 0)",
            "churn_excess",
            0.0,
        ),
        reading(
            "gates_equal",
            f"collapse: without termination all gate values nearly equal at T "
            f"(spread <= lambda = {lam:g})",
            "spread_T_never",
            lam,
            "<=",
        ),
        reading(
            "routing_random",
            f"collapse: without termination the routing is random at the end "
            f"(normalised purity <= {RANDOM_PURITY:g})",
            "purity_norm",
            RANDOM_PURITY,
            "<=",
        ),
    )
    return ClaimCheck(CLAIM, sd.setting, readings)


def _configs(setting: str, sd: SettingData) -> dict[str, Any]:
    """The configurations of one setting, by ``<setting>|<variant>|<termination>``
    and ``<setting>|single``."""
    out = {
        f"{setting}|{var}|{term}": fr.config.to_dict()
        for var, d in sd.runs.items()
        for term, fr in d.items()
    }
    out[f"{setting}|single"] = sd.single.config.to_dict()
    return out


def run(
    params: Params = Params(), thresholds: ClaimThresholds = ClaimThresholds()
) -> Result:
    """Simulate both settings and derive the chapter's quantities and Prop. 2 claim
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


def regime_texts(result: Result) -> dict[str, str]:
    """Glue texts per setting: ``t2_<setting>``, ``T1_<setting>`` (rounds) and
    ``regime_<setting>``: whether the order of time scales of the statement
    (``T1 < t2``) holds in the simulated configuration."""
    out = {}
    for setting, sd in result.data.items():
        t2 = t2_of(sd.runs["base"]["gap"].config)
        out[f"t2_{setting}"] = str(t2)
        out[f"T1_{setting}"] = str(sd.T1)
        out[f"regime_{setting}"] = (
            "as the proposition assumes (T₁ < t₂)"
            if sd.T1 < t2
            else "reversed (t₂ ≤ T₁)"
        )
    return out


def plot_errors(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """F_t and G_t with and without termination (both settings) and the single expert;
    figure + CSV."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p = result.params
    t = np.arange(1, p.T + 1)
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.4), sharex=True)
    csv: dict[str, np.ndarray] = {"t": t}
    for col, (setting, sd) in enumerate(result.data.items()):
        for row, (key, label) in enumerate(
            [("F", "forgetting $F_t$"), ("G", "generalisation error $G_t$")]
        ):
            ax = axes[row, col]
            for term, fr in sd.runs["base"].items():
                m, se = getattr(fr, f"{key}_mean"), getattr(fr, f"{key}_se")
                plotting.band(
                    ax, t, m, se, z=2.0, label=f"M={p.n_experts}, termination={term}"
                )
                (
                    csv[f"{setting}_{term}_{key}_mean"],
                    csv[f"{setting}_{term}_{key}_se"],
                ) = m, se
            ax.plot(
                t,
                getattr(sd.single, f"{key}_mean"),
                color="k",
                lw=1,
                label="single expert (M=1)",
            )
            csv[f"{setting}_single_{key}_mean"] = getattr(sd.single, f"{key}_mean")
            ax.axvline(sd.T1, color="grey", ls=":", lw=1)
            ax.set_title(f"{setting}: {label}", fontsize=10)
            ax.set_ylabel(f"${key}_t$")
            if row == 1:
                ax.set_xlabel("round $t$")
    fig.tight_layout()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        fontsize=9,
    )
    return fig, csv


def plot_routing(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Purity and churn per window, both terminations, both settings; figure + CSV
    columns."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    csv: dict[str, np.ndarray] = {}
    for setting, sd in result.data.items():
        for term in ("gap", "never"):
            ls = "-" if term == "never" else "--"
            pm = sd.purity[term].mean(axis=0)
            cm = np.nanmean(sd.churn[term], axis=0)
            axes[0].plot(sd.window_ends, pm, ls, label=f"{setting}, {term}")
            axes[1].plot(sd.churn_ends, cm, ls, label=f"{setting}, {term}")
            csv[f"{setting}|{term}|purity"] = pm
            csv[f"{setting}|{term}|churn"] = np.concatenate([[np.nan], cm])
        csv["window_end"] = sd.window_ends
    axes[0].set_ylabel("routing purity")
    axes[1].set_ylabel("experts changing primary task")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(fontsize=7, loc="upper right")
    return fig, csv


def plot_gate_gaps(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Within-set gap, across-set margin and spread of the sets learned by T1, over
    time; figure + CSV."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    csv: dict[str, np.ndarray] = {}
    labels = {
        "within": "within-set gap",
        "across": "across-set margin",
        "spread": "spread",
    }
    for ax, (setting, sd) in zip(axes, result.data.items()):
        for term in ("gap", "never"):
            for key, lab in labels.items():
                m = np.nanmean(sd.gaps[term][key], axis=0)
                ax.plot(
                    sd.snapshot_rounds,
                    m,
                    "-" if term == "never" else "--",
                    label=f"{lab}, {term}",
                )
                csv[f"{setting}|{term}|{lab}"] = m
        ax.axvline(sd.T1, color="grey", ls=":", lw=1)
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("round $t$")
        csv["round"] = sd.snapshot_rounds
    axes[0].set_ylabel("gate value difference")
    axes[0].legend(fontsize=7)
    return fig, csv
