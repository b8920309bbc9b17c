"""Standard errors by resampling runs, for statistics that are not means (a crossing
point, a half time): the bootstrap over run indices."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from moecl_lib.analysis.onset import half_time, repeat_rate


def bootstrap_se(
    stat: Callable[[np.ndarray], float], n_runs: int, n_boot: int = 200
) -> float:
    """Standard error of ``stat(runs)`` over ``n_boot`` resamples of the run indices
    ``0..n_runs-1`` (fixed seed; resamples where the statistic is not finite, e.g. no
    crossing, are dropped; ``inf`` when fewer than two remain)."""
    rng = np.random.default_rng(0)
    boot = np.array(
        [stat(rng.integers(n_runs, size=n_runs)) for _ in range(n_boot)], dtype=float
    )
    boot = boot[np.isfinite(boot)]
    return float(boot.std(ddof=1)) if boot.size > 1 else math.inf


def onset_estimate(res: Any, n_boot: int = 200) -> tuple[float, float, int]:
    """Half time of the repeat rate of a simulation, its bootstrap standard error over
    runs (``n_boot`` resamples, fixed seed; resamples that never reach 1/2 are
    dropped) and the number of runs."""
    value = half_time(repeat_rate(res.experts, res.tasks))
    R = res.experts.shape[0]
    se = bootstrap_se(
        lambda i: half_time(repeat_rate(res.experts[i], res.tasks[i])), R, n_boot
    )
    return value, se, R
