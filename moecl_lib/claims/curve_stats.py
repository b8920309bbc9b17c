"""Statistics of mean curves shared by the chapters ``sweep_experts`` and
``fig2_dynamics``: bootstrap resampling weights and quantities, least-squares slopes,
rank correlation, threshold-crossing rounds and the listing of the configurations run.

Conventions: round ``t`` has index ``t - 1`` and a round returned here counts from 1; a
curve is an array ``(..., T)`` over rounds; a bootstrap quantity is the statistic of the
full sample with the standard deviation over the resamples as its s.e.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from moecl_lib.claims.rule import Quantity
from moecl_lib.theory import moe as tm

BOOT_SEED = 20250
"""First entry of the bootstrap generator's seed ``(BOOT_SEED, seed)``."""

FloatArray = NDArray[np.floating]


def bootstrap_weights(n: int, n_boot: int, seed: int) -> FloatArray:
    """``(n_boot, n)`` resampling weights (multinomial counts / ``n``): ``w @ x`` is a
    resample's mean."""
    rng = np.random.default_rng((BOOT_SEED, int(seed)))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n


def ols_slope(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """Least-squares slope of ``y`` (..., K) on ``x`` (K,), along the last axis."""
    xv = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    xc = xv - xv.mean()
    return ((yv - yv.mean(-1, keepdims=True)) * xc).sum(-1) / (xc**2).sum()


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); 0 when ``x`` or ``y`` is
    constant."""
    rx, ry = rankdata(np.asarray(x, dtype=float)), rankdata(np.asarray(y, dtype=float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def censored_convergence(curves: ArrayLike, threshold: ArrayLike, T: int) -> FloatArray:
    """:func:`moecl_lib.theory.moe.convergence_round`, with "not reached" counted as
    ``T + 1``."""
    t = tm.convergence_round(curves, threshold)
    return np.where(np.isnan(t), float(T + 1), t)


def boot_quantity(
    name: str,
    value: float,
    boot: ArrayLike,
    n: int,
    *,
    floor: float = 0.0,
    label: str = "",
) -> Quantity:
    """A statistic of the full sample with the bootstrap standard deviation as its
    s.e."""
    b = np.asarray(boot, dtype=float)
    return Quantity(
        name, float(value), float(b.std(ddof=1)), n, "estimate", floor, label
    )


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
    return tm.convergence_round(np.abs(c - c[..., -1:]), tol)


def configs_text(configs: Mapping[str, Mapping[str, Any]]) -> str:
    """Shared fields of ``configs`` (name -> dict) once, then one line per configuration
    with the others."""
    names = list(configs)
    keys = sorted({k for c in configs.values() for k in c})
    shared = {
        k: configs[names[0]].get(k)
        for k in keys
        if all(k in configs[n] and configs[n][k] == configs[names[0]][k] for n in names)
    }
    lines = ["shared: " + ", ".join(f"{k}={v}" for k, v in shared.items())]
    for n in names:
        lines.append(
            f"{n}: "
            + ", ".join(f"{k}={v}" for k, v in configs[n].items() if k not in shared)
        )
    return "\n".join(lines)
