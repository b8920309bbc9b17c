"""Closed forms for the single expert (M = 1) with ISOTROPIC Gaussian columns (SPEC
§6.5, tag [D]).

These are this project's derivations, not quotes of the paper. They are exact when every
one of the ``s`` columns of ``X_t`` is isotropic Gaussian (``signal="none"``), so that
``E[P_t] = (s/d) I``; under the Definition-1 generator (one signal column) they are only
approximations -- see :mod:`moecl_lib.theory.exact` for the exact recursion of that
generator.

Assumptions: ``w_0 = 0``, tasks i.i.d. uniform over the pool, ``s_t = s``,
``r = 1 - s/d``. Pool moments: ``wbar2 = (1/N) sum_n ||w_n||^2`` and the model gap
``Delta = (1/N^2) sum_{n != n'} ||w_n - w_n'||^2`` (ordered pairs).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.floating]


def pool_moments(W: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(wbar2, Delta)`` of one pool (N, d) or of a batch of pools (R, N, d)."""
    W = np.asarray(W, dtype=float)
    if W.ndim not in (2, 3):
        raise ValueError(f"W must have shape (N, d) or (R, N, d), got {W.shape}")
    wbar2 = (W**2).sum(-1).mean(-1)
    N = W.shape[-2]
    diff = W[..., :, None, :] - W[..., None, :, :]
    delta = (diff**2).sum(-1).sum((-1, -2)) / N**2
    return wbar2, delta


def expected_pool_moments(d: int, n_tasks: int, sigma0: float) -> tuple[float, float]:
    """``E[wbar2] = d sigma0^2`` and ``E[Delta] = 2 d sigma0^2 (N-1)/N`` for i.i.d.
    ``N(0, sigma0^2)`` entries."""
    return d * sigma0**2, 2.0 * d * sigma0**2 * (n_tasks - 1) / n_tasks


def _rounds(t: ArrayLike) -> FloatArray:
    t = np.asarray(t, dtype=float)
    if np.any(t < 1):
        raise ValueError("rounds t must be >= 1")
    return t


def single_expert_G(t: ArrayLike, r: float, wbar2: float, delta: float) -> FloatArray:
    """``E[G_t] = r^t wbar2 + ((t-1)/t) (1 - r^t) Delta`` (arrival-averaged, SPEC
    §5.1)."""
    t = _rounds(t)
    return r**t * wbar2 + (t - 1) / t * (1 - r**t) * delta


def single_expert_G_pool(
    t: ArrayLike, r: float, wbar2: float, delta: float
) -> FloatArray:
    """``E[G_t^pool] = r^t wbar2 + (1 - r^t) Delta`` (pool-averaged)."""
    t = _rounds(t)
    return r**t * wbar2 + (1 - r**t) * delta


def single_expert_F(t: ArrayLike, r: float, wbar2: float, delta: float) -> FloatArray:
    """``E[F_t]`` for t >= 2 (NaN at t = 1), SPEC §6.5.

    ``E[F_t] = (1/(t-1)) sum_{tau<t} [(r^t - r^tau) wbar2 + (1 - r - r^t + r^tau - (1-r)
    r^(t-tau)) Delta]``, evaluated in closed form via geometric sums (O(1) per t).
    Broadcasts over ``t``, ``wbar2``, ``delta``.
    """
    t = _rounds(t)
    m = np.where(t >= 2, t - 1, 1.0)  # number of past arrivals (guarded at t = 1)
    geo = (r - r**t) / (
        1 - r
    )  # sum_{tau=1}^{t-1} r^tau = sum_{tau=1}^{t-1} r^(t - tau)
    sum_w = m * r**t - geo
    sum_d = m * (1 - r - r**t) + r * geo  # geo - (1 - r) geo
    out = (sum_w * np.asarray(wbar2) + sum_d * np.asarray(delta)) / m
    return np.where(t >= 2, out, np.nan)


def single_expert_limits(r: float, delta: float) -> tuple[float, float]:
    """``(lim E[G_t], lim E[F_t]) = (Delta, (1 - r) Delta)``: the model-gap floor of a
    single expert."""
    return delta, (1 - r) * delta
