"""Chapter ``fig2_dynamics``: Figure 2, F_t and G_t over the rounds for several M, with
and without termination (claims ``fig2_i`` ... ``fig2_v``).

**What is run.** For each setting of :mod:`moecl_lib.analysis.calibration`
(``calibrated`` with ``n_runs`` runs, ``recalled`` with ``recalled_runs`` runs), ``M``
in ``experts`` and termination rule ``gap`` / ``never`` (one run of ``M = 1``, which has
no router), ``T`` rounds from seed ``seed``:
``setting_config(setting, M, T=T, n_runs=..., seed=seed)`` with the setting's ``T1``
rule, so a configuration here equals the one of the same name in the Proposition 2/3 and
calibration chapters; the same configuration at the same ``n_runs`` and ``seed`` gives
the same numbers (with another ``n_runs`` the runs are other draws). Every member of a
setting uses the same task pools run by run, so differences and ratios between members
are *paired* over runs. ``N`` is ``n_tasks`` (6); ``M >= N`` are the "big" MoE models,
``1 < M < N`` the "small" ones.

**Readings** (per setting; ``G_T``, ``F_T`` = errors at round ``T``, means over runs;
thresholds ours ``[C]``):

* ``fig2_i`` single expert highest and flat: ``G_T(1) / G_T >= MARGIN_HIGHEST`` against
  the highest MoE curve (both terminations; paired ratio), the same for ``F_T``; and
  ``|mean G_t over (3T/4, T] / mean G_t over (T/2, 3T/4] - 1| <= PLATEAU_REL`` for
  ``M = 1`` (window means: a single run's G_t jumps with every update).
* ``fig2_ii`` with termination, convergence after a transient that grows with ``M``: for
  every big ``M``, ``G_T(M, gap) / G_T(1) <= CONVERGE_FRAC`` (paired ratio). Where all
  of these hold, two transient readings: *before* ``T1`` the descent round (first round
  after the initial peak of the mean curve at which ``G_t <= CONVERGE_FRAC * G_T(1)``;
  reached before ``T1``, so not set by ``T1``) grows with ``M``: least-squares slope
  over big ``M`` >= 0; *after* ``T1`` the transient (rounds from ``T1`` until the mean
  pool error ``G_pool`` stays within ``SETTLE_EPS * Delta`` of its final value, 0 if it
  already did at ``T1``) grows by at least ``TRANSIENT_SLOPE`` rounds per expert (an
  ideal MoE trained from scratch needs about ``1.75 M`` rounds, chapter
  ``sweep_experts``). ``T1 = 30 M`` itself is an input and is never read as evidence.
* ``fig2_iii`` without termination, no convergence:
  ``G_T(never) / G_T(gap) >= P2_RATIO`` (paired ratio; the threshold of Proposition 2)
  for every ``M > N ln N`` (the regime ``M = Omega(N ln N)`` of Propositions 1-2, SPEC
  §4.7); the ratio for ``N <= M <= N ln N`` and the difference for ``M < N`` are
  recorded, not read.
* ``fig2_iv`` ``M < N`` better than one expert but with a floor: for every small ``M``,
  ``G_T(1) - G_T(M, gap) >= 0`` (paired) and ``G_pool,T(M, gap) / Delta >= FLOOR_EPS``
  (the pool error, the error every task has with the expert the router picks for it,
  stays above the convergence threshold).
* ``fig2_v`` a larger ``M`` is not better: for consecutive big ``M < M'``,
  ``G_T(M', gap) - G_T(M, gap) >= 0``.

Verdicts follow from the readings by the rule of :mod:`moecl_lib.claims.rule`. A paired
ratio's s.e. is the delta-method one, ``sd(a_r - ratio * b_r) / (mean(b) sqrt(n))``.
Times and slopes of times are statistics of mean curves; their s.e. is the bootstrap one
over runs (``N_BOOT`` resamples, the same resampled runs for every member, see
:func:`moecl_lib.claims.sweep_experts.bootstrap_weights`); "not reached" counts as
``T + 1``. Quantity names end in ``_cal`` / ``_rec`` (setting).

**Where the parts are.** Parameters, simulations and the :class:`Result`:
:mod:`moecl_lib.claims.fig2_settings`; thresholds, quantities and readings of a setting:
:mod:`moecl_lib.claims.fig2_checks`; the figure: :mod:`moecl_lib.claims.fig2_figures`;
curve statistics shared with ``sweep_experts``: :mod:`moecl_lib.claims.curve_stats`.
"""

from __future__ import annotations

import time
from typing import Any

from moecl_lib.claims.curve_stats import (
    bootstrap_weights,
    descent_round,
    ols_slope,
    settle_round,
)
from moecl_lib.claims.estimators import paired_ratio
from moecl_lib.claims.fig2_checks import (
    CONVERGE_FRAC,
    FLOOR_EPS,
    MARGIN_HIGHEST,
    N_BOOT,
    P2_RATIO,
    PLATEAU_REL,
    SETTLE_EPS,
    SLOPE_FLOOR,
    TIME_FLOOR,
    TRANSIENT_SLOPE,
    compare_text,
    setting_checks,
)
from moecl_lib.claims.fig2_figures import plot, summary_lines
from moecl_lib.claims.fig2_settings import (
    CHAPTER,
    Params,
    Result,
    SettingRun,
    simulate_setting,
)
from moecl_lib.claims.rule import ClaimCheck, Quantity

__all__ = [
    "CHAPTER",
    "CONVERGE_FRAC",
    "FLOOR_EPS",
    "MARGIN_HIGHEST",
    "N_BOOT",
    "P2_RATIO",
    "PLATEAU_REL",
    "SETTINGS",
    "SETTLE_EPS",
    "SLOPE_FLOOR",
    "TIME_FLOOR",
    "TRANSIENT_SLOPE",
    "Params",
    "Result",
    "SettingRun",
    "bootstrap_weights",
    "compare_text",
    "descent_round",
    "ols_slope",
    "paired_ratio",
    "plot",
    "run",
    "setting_checks",
    "settle_round",
    "summary_lines",
]

SETTINGS: tuple[tuple[str, str], ...] = (("calibrated", "cal"), ("recalled", "rec"))


def run(p: Params = Params()) -> Result:
    """Simulate both settings and derive the quantities and the readings of ``fig2_i``
    ... ``fig2_v``."""
    start = time.perf_counter()
    settings: dict[str, SettingRun] = {}
    quantities: list[Quantity] = []
    texts: dict[str, str] = {}
    configs: dict[str, Any] = {}
    by_claim: dict[str, list[ClaimCheck]] = {}
    for setting, tag in SETTINGS:
        runs = p.n_runs if setting == "calibrated" else p.recalled_runs
        sr, arrays = simulate_setting(setting, p, runs)
        sr.tag = tag
        settings[setting] = sr
        for (M, term), fr in sr.members.items():
            configs[f"{setting}/M={M}/{term}"] = fr.config.to_dict()
        for c in setting_checks(sr, arrays, p, quantities, texts):
            by_claim.setdefault(c.claim, []).append(c)
    checks = [c for claim in sorted(by_claim) for c in by_claim[claim]]
    texts.update(
        horizon=str(p.T), runs_cal=str(p.n_runs), runs_rec=str(p.recalled_runs)
    )
    return Result(
        params=p,
        settings=settings,
        quantities=quantities,
        checks=checks,
        configs=configs,
        texts=texts,
        wall_time_s=time.perf_counter() - start,
    )
