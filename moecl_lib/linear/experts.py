"""Linear experts of R runs with the exact incremental F_t / G_t bookkeeping (runs-first
layout).

This is the plain building block of the simulators that route by a rule of their own
rather than by the paper's trained router: the forced/oracle routings of
:mod:`moecl_lib.theory.moe` and the Expert-Gate and oracle routers of
:mod:`moecl_lib.expert_gate.linear`. The batched engine (:mod:`moecl_lib.linear.engine`)
does the same arithmetic in an optimised runs-last layout; replaying the engine's
routing through this class reproduces its F_t and G_t (``tests/test_expert_gate.py``,
the linear replay test).

Conventions (SPEC §3.1, §5.1): the chosen expert moves to the minimum-change
interpolator of the round, ``w <- w + X (X^T X)^{-1} (y - X^T w)`` (Eq. 4, solved, never
inverted). With ``D[m, n] = ||w^(m) - w_n||^2`` and ``C[m, n]`` the past arrivals of
task n learned by expert m, ``G_t = sum(C_t * D_t) / t`` and
``F_t = (sum(C_{t-1} * D_t) - sum_{tau<t} E_tau(tau)) / (t - 1)`` (NaN at t = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass(frozen=True)
class RoundMetrics:
    """Metrics right after one round, each of shape (R,): ``F_t`` (NaN at t = 1),
    ``G_t``, and ``E_t(t)``."""

    F: FloatArray
    G: FloatArray
    err_new: FloatArray


class LinearExperts:
    """``M`` linear experts per run (all zero at start) and the error bookkeeping of
    SPEC §5.1.

    Args:
        W: ground truths of every run, (R, N, d).
        n_experts: M.
        dtype: floating type of the state.
    """

    def __init__(
        self, W: ArrayLike, n_experts: int, dtype: np.dtype | type = np.float64
    ) -> None:
        self.W = np.asarray(W, dtype=dtype)
        if self.W.ndim != 3:
            raise ValueError(f"W must have shape (R, N, d), got {self.W.shape}")
        R, N, d = self.W.shape
        self.runs = np.arange(R)
        self.w = np.zeros((R, n_experts, d), dtype=dtype)
        self.D = np.repeat(
            (self.W**2).sum(-1)[:, None, :], n_experts, axis=1
        )  # (R, M, N)
        self.C = np.zeros((R, n_experts, N), dtype=dtype)
        self.S = np.zeros(R, dtype=dtype)
        self.t = 0

    def set_experts(self, runs: IntArray, experts: IntArray, values: ArrayLike) -> None:
        """Overwrite the parameters of expert ``experts[i]`` of run ``runs[i]`` (e.g.
        initialise a new expert)."""
        self.w[runs, experts] = values
        self.D[runs, experts] = (
            (self.w[runs, experts][:, None, :] - self.W[runs]) ** 2
        ).sum(-1)

    def learn(
        self, m: IntArray, n: IntArray, X: FloatArray, y: FloatArray
    ) -> RoundMetrics:
        """Update expert ``m[r]`` of every run on its round ``(X[r], y[r])`` of task
        ``n[r]``; advance t by one.

        Args:
            m: chosen expert per run, (R,).
            n: arriving task per run, (R,).
            X: round features, (R, d, s) (columns are samples).
            y: round labels, (R, s).
        """
        runs = self.runs
        self.t += 1
        t = self.t
        w_old = self.w[runs, m]
        resid = y - np.einsum("rds,rd->rs", X, w_old)
        gram = np.einsum("rds,rdk->rsk", X, X)
        coef = np.linalg.solve(gram, resid[..., None])[..., 0]
        w_new = w_old + np.einsum("rds,rs->rd", X, coef)
        self.w[runs, m] = w_new
        self.D[runs, m] = ((w_new[:, None, :] - self.W) ** 2).sum(-1)
        total = (self.C * self.D).sum(axis=(1, 2))
        F = (total - self.S) / (t - 1) if t >= 2 else np.full_like(total, np.nan)
        e_new = self.D[runs, m, n]
        self.C[runs, m, n] += 1
        self.S += e_new
        return RoundMetrics(F=F, G=(total + e_new) / t, err_new=e_new)

    def pool_error(self, mhat: IntArray) -> FloatArray:
        """``(1/N) sum_n ||w^(mhat[r, n]) - w_n||^2`` per run, for a routing choice
        ``mhat`` of shape (R, N)."""
        N = self.W.shape[1]
        return self.D[self.runs[:, None], mhat, np.arange(N)[None, :]].mean(axis=1)
