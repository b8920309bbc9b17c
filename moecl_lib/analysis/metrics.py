"""Continual-learning metrics, with the sign and denominator of each stated.

Matrix convention (GEM, Avalanche, FACIL, Mammoth): ``A[i, j]`` is the score on task (or
arrival) ``j`` measured after training step ``i`` (0-based here; step i learned task i).
Entries above the diagonal (tasks not yet learned) are ignored and may be NaN. Accuracy
matrices: higher is better. Error matrices: lower is better. The paper's metrics (SPEC
§5.1) are written on error matrices ``E``.

Summary statistics over runs: :func:`mean_se` (mean and standard error, denominator
``R - 1`` in the sample variance).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.floating]


def _square(A: ArrayLike, name: str) -> FloatArray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be a square (T, T) matrix, got shape {A.shape}")
    if A.shape[0] < 1:
        raise ValueError(f"{name} must have at least one training step")
    return A


def average_accuracy(A: ArrayLike) -> float:
    """Final average accuracy ``ACC = (1/T) sum_j A[T-1, j]`` (higher is better)."""
    A = _square(A, "A")
    return float(A[-1].mean())


def backward_transfer(A: ArrayLike) -> float:
    """Backward transfer ``BWT = (1/(T-1)) sum_{i<T-1} (A[T-1, i] - A[i, i])``
    (Lopez-Paz & Ranzato 2017).

    Denominator ``T - 1`` (the paper's; GEM's own code divides by ``T``). Negative =
    forgetting for an accuracy matrix. Requires ``T >= 2``.
    """
    A = _square(A, "A")
    T = A.shape[0]
    if T < 2:
        raise ValueError("backward_transfer needs at least two training steps")
    return float((A[-1, :-1] - np.diag(A)[:-1]).mean())


def forgetting_chaudhry(A: ArrayLike) -> float:
    """Chaudhry et al. (2018) forgetting of an accuracy matrix, ``>= 0``.

    ``f_j = max_{j <= l < T-1} A[l, j] - A[T-1, j]`` for ``j < T - 1``; returns
    ``(1/(T-1)) sum_j f_j`` (denominator ``T - 1``). The max runs over the steps after
    task j was learned and before the last one.
    """
    A = _square(A, "A")
    T = A.shape[0]
    if T < 2:
        raise ValueError("forgetting_chaudhry needs at least two training steps")
    f = [np.max(A[j : T - 1, j]) - A[T - 1, j] for j in range(T - 1)]
    return float(np.mean(f))


def forward_transfer(A: ArrayLike, b: ArrayLike) -> float:
    """Forward transfer ``FWT = (1/(T-1)) sum_{i=1}^{T-1} (A[i-1, i] - b[i])`` with
    ``b`` the scores at init.

    Denominator ``T - 1``. Positive = learning earlier tasks helped later ones.
    """
    A = _square(A, "A")
    b = np.asarray(b, dtype=float)
    T = A.shape[0]
    if b.shape != (T,):
        raise ValueError(f"b must have shape ({T},), got {b.shape}")
    if T < 2:
        raise ValueError("forward_transfer needs at least two training steps")
    return float(np.mean([A[i - 1, i] - b[i] for i in range(1, T)]))


def paper_forgetting(E: ArrayLike) -> float:
    """The paper's forgetting at the last step of an error matrix (SPEC §5.1).

    ``F_T = (1/(T-1)) sum_{tau < T} (E[T-1, tau] - E[tau, tau])``: average increase of
    the error of past arrivals. Denominator ``T - 1``; positive = forgetting, negative =
    backward transfer. Equals ``-backward_transfer(-E)``.
    """
    E = _square(E, "E")
    if E.shape[0] < 2:
        raise ValueError("paper_forgetting needs at least two rounds")
    return float((E[-1, :-1] - np.diag(E)[:-1]).mean())


def paper_generalization(E: ArrayLike) -> float:
    """The paper's overall generalisation error
    ``G_T = (1/T) sum_{tau <= T} E[T-1, tau]`` (SPEC §5.1)."""
    E = _square(E, "E")
    return float(E[-1].mean())


def error_matrix(
    weights: ArrayLike, experts: ArrayLike, tasks: ArrayLike, W: ArrayLike
) -> FloatArray:
    """Naive O(T^2 d) error matrix of one linear run:
    ``E[t, tau] = ||w_t^(m_tau) - w_{n_tau}||^2``.

    Reference implementation (used by tests and the benchmark); entries with ``tau > t``
    are NaN.

    Args:
        weights: expert parameters after each round, (T, M, d).
        experts: selected expert per round, (T,).
        tasks: arriving task per round, (T,).
        W: ground truths, (N, d).
    """
    weights = np.asarray(weights, dtype=float)
    experts = np.asarray(experts)
    tasks = np.asarray(tasks)
    W = np.asarray(W, dtype=float)
    T = weights.shape[0]
    E = np.full((T, T), np.nan)
    for t in range(T):
        diff = weights[t, experts[: t + 1]] - W[tasks[: t + 1]]
        E[t, : t + 1] = (diff**2).sum(-1)
    return E


def curves_from_error_matrix(E: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(F_t, G_t)`` for every prefix of an error matrix (O(T^2)); ``F_1`` is NaN."""
    E = _square(E, "E")
    T = E.shape[0]
    F = np.full(T, np.nan)
    G = np.empty(T)
    for t in range(T):
        G[t] = paper_generalization(E[: t + 1, : t + 1])
        if t >= 1:
            F[t] = paper_forgetting(E[: t + 1, : t + 1])
    return F, G


def mean_se(x: ArrayLike, axis: int = 0) -> tuple[FloatArray, FloatArray]:
    """Mean and standard error of the mean over ``axis`` (sample std with ``ddof=1``,
    over sqrt(R)).

    NaNs are ignored (each column uses its own count). With a single run the standard
    error is NaN.
    """
    x = np.asarray(x, dtype=float)
    n = np.sum(~np.isnan(x), axis=axis)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # all-NaN columns (e.g. F_1) stay NaN
        mean = np.nanmean(x, axis=axis)
        sd = np.nanstd(x, axis=axis, ddof=1)
        se = sd / np.sqrt(n)
    return mean, se


def load_entropy(loads: ArrayLike, *, normalised: bool = False) -> FloatArray:
    """Shannon entropy (nats) of expert loads along the last axis; ``log M`` = balanced.

    Loads (counts or fractions, any leading shape) are renormalised to sum to one; an
    all-zero row gives NaN; ``normalised`` divides by ``log M``. A 1-D load vector gives
    a 0-d array (``float(...)`` for a number).
    """
    p = np.asarray(loads, dtype=float)
    if np.any(p < 0):
        raise ValueError("loads must be non-negative")
    tot = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / tot
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
    h = np.where(tot[..., 0] > 0, h, np.nan)
    if normalised:
        M = p.shape[-1]
        h = h / math.log(M) if M > 1 else np.full_like(h, np.nan)
    return h
