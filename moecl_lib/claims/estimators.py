"""Estimators shared by the chapters: ratios of means, seed means, small-sample s.e.

Every chapter module computes its quantities with these (one implementation each);
:mod:`moecl_lib.claims.rule` turns quantities into readings and verdicts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm
from scipy.stats import t as student_t

from moecl_lib.claims.rule import MARGIN, Quantity, Reading, estimate

Drop = Literal["nan", "nonfinite", "none"]


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
