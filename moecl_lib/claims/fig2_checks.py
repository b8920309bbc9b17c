"""The quantities and claim checks of one setting of the Figure 2 chapter
(:mod:`moecl_lib.claims.fig2_dynamics`, whose docstring states the readings): the
thresholds, end-of-horizon errors and the readings of ``fig2_i`` ... ``fig2_v``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from moecl_lib.claims.curve_stats import (
    boot_quantity,
    bootstrap_weights,
    descent_round,
    ols_slope,
    settle_round,
)
from moecl_lib.claims.estimators import paired_ratio, reading_from
from moecl_lib.claims.fig2_settings import FloatArray, Key, Params, SettingRun
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate, fmt_number

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


@dataclass
class Recorder:
    """The chapter's quantities in the order they are recorded (``quantities``) and
    this setting's by name (``by_name``)."""

    quantities: list[Quantity]
    by_name: dict[str, Quantity] = field(default_factory=dict)

    def add(self, x: Quantity) -> Quantity:
        """Record ``x`` and return it."""
        self.quantities.append(x)
        self.by_name[x.name] = x
        return x


Arrays = Mapping[Key, Mapping[str, FloatArray]]


def _error_quantities(
    sr: SettingRun, arrays: Arrays, moe: list[int], rec: Recorder
) -> None:
    """End-of-horizon errors of every member and the single expert's theory on the
    pools."""
    tag, setting = sr.tag, sr.setting
    add, one = rec.add, arrays[(1, "never")]
    add(estimate(f"G_T_single_{tag}", one["G_T"], label=f"{setting}: G_T, M=1"))
    add(estimate(f"F_T_single_{tag}", one["F_T"], label=f"{setting}: F_T, M=1"))
    for M in moe:
        for term in ("gap", "never"):
            for key in ("G_T", "F_T"):
                add(
                    estimate(
                        f"{key}_M{M}_{term}_{tag}",
                        arrays[(M, term)][key],
                        label=f"{setting}: {key}, M={M}, {term}",
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


def _check_i(
    sr: SettingRun, arrays: Arrays, moe: list[int], rec: Recorder
) -> ClaimCheck:
    """(i) The single expert is highest (``G_T`` and ``F_T`` against the highest MoE
    curve) and flat (its last two quarters)."""
    tag, setting = sr.tag, sr.setting
    add, one = rec.add, arrays[(1, "never")]
    rivals = [(M, t) for M in moe for t in ("gap", "never")]
    highest: dict[str, tuple[Key, Quantity]] = {}  # G / F -> highest MoE member, ratio
    for k in ("G", "F"):
        top = max(rivals, key=lambda m, k=k: float(arrays[m][f"{k}_T"].mean()))
        highest[k] = (
            top,
            add(
                paired_ratio(
                    f"single_over_max_{k}_{tag}",
                    one[f"{k}_T"],
                    arrays[top][f"{k}_T"],
                    label=(
                        f"{setting}: {k}_T(1) / {k}_T(M={top[0]}, {top[1]}) "
                        "(highest MoE curve)"
                    ),
                    drop="none",
                )
            ),
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
    return ClaimCheck(
        "fig2_i",
        setting,
        (
            *(
                reading_from(
                    q,
                    f"{k}_highest",
                    f"{k}_T(M=1) / {k}_T of the highest MoE curve (M={top[0]}, "
                    f"{top[1]})",
                    MARGIN_HIGHEST,
                )
                for k, (top, q) in highest.items()
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


def _check_ii(
    sr: SettingRun,
    arrays: Arrays,
    p: Params,
    big: list[int],
    rec: Recorder,
    texts: dict[str, str],
) -> ClaimCheck:
    """(ii) With termination every big ``M`` converges; where all do (and there are two
    or more), the transients before and after ``T1`` grow with ``M``."""
    tag, setting = sr.tag, sr.setting
    add, one = rec.add, arrays[(1, "never")]
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
        readings_ii += _transient_readings(sr, arrays, p, big, rec, texts)
    return ClaimCheck("fig2_ii", setting, tuple(readings_ii))


@dataclass
class Transients:
    """Descent rounds and post-``T1`` transients per big ``M``: full-sample values and
    bootstrap resamples."""

    desc_full: list[float] = field(default_factory=list)
    desc_boot: list[FloatArray] = field(default_factory=list)
    post_full: list[float] = field(default_factory=list)
    post_boot: list[FloatArray] = field(default_factory=list)


def _transient_times(
    sr: SettingRun,
    arrays: Arrays,
    p: Params,
    big: list[int],
    T1: dict[int, int],
    rec: Recorder,
) -> Transients:
    """The descent round and the post-``T1`` transient of every big ``M`` (recorded,
    with bootstrap s.e.)."""
    tag, setting, T = sr.tag, sr.setting, p.T
    one = arrays[(1, "never")]
    wb = bootstrap_weights(sr.runs, N_BOOT, p.seed)
    level, level_b = (
        CONVERGE_FRAC * one["G_T"].mean(),
        CONVERGE_FRAC * (wb @ one["G_T"]),
    )
    Delta, Delta_b = one["Delta"].mean(), wb @ one["Delta"]
    out = Transients()
    for M in big:
        G, Gp = arrays[(M, "gap")]["G"], arrays[(M, "gap")]["G_pool"]
        d_full = np.nan_to_num(descent_round(G.mean(0), level), nan=T + 1)
        d_boot = np.nan_to_num(descent_round(wb @ G, level_b), nan=T + 1)
        s_full = max(float(settle_round(Gp.mean(0), SETTLE_EPS * Delta)) - T1[M], 0.0)
        s_boot = np.maximum(settle_round(wb @ Gp, SETTLE_EPS * Delta_b) - T1[M], 0.0)
        rec.add(
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
        rec.add(
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
        out.desc_full.append(float(d_full))
        out.desc_boot.append(d_boot)
        out.post_full.append(s_full)
        out.post_boot.append(s_boot)
    return out


def _transient_readings(
    sr: SettingRun,
    arrays: Arrays,
    p: Params,
    big: list[int],
    rec: Recorder,
    texts: dict[str, str],
) -> list[Reading]:
    """(ii) The slopes on ``M`` of the descent round (before ``T1``) and of the
    post-``T1`` transient, as readings."""
    tag, setting = sr.tag, sr.setting
    T1 = {M: sr.members[(M, "gap")].config.T1_value for M in big}
    tr = _transient_times(sr, arrays, p, big, T1, rec)
    ds = rec.add(
        boot_quantity(
            f"descent_slope_{tag}",
            float(ols_slope(big, tr.desc_full)),
            ols_slope(big, np.stack(tr.desc_boot, -1)),
            sr.runs,
            floor=SLOPE_FLOOR,
            label=f"{setting}: slope of the descent round on M (M >= N)",
        )
    )
    ps = rec.add(
        boot_quantity(
            f"post_T1_slope_{tag}",
            float(ols_slope(big, tr.post_full)),
            ols_slope(big, np.stack(tr.post_boot, -1)),
            sr.runs,
            floor=SLOPE_FLOOR,
            label=f"{setting}: slope of the post-T1 transient on M (M >= N)",
        )
    )
    texts[f"descent_before_T1_{tag}"] = (
        "before"
        if all(d < T1[M] for d, M in zip(tr.desc_full, big))
        else "not always before"
    )
    return [
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


def _check_iii(
    sr: SettingRun,
    arrays: Arrays,
    p: Params,
    big: list[int],
    small: list[int],
    rec: Recorder,
    texts: dict[str, str],
) -> ClaimCheck:
    """(iii) Without termination a worse end point than with it: read for
    ``M > N ln N``, recorded for ``M >= N``; for ``M < N`` the difference is recorded
    and worded."""
    tag, setting, N = sr.tag, sr.setting, sr.N
    readings_iii = []
    for M in big:
        r = rec.add(
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
        a, b = rec.by_name[f"G_T_M{M}_never_{tag}"], rec.by_name[f"G_T_M{M}_gap_{tag}"]
        d = rec.add(
            estimate(
                f"never_minus_gap_M{M}_{tag}",
                arrays[(M, "never")]["G_T"] - arrays[(M, "gap")]["G_T"],
                label=f"{setting}: G_T(M={M}, never) - G_T(M={M}, gap)",
            )
        )
        texts[f"never_vs_gap_M{M}_{tag}"] = compare_text(
            a, b, d, "ends lower", "ends higher", "ends at the same level within 2 s.e."
        )
    return ClaimCheck("fig2_iii", setting, tuple(readings_iii))


def _check_iv(
    sr: SettingRun, arrays: Arrays, big: list[int], small: list[int], rec: Recorder
) -> ClaimCheck | None:
    """(iv) ``M < N`` is better than the single expert but keeps a floor (``None``
    without a small ``M``); the pool error of the big ``M`` is recorded."""
    tag, setting = sr.tag, sr.setting
    add, one = rec.add, arrays[(1, "never")]
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
        return ClaimCheck("fig2_iv", setting, tuple(readings_iv))
    return None


def _check_v(
    sr: SettingRun, arrays: Arrays, big: list[int], rec: Recorder
) -> ClaimCheck:
    """(v) A larger ``M`` is not better at ``T`` (consecutive big ``M``)."""
    tag, setting = sr.tag, sr.setting
    readings_v = []
    for a_, b_ in zip(big, big[1:]):
        d = rec.add(
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
    return ClaimCheck("fig2_v", setting, tuple(readings_v))


def setting_checks(
    sr: SettingRun,
    arrays: Arrays,
    p: Params,
    quantities: list[Quantity],
    texts: dict[str, str],
) -> list[ClaimCheck]:
    """The quantities (appended to ``quantities``) and claim checks of one setting;
    run-dependent words go to ``texts``."""
    moe = [M for M in p.experts if M > 1]
    big = [M for M in moe if M >= sr.N]
    small = [M for M in moe if M < sr.N]
    rec = Recorder(quantities)
    _error_quantities(sr, arrays, moe, rec)
    checks = [
        _check_i(sr, arrays, moe, rec),
        _check_ii(sr, arrays, p, big, rec, texts),
        _check_iii(sr, arrays, p, big, small, rec, texts),
    ]
    check_iv = _check_iv(sr, arrays, big, small, rec)
    if check_iv is not None:
        checks.append(check_iv)
    checks.append(_check_v(sr, arrays, big, rec))
    return checks
