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
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib import figures as plotting
from moecl_lib.analysis.calibration import setting_config, setting_T1_per_expert
from moecl_lib.analysis.sweeps import FamilyRun, run_family
from moecl_lib.claims.estimators import paired_ratio
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate, fmt_number
from moecl_lib.claims.sweep_experts import (
    boot_quantity,
    bootstrap_weights,
    configs_text,
    ols_slope,
    reading_from,
)
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory.exact import single_expert_exact, unit_signal_directions
from moecl_lib.theory.moe import convergence_round

CHAPTER = "fig2_dynamics"
SETTINGS: tuple[tuple[str, str], ...] = (("calibrated", "cal"), ("recalled", "rec"))
MARGIN_HIGHEST = 1.1
"""(i): "highest" = the single expert's G_T (F_T) is at least this factor above the
highest MoE curve."""
PLATEAU_REL = 0.05
"""(i): largest relative change between the single expert's mean G_t over the third and
the last quarter of the horizon that still counts as flat."""
CONVERGE_FRAC = 0.5
"""(ii): a terminated MoE curve has converged if ``G_T <= CONVERGE_FRAC * G_T(single)``
(as in the Proposition 3 chapter)."""
SETTLE_EPS = 0.2
"""(ii): the pool error has settled once it stays within ``SETTLE_EPS * Delta`` of its
final value."""
TRANSIENT_SLOPE = 1.0
"""(ii): least growth (rounds per expert) of the post-T1 transient that counts as
growing with M."""
P2_RATIO = 1.25
"""(iii): ``G_T(never) / G_T(gap)`` at least this (the Proposition-2 threshold of
``moecl_lib.analysis.calibration``)."""
FLOOR_EPS = 0.1
"""(iv): a model keeps a floor if its pool error at T is ``>= FLOOR_EPS * Delta`` (the
convergence threshold of chapter ``sweep_experts``)."""
N_BOOT = 400
TIME_FLOOR = 3.0
"""Tolerance floor (rounds) of a descent round or post-T1 transient (threshold crossings
of mean curves); needed where the bootstrap s.e. is 0 (a post-T1 transient of 0 rounds
in every resample). The CPU-kernel variants moved no round; four other seeds stayed
within the tolerance."""
SLOPE_FLOOR = 0.3
"""Tolerance floor (rounds per expert) of a slope of such times."""

FloatArray = NDArray[np.floating]
Key = tuple[int, str]


@dataclass(frozen=True)
class Params:
    """The notebook's parameters (defaults = quick profile)."""

    experts: tuple[int, ...] = (1, 5, 10, 20)
    T: int = 1500
    n_runs: int = 96
    recalled_runs: int = 64
    n_theory_pools: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "experts", tuple(int(m) for m in self.experts))
        if self.experts[0] != 1 or len(self.experts) < 3:
            raise ValueError(
                f"experts={self.experts} must start with 1 and hold at least two MoE "
                "sizes"
            )


@dataclass
class SettingRun:
    """The curves of one setting: members keyed by ``(M, termination)``
    (``(1, "never")`` = single expert)."""

    setting: str
    tag: str
    members: dict[Key, FamilyRun]
    theory: dict[str, Any]
    N: int
    runs: int


@dataclass
class Result(ChapterResult):
    """One chapter run: per-setting runs, quantities, checks, configurations."""

    chapter = CHAPTER

    params: Params
    settings: dict[str, SettingRun]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    texts: dict[str, str]
    wall_time_s: float

    def config_text(self) -> str:
        return configs_text(self.configs)

    def table(self, setting: str) -> str:
        """G_t at a few rounds and F_T per member (for the reader; not checked)."""
        sr = self.settings[setting]
        T = self.params.T
        check_t = sorted({t for t in (100, T // 4, T // 2, T) if t <= T})
        rows = []
        for (M, term), fr in sr.members.items():
            row: dict[str, Any] = {
                "M": M,
                "termination": "-" if M == 1 else term,
                "T1": fr.config.T1_value if M > 1 else 0,
            }
            row.update({f"G@{t}": fr.G_mean[t - 1] for t in check_t})
            row["F@T"] = fr.F_mean[-1]
            rows.append(row)
        head = f"{setting} (model gap Delta = {sr.theory['model_gap']:.3f})"
        return head + "\n" + plotting.table(rows, digits=3)


# --------------------------------------------------------------------------- statistics
def descent_round(curves: ArrayLike, level: ArrayLike) -> FloatArray:
    """First round after the peak of each curve (..., T) at which it is ``<= level``
    (...,); NaN if never."""
    c = np.asarray(curves, dtype=float)
    lev = np.asarray(level, dtype=float)[..., None]
    t = np.arange(c.shape[-1])
    ok = (c <= lev) & (t >= np.argmax(c, axis=-1)[..., None])
    return np.where(ok.any(-1), np.argmax(ok, axis=-1) + 1.0, np.nan)


def settle_round(curves: ArrayLike, tol: ArrayLike) -> FloatArray:
    """First round from which each curve (..., T) stays within ``tol`` of its final
    value."""
    c = np.asarray(curves, dtype=float)
    return convergence_round(np.abs(c - c[..., -1:]), tol)


def compare_text(
    a: Quantity, b: Quantity, d: Quantity, lower: str, higher: str, same: str
) -> str:
    """Words for ``a`` vs ``b`` decided by the paired difference ``d = a - b`` and the
    2-s.e. margin."""
    if d.value <= -2 * d.se:
        word = lower
    elif d.value >= 2 * d.se:
        word = higher
    else:
        word = same
    return f"{word} ({fmt_number(a.value, a.se)} vs {fmt_number(b.value, b.se)})"


# ------------------------------------------------------------------------------ running
def _simulate(
    setting: str, p: Params, runs: int
) -> tuple[SettingRun, dict[Key, dict[str, FloatArray]]]:
    base = setting_config(
        setting, p.experts[-1], T=p.T, n_runs=runs, seed=p.seed, T1=None
    )
    per_expert = setting_T1_per_expert(setting)
    N = base.n_tasks
    members: dict[Key, FamilyRun] = {}
    arrays: dict[Key, dict[str, FloatArray]] = {}
    keys: list[Key] = [(1, "never")] + [
        (M, t) for M in p.experts[1:] for t in ("gap", "never")
    ]
    th: dict[str, Any] = {}
    for M, term in keys:
        fam = run_family(
            base,
            [{"n_experts": M, "termination": term}],
            keep_results=True,
            T1_per_expert=per_expert,
            progress=False,
        )
        fr = fam.runs[0]
        res = fr.result
        assert res is not None
        q4 = p.T // 4
        arr = {
            "G_T": res.G[:, -1].copy(),
            "F_T": res.F[:, -1].copy(),
            "Gpool_T": res.G_pool[:, -1].copy(),
            "G_q3": res.G[:, 2 * q4 : 3 * q4].mean(1),
            "G_q4": res.G[:, 3 * q4 :].mean(1),
        }
        if M >= N and term == "gap":
            arr["G"] = res.G.copy()
            arr["G_pool"] = res.G_pool.copy()
        if M == 1:
            arr["Delta"] = theory.pool_moments(res.pool.W)[1]
            k = min(p.n_theory_pools, runs)
            vhat = unit_signal_directions(res.pool)
            exact = single_expert_exact(
                res.pool.W[:k], None if vhat is None else vhat[:k], base.s, p.T
            )
            wbar2, gap = theory.pool_moments(res.pool.W)
            t = np.arange(1, p.T + 1)
            with warnings.catch_warnings():  # F is undefined (NaN) at t = 1
                warnings.simplefilter("ignore", RuntimeWarning)
                F_exact = np.nanmean(exact.F, axis=0)
            th = {
                "G_exact": exact.G.mean(axis=0),
                "F_exact": F_exact,
                "G_iso": theory.single_expert_G(t, base.r, wbar2.mean(), gap.mean()),
                "F_iso": theory.single_expert_F(t, base.r, wbar2.mean(), gap.mean()),
                "model_gap": float(gap.mean()),
                "model_gap_pools": gap,
                "G_T_exact_pools": exact.G[:, -1],
                "exact_pools": k,
                "G_T_sim_pools": res.G[:k, -1].copy(),
            }
        fr.result = None
        members[(M, term)] = fr
        arrays[(M, term)] = arr
    return SettingRun(setting, "", members, th, N, runs), arrays


def _setting_checks(
    sr: SettingRun,
    arrays: Mapping[Key, Mapping[str, FloatArray]],
    p: Params,
    quantities: list[Quantity],
    texts: dict[str, str],
) -> list[ClaimCheck]:
    tag, N, T, setting = sr.tag, sr.N, p.T, sr.setting
    moe = [M for M in p.experts if M > 1]
    big = [M for M in moe if M >= N]
    small = [M for M in moe if M < N]
    one = arrays[(1, "never")]
    q: dict[str, Quantity] = {}

    def add(x: Quantity) -> Quantity:
        quantities.append(x)
        q[x.name] = x
        return x

    # end-of-horizon errors
    add(estimate(f"G_T_single_{tag}", one["G_T"], label=f"{setting}: G_T, M=1"))
    add(estimate(f"F_T_single_{tag}", one["F_T"], label=f"{setting}: F_T, M=1"))
    for M in moe:
        for term in ("gap", "never"):
            a = arrays[(M, term)]
            add(
                estimate(
                    f"G_T_M{M}_{term}_{tag}",
                    a["G_T"],
                    label=f"{setting}: G_T, M={M}, {term}",
                )
            )
            add(
                estimate(
                    f"F_T_M{M}_{term}_{tag}",
                    a["F_T"],
                    label=f"{setting}: F_T, M={M}, {term}",
                )
            )
    # exact given a pool, but the pools are random: means over pools, with their s.e.
    add(
        estimate(
            f"model_gap_{tag}",
            sr.theory["model_gap_pools"],
            label=f"{setting}: mean model gap Delta of the pools",
        )
    )
    add(
        estimate(
            f"G_T_single_exact_{tag}",
            sr.theory["G_T_exact_pools"],
            label=(
                f"{setting}: exact E[G_T], M=1, first {sr.theory['exact_pools']} pools"
            ),
        )
    )
    add(
        estimate(
            f"G_T_single_sim_pools_{tag}",
            sr.theory["G_T_sim_pools"],
            label=f"{setting}: simulated G_T, M=1, same pools",
        )
    )

    # (i) single expert highest and flat
    rivals = [(M, t) for M in moe for t in ("gap", "never")]
    rG = max(rivals, key=lambda k: float(arrays[k]["G_T"].mean()))
    rF = max(rivals, key=lambda k: float(arrays[k]["F_T"].mean()))
    rg = add(
        paired_ratio(
            f"single_over_max_G_{tag}",
            one["G_T"],
            arrays[rG]["G_T"],
            label=f"{setting}: G_T(1) / G_T(M={rG[0]}, {rG[1]}) (highest MoE curve)",
            drop="none",
        )
    )
    rf = add(
        paired_ratio(
            f"single_over_max_F_{tag}",
            one["F_T"],
            arrays[rF]["F_T"],
            label=f"{setting}: F_T(1) / F_T(M={rF[0]}, {rF[1]}) (highest MoE curve)",
            drop="none",
        )
    )
    plateau = add(
        paired_ratio(
            f"single_plateau_{tag}",
            one["G_q4"] - one["G_q3"],
            one["G_q3"],
            label=f"{setting}: M=1, mean G_t over the last quarter / third quarter - 1",
            drop="none",
        )
    )
    checks = [
        ClaimCheck(
            "fig2_i",
            setting,
            (
                reading_from(
                    rg,
                    "G_highest",
                    f"G_T(M=1) / G_T of the highest MoE curve (M={rG[0]}, {rG[1]})",
                    MARGIN_HIGHEST,
                ),
                reading_from(
                    rf,
                    "F_highest",
                    f"F_T(M=1) / F_T of the highest MoE curve (M={rF[0]}, {rF[1]})",
                    MARGIN_HIGHEST,
                ),
                Reading(
                    "plateau",
                    "M=1: |mean G_t over the last quarter / over the third quarter - "
                    "1| (flat)",
                    abs(plateau.value),
                    PLATEAU_REL,
                    plateau.se,
                    "<=",
                ),
            ),
        )
    ]

    # (ii) convergence with termination, transient before / after T1
    conv = []
    for M in big:
        r = add(
            paired_ratio(
                f"ratio_gap_single_M{M}_{tag}",
                arrays[(M, "gap")]["G_T"],
                one["G_T"],
                label=f"{setting}: G_T(M={M}, gap) / G_T(M=1)",
                drop="none",
            )
        )
        conv.append(
            reading_from(
                r, f"converged_M{M}", f"G_T(M={M}, gap) / G_T(M=1)", CONVERGE_FRAC, "<="
            )
        )
    readings_ii = list(conv)
    if all(r.outcome == "holds" for r in conv) and len(big) >= 2:
        wb = bootstrap_weights(sr.runs, N_BOOT, p.seed)
        T1 = {M: sr.members[(M, "gap")].config.T1_value for M in big}
        level, level_b = (
            CONVERGE_FRAC * one["G_T"].mean(),
            CONVERGE_FRAC * (wb @ one["G_T"]),
        )
        Delta, Delta_b = one["Delta"].mean(), wb @ one["Delta"]
        desc_full, desc_boot, post_full, post_boot = [], [], [], []
        for M in big:
            G, Gp = arrays[(M, "gap")]["G"], arrays[(M, "gap")]["G_pool"]
            d_full = np.nan_to_num(descent_round(G.mean(0), level), nan=T + 1)
            d_boot = np.nan_to_num(descent_round(wb @ G, level_b), nan=T + 1)
            s_full = max(
                float(settle_round(Gp.mean(0), SETTLE_EPS * Delta)) - T1[M], 0.0
            )
            s_boot = np.maximum(
                settle_round(wb @ Gp, SETTLE_EPS * Delta_b) - T1[M], 0.0
            )
            add(
                boot_quantity(
                    f"descent_M{M}_{tag}",
                    float(d_full),
                    d_boot,
                    sr.runs,
                    floor=TIME_FLOOR,
                    label=(
                        f"{setting}: descent round (G_t <= {CONVERGE_FRAC} G_T(1)), "
                        f"M={M}, gap"
                    ),
                )
            )
            add(
                boot_quantity(
                    f"post_T1_M{M}_{tag}",
                    s_full,
                    s_boot,
                    sr.runs,
                    floor=TIME_FLOOR,
                    label=(
                        f"{setting}: rounds after T1={T1[M]} until G_pool settles, "
                        f"M={M}, gap"
                    ),
                )
            )
            desc_full.append(float(d_full))
            desc_boot.append(d_boot)
            post_full.append(s_full)
            post_boot.append(s_boot)
        ds = add(
            boot_quantity(
                f"descent_slope_{tag}",
                float(ols_slope(big, desc_full)),
                ols_slope(big, np.stack(desc_boot, -1)),
                sr.runs,
                floor=SLOPE_FLOOR,
                label=f"{setting}: slope of the descent round on M (M >= N)",
            )
        )
        ps = add(
            boot_quantity(
                f"post_T1_slope_{tag}",
                float(ols_slope(big, post_full)),
                ols_slope(big, np.stack(post_boot, -1)),
                sr.runs,
                floor=SLOPE_FLOOR,
                label=f"{setting}: slope of the post-T1 transient on M (M >= N)",
            )
        )
        texts[f"descent_before_T1_{tag}"] = (
            "before"
            if all(d < T1[M] for d, M in zip(desc_full, big))
            else "not always before"
        )
        readings_ii += [
            reading_from(
                ds,
                "descent_grows",
                "descent round before T1 (G_t <= half of G_T(1)): slope on M "
                "(rounds per expert)",
                0.0,
            ),
            reading_from(
                ps,
                "post_T1_grows",
                "transient after T1 (G_pool settles within "
                f"{SETTLE_EPS} Delta): slope on M (rounds per expert)",
                TRANSIENT_SLOPE,
            ),
        ]
    checks.append(ClaimCheck("fig2_ii", setting, tuple(readings_ii)))

    # (iii) no termination: worse end point than with termination (read for M > N ln N,
    # reported for M >= N)
    readings_iii = []
    for M in big:
        r = add(
            paired_ratio(
                f"ratio_never_gap_M{M}_{tag}",
                arrays[(M, "never")]["G_T"],
                arrays[(M, "gap")]["G_T"],
                label=f"{setting}: G_T(M={M}, never) / G_T(M={M}, gap)",
                drop="none",
            )
        )
        if M > N * np.log(N):
            readings_iii.append(
                reading_from(
                    r,
                    f"never_worse_M{M}",
                    f"G_T(M={M}, never) / G_T(M={M}, gap)",
                    P2_RATIO,
                )
            )
    if not readings_iii:
        raise ValueError(
            f"experts={p.experts}: (iii) needs an M above N ln N = {N * np.log(N):.1f}"
        )
    for M in small:
        a, b = q[f"G_T_M{M}_never_{tag}"], q[f"G_T_M{M}_gap_{tag}"]
        d = add(
            estimate(
                f"never_minus_gap_M{M}_{tag}",
                arrays[(M, "never")]["G_T"] - arrays[(M, "gap")]["G_T"],
                label=f"{setting}: G_T(M={M}, never) - G_T(M={M}, gap)",
            )
        )
        texts[f"never_vs_gap_M{M}_{tag}"] = compare_text(
            a, b, d, "ends lower", "ends higher", "ends at the same level within 2 s.e."
        )
    checks.append(ClaimCheck("fig2_iii", setting, tuple(readings_iii)))

    # (iv) M < N better than the single expert, with a floor
    readings_iv = []
    for M in small:
        a = add(
            estimate(
                f"single_minus_M{M}_{tag}",
                one["G_T"] - arrays[(M, "gap")]["G_T"],
                label=f"{setting}: G_T(1) - G_T(M={M}, gap)",
            )
        )
        b = add(
            paired_ratio(
                f"pool_floor_M{M}_{tag}",
                arrays[(M, "gap")]["Gpool_T"],
                one["Delta"],
                label=f"{setting}: G_pool,T(M={M}, gap) / Delta",
                drop="none",
            )
        )
        readings_iv += [
            reading_from(
                a, f"better_than_single_M{M}", f"G_T(M=1) - G_T(M={M}, gap)", 0.0
            ),
            reading_from(
                b,
                f"floor_M{M}",
                f"pool error at T / Delta, M={M}, gap (floor)",
                FLOOR_EPS,
            ),
        ]
    for M in big:
        add(
            paired_ratio(
                f"pool_T_M{M}_{tag}",
                arrays[(M, "gap")]["Gpool_T"],
                one["Delta"],
                label=f"{setting}: G_pool,T(M={M}, gap) / Delta",
                drop="none",
            )
        )
    if readings_iv:
        checks.append(ClaimCheck("fig2_iv", setting, tuple(readings_iv)))

    # (v) a larger M is not better at T
    readings_v = []
    for a_, b_ in zip(big, big[1:]):
        d = add(
            estimate(
                f"G_T_M{b_}_minus_M{a_}_{tag}",
                arrays[(b_, "gap")]["G_T"] - arrays[(a_, "gap")]["G_T"],
                label=f"{setting}: G_T(M={b_}, gap) - G_T(M={a_}, gap)",
            )
        )
        readings_v.append(
            reading_from(
                d,
                f"larger_not_better_M{b_}",
                f"G_T(M={b_}, gap) - G_T(M={a_}, gap)",
                0.0,
            )
        )
    checks.append(ClaimCheck("fig2_v", setting, tuple(readings_v)))
    return checks


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
        sr, arrays = _simulate(setting, p, runs)
        sr.tag = tag
        settings[setting] = sr
        for (M, term), fr in sr.members.items():
            configs[f"{setting}/M={M}/{term}"] = fr.config.to_dict()
        for c in _setting_checks(sr, arrays, p, quantities, texts):
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


# ----------------------------------------------------------------------------- plotting
COLORS = plotting.M_COLORS


def plot(result: Result, setting: str, out_dir: str) -> Any:
    """F_t and G_t of one setting (mean +- 1 s.e.), the exact and isotropic M=1 lines,
    T1 of each M."""
    import matplotlib.pyplot as plt

    sr, T = result.settings[setting], result.params.T
    th = sr.theory
    t = np.arange(1, T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    csv: dict[str, Any] = {"t": t}
    panels = [
        (axes[0], "F", "forgetting $F_t$"),
        (axes[1], "G", "overall generalisation error $G_t$"),
    ]
    for ax, key, title in panels:
        for (M, term), fr in sr.members.items():
            m, se = getattr(fr, f"{key}_mean"), getattr(fr, f"{key}_se")
            label = (
                "M=1 (single expert)"
                if M == 1
                else f"M={M}, " + ("with" if term == "gap" else "w/o") + " termination"
            )
            plotting.band(
                ax,
                t,
                m,
                se,
                z=1.0,
                label=label,
                color=COLORS.get(M),
                ls="-" if term == "gap" or M == 1 else "--",
                lw=1.2,
            )
            csv[f"M{M}_{term}_{key}_mean"], csv[f"M{M}_{term}_{key}_se"] = m, se
        ax.plot(
            t,
            th[f"{key}_exact"],
            color="0.45",
            lw=1.5,
            ls="-.",
            label=f"M=1 exact expectation ({th['exact_pools']} pools)",
        )
        ax.plot(
            t,
            th[f"{key}_iso"],
            color="0.6",
            lw=1,
            ls=":",
            label="M=1 isotropic closed form",
        )
        csv[f"theory_exact_{key}"], csv[f"theory_isotropic_{key}"] = (
            th[f"{key}_exact"],
            th[f"{key}_iso"],
        )
        for (M, term), fr in sr.members.items():
            if M > 1 and term == "gap":
                ax.axvline(
                    fr.config.T1_value, color=COLORS.get(M), ls=":", lw=0.8, alpha=0.7
                )
        ax.set_xlabel("round $t$")
        ax.set_ylabel(f"${key}_t$")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=3,
        fontsize=9,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(
        f"{setting} setting: N={sr.N}, mean $\\pm$ 1 s.e. over {sr.runs} runs "
        "(dotted verticals: $T_1$ of each M)",
        fontsize=10,
    )
    plotting.save_figure(fig, out_dir, f"fig2_{setting}")
    plotting.save_csv(out_dir, f"fig2_{setting}", csv)
    return fig


def summary_lines(checks: Sequence[ClaimCheck]) -> list[str]:
    """One line per claim and setting with its verdict, then its readings (for the
    reader)."""
    from moecl_lib.claims.rule import reading_line

    out = []
    for c in checks:
        out.append(f"{c.claim} [{c.setting}]: {c.verdict}")
        out += [f"    {reading_line(r)}" for r in c.readings]
    return out
