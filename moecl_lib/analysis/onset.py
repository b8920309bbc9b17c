"""When does the routing of a task stop moving? The repeat indicator of the router's
choices.

Convention (ours, [C]): round ``t`` is a *repeat* when its task goes to the same expert
as that task's previous arrival; the first arrival of a task is undefined (NaN). A
router that cycles through the experts (locality pushes repel each task from the expert
that learned it) repeats almost never; a specialised router (one expert keeps the task)
repeats almost always. The *half time* is the first round at which the repeat rate,
averaged over runs and smoothed over ``smooth`` rounds, reaches 1/2.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def repeat_indicator(experts: ArrayLike, tasks: ArrayLike) -> NDArray[np.floating]:
    """Per-run, per-round repeat indicator (1.0 / 0.0; NaN at a task's first arrival),
    shape (R, T)."""
    e = np.atleast_2d(np.asarray(experts))
    n = np.atleast_2d(np.asarray(tasks))
    if e.shape != n.shape:
        raise ValueError(
            f"experts {e.shape} and tasks {n.shape} must have the same shape"
        )
    order = np.argsort(n, axis=1, kind="stable")
    ns = np.take_along_axis(n, order, axis=1)
    es = np.take_along_axis(e, order, axis=1)
    same_task = ns[:, 1:] == ns[:, :-1]
    value = np.where(same_task, (es[:, 1:] == es[:, :-1]).astype(float), np.nan)
    out = np.full(e.shape, np.nan)
    np.put_along_axis(out, order[:, 1:], value, axis=1)
    return out


def repeat_rate(experts: ArrayLike, tasks: ArrayLike) -> NDArray[np.floating]:
    """Mean repeat indicator over runs per round, shape (T,) (NaN where no run has a
    defined value)."""
    ind = repeat_indicator(experts, tasks)
    defined = ~np.isnan(ind)
    count = defined.sum(axis=0)
    total = np.where(defined, ind, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def half_time(rate: ArrayLike, smooth: int = 11) -> float:
    """First round (1-based) at which the ``smooth``-round moving average of ``rate``
    reaches 1/2 (inf if never)."""
    r = np.nan_to_num(np.asarray(rate, dtype=float), nan=0.0)
    k = max(1, int(smooth))
    avg = np.convolve(r, np.ones(k) / k, mode="same")
    hit = np.flatnonzero(avg >= 0.5)
    return float(hit[0] + 1) if hit.size else float("inf")
