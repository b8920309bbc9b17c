"""Estimators shared by the chapters: ratios of means (paired and independent), seed
means, small-sample s.e., estimates that may lack data (NaN), least-margin readings over
``M`` and the agreement of a simulation with a reference curve.

Every chapter module computes its quantities with these (one implementation each);
:mod:`moecl_lib.claims.rule` turns quantities into readings and verdicts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm
from scipy.stats import t as student_t

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.rule import MARGIN, Quantity, Reading, estimate

Drop = Literal["nan", "nonfinite", "none"]
SettingEstimator = Callable[[str, str, Sequence[float] | np.ndarray, str], None]
"""``est(key, name, samples, label)`` of :func:`setting_estimator`."""


def ratio_of_means(
    num: ArrayLike, den: ArrayLike, *, drop: Drop = "nan"
) -> tuple[float, float, int]:
    """``mean(num) / mean(den)`` over paired samples (same runs) with its delta-method
    s.e. and the number of pairs used.

    ``den`` broadcasts against ``num``; ``drop`` leaves out the pairs with a NaN
    (``"nan"``), with a NaN or an infinity (``"nonfinite"``), or none (``"none"``). The
    s.e. is 0 for a single pair.
    """
    a = np.asarray(num, dtype=float).ravel()
    b = np.broadcast_to(np.asarray(den, dtype=float), np.shape(num)).ravel()
    if drop == "nan":
        ok = ~(np.isnan(a) | np.isnan(b))
        a, b = a[ok], b[ok]
    elif drop == "nonfinite":
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
    r = float(a.mean() / b.mean())
    z = (a - r * b) / b.mean()
    se = float(z.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    return r, se, int(a.size)


def paired_ratio(
    name: str,
    num: ArrayLike,
    den: ArrayLike,
    *,
    label: str = "",
    floor: float = 0.0,
    drop: Drop = "nan",
) -> Quantity:
    """:func:`ratio_of_means` as an ``estimate`` quantity."""
    r, se, n = ratio_of_means(num, den, drop=drop)
    return Quantity(name, r, se, n, "estimate", floor, label)


def paired_difference(
    name: str, a: np.ndarray, b: np.ndarray, *, floor: float, label: str = ""
) -> Quantity:
    """Mean of the per-seed differences ``a - b`` (same seeds, same streams) with its
    s.e."""
    return estimate(
        name, np.asarray(a, float) - np.asarray(b, float), floor=floor, label=label
    )


def seed_mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean over seeds and its standard error (NaN seeds left out; 0 for one seed, NaN
    for none)."""
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), (
        float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    )


def small_sample_se(se: float, n: int) -> float:
    """The s.e. of a mean over ``n`` seeds as a reading uses it:
    ``se * t_{n-1}(q) / z(q)`` with ``q`` the one-sided level of the rule's margin
    (``Phi(MARGIN)``), so that clearing ``MARGIN`` adjusted standard errors is as strong
    evidence with a standard deviation estimated from ``n - 1`` degrees of freedom as
    ``MARGIN`` known standard errors (factor 2.15 for 3 seeds, 1.43 for 5, 1.13 for 10,
    -> 1)."""
    if n < 2 or se == 0:
        return se
    level = float(norm.cdf(MARGIN))
    return float(se * student_t.ppf(level, n - 1) / MARGIN)


def nanmean0(x: np.ndarray) -> np.ndarray:
    """Mean over runs (axis 0) ignoring NaN (``F_1``), without all-NaN warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(x, dtype=float), axis=0)


def least_margin(
    name: str,
    statement: str,
    cands: Mapping[int, Quantity],
    threshold: float,
    sense: Literal[">=", "<="] = "<=",
    *,
    absolute: bool = False,
    center: float = 0.0,
) -> Reading:
    """The reading ``q_M (sense) threshold`` with the least margin over ``M`` (all hold
    iff it holds); ``absolute`` compares ``|q_M - center|`` (same s.e.). The statement
    names the ``M`` set and the least-margin ``M``."""
    if not cands:
        raise ValueError(f"reading {name!r}: no candidate M")
    rs = {
        M: Reading(
            name,
            statement,
            abs(q.value - center) if absolute else q.value,
            threshold,
            q.se,
            sense,
        )
        for M, q in cands.items()
    }
    M = min(rs, key=lambda m: rs[m].z)
    ms = ", ".join(str(m) for m in cands)
    r = rs[M]
    return Reading(
        name,
        f"{statement}, every M in {{{ms}}} (least margin: M = {M})",
        r.estimate,
        r.threshold,
        r.se,
        r.sense,
    )


def estimate_or_nan(
    name: str, samples: Sequence[float] | np.ndarray, *, label: str = ""
) -> Quantity:
    """:func:`~moecl_lib.claims.rule.estimate`, or a NaN quantity (``n = 0``) when no
    sample is finite (e.g. purity after ``T2`` when no run froze)."""
    x = np.asarray(samples, dtype=float)
    if not np.isfinite(x).any():
        return Quantity(name, math.nan, 0.0, 0, "estimate", 0.0, label)
    return estimate(name, x, label=label)


def reading_of(
    name: str, statement: str, q: Quantity, threshold: float, sense: str = ">="
) -> Reading:
    """A reading on quantity ``q``; without data (NaN) it is a tie, hence inconclusive,
    and says so."""
    if math.isnan(q.value):
        no_data = statement + " [no data]"
        return Reading(name, no_data, threshold, threshold, 0.0, sense)  # type: ignore[arg-type]
    return Reading(name, statement, q.value, threshold, q.se, sense)  # type: ignore[arg-type]


def independent_ratio(
    name: str, num: Sequence[float], den: Sequence[float], *, label: str = ""
) -> Quantity:
    """``mean(num) / mean(den)`` of two independent samples, delta-method s.e. as
    ``|r| hypot(se_a / a, se_b / b)`` (the Proposition 2/3 chapters;
    :func:`moecl_lib.claims.prop4_single_expert.independent_ratio` computes the same
    s.e. in another order, for the theory chapters)."""
    qa, qb = estimate("a", num), estimate("b", den)
    r = qa.value / qb.value
    se = abs(r) * math.hypot(qa.se / qa.value, qb.se / qb.value)
    return Quantity(name, r, se, min(qa.n, qb.n), "estimate", 0.0, label)


def setting_estimator(q: dict[str, Quantity], setting: str) -> SettingEstimator:
    """``est(key, name, samples, label)``: store :func:`estimate_or_nan` of ``samples``
    as ``q[key]``, named ``<name>_<setting>`` and labelled ``<label> (<setting>)`` (the
    per-setting quantities of the Proposition 2/3 chapters)."""

    def est(
        key: str, name: str, samples: Sequence[float] | np.ndarray, label: str
    ) -> None:
        q[key] = estimate_or_nan(
            f"{name}_{setting}", samples, label=f"{label} ({setting})"
        )

    return est


def agreement(
    sim: np.ndarray,
    ref: np.ndarray,
    rounds: Sequence[int],
    z_tolerance: float,
    slack: float = 0.0,
) -> float:
    """``max_t |mean(sim - ref)| / (z_tolerance * s.e. + slack)`` over ``rounds``
    (paired over runs): below 1 means that the simulation agrees with the reference at
    every round within ``z_tolerance`` s.e. (+ slack)."""
    m, se = mean_se(np.asarray(sim, dtype=float) - np.asarray(ref, dtype=float))
    idx = np.asarray(rounds, dtype=int) - 1
    return float(np.max(np.abs(m[idx]) / (z_tolerance * se[idx] + slack)))


def agreement_quantity(
    name: str, value: float, z_tolerance: float, n: int, label: str
) -> Quantity:
    """An ``agree_*`` quantity: a max of ``|z| / z_tolerance``, recorded with s.e.
    ``1 / z_tolerance``."""
    return Quantity(name, value, 1.0 / z_tolerance, n, "estimate", 0.0, label)


def reading_from(
    q: Quantity, name: str, statement: str, threshold: float, sense: str = ">="
) -> Reading:
    """A reading on a recorded quantity (its value and s.e.)."""
    return Reading(name, statement, q.value, threshold, q.se, sense)  # type: ignore[arg-type]


def named_reading(
    qs: Mapping[str, Quantity], name: str, statement: str, threshold: float
) -> Reading:
    """The reading ``qs[name] >= threshold``, named after the quantity."""
    return reading_from(qs[name], name, statement, threshold)
