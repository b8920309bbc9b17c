"""Specialised routing: per-update factor, decay, expert sets and the single-task closed
form (Theorems 1-2; SPEC §6.6; this project's derivation, overview in
:mod:`moecl_lib.theory.moe`).

An expert of the set ``M_k`` serving cluster ``k`` is updated in a round with
probability ``p = (N_k/N) / |M_k|``; one update shrinks the error component orthogonal
to the task's signal direction by ``rho`` on average (:func:`update_factor`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

__all__ = [
    "update_factor",
    "specialised_decay_rate",
    "balanced_expert_sets",
    "selection_probabilities",
    "specialised_error",
]


# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------
def update_factor(d: int, s: int, signal: bool) -> float:
    """Per-update factor ``rho`` with ``E||R e||^2 = rho ||Pi e||^2``.

    ``(d-s)/d`` (= ``r = 1 - s/d``) for isotropic columns; ``(d-s)/(d-1)`` for a
    Definition-1 round (one signal column), acting on the error component orthogonal to
    the task's signal direction.
    """
    if not (
        isinstance(d, (int, np.integer))
        and isinstance(s, (int, np.integer))
        and 1 <= s < d
    ):
        raise ConfigError(f"need integers 1 <= s < d, got d={d!r}, s={s!r}")
    return (d - s) / (d - 1) if signal else (d - s) / d


def specialised_decay_rate(p: ArrayLike, rho: float) -> FloatArray:
    """``a = 1 - p (1 - rho)``: expected per-round factor of a specialised expert's
    error (SPEC §6.6).

    With ``p = 1/M`` (balanced sets, ``|M_n| = M/N``) the error shrinks by
    ``1 - (1 - rho)/M`` per round: the more experts, the slower the convergence.
    """
    p = np.asarray(p, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("selection probabilities p must lie in [0, 1]")
    return 1.0 - p * (1.0 - rho)


# --------------------------------------------------------------------------------------
# Expert sets
# --------------------------------------------------------------------------------------
def balanced_expert_sets(n_experts: int, cluster_of: ArrayLike) -> IntArray:
    """Cluster served by each expert when ``M`` experts split as evenly as possible over
    the ``K`` clusters.

    Expert ``m`` serves cluster ``m mod K`` (so ``|M_k|`` is ``floor(M/K)`` or
    ``ceil(M/K)``). Requires ``M >= K``. With singleton clusters (``K = N``) the cluster
    index is the task index.
    """
    cluster_of = np.asarray(cluster_of)
    K = int(cluster_of.max()) + 1
    if n_experts < K:
        raise ConfigError(
            f"n_experts={n_experts} must be >= the number of clusters K={K} for a "
            "specialised routing"
        )
    return np.arange(n_experts) % K


def selection_probabilities(
    expert_cluster: ArrayLike,
    cluster_of: ArrayLike,
    task_probs: ArrayLike | None = None,
) -> FloatArray:
    """``P[n, m]``: probability that a round brings task ``n`` and sends it to expert
    ``m`` (specialised routing).

    ``P[n, m] = q_n / |M_k(n)|`` if expert ``m`` serves the cluster of ``n``, else 0
    (``q_n = 1/N`` by default). Shapes: ``expert_cluster`` (..., M) with -1 for experts
    that serve nothing; result (..., N, M).
    """
    ec = np.asarray(expert_cluster)
    cluster_of = np.asarray(cluster_of)
    N = cluster_of.shape[-1]
    q = (
        np.full(N, 1.0 / N)
        if task_probs is None
        else np.asarray(task_probs, dtype=float)
    )
    member = (ec[..., None, :] == cluster_of[..., :, None]).astype(float)  # (..., N, M)
    size = member.sum(axis=-1, keepdims=True)
    if np.any(size == 0):
        raise ConfigError(
            "every task's cluster needs at least one expert in a specialised routing"
        )
    return q[..., :, None] * member / size


# --------------------------------------------------------------------------------------
# Single-task experts: closed forms
# --------------------------------------------------------------------------------------
def specialised_error(
    k: ArrayLike,
    p: ArrayLike,
    rho: float,
    err0: ArrayLike,
    err0_perp: ArrayLike,
    cross: ArrayLike = 0.0,
    target_gap: ArrayLike = 0.0,
) -> FloatArray:
    """``E||w_{t0+k} - u||^2`` for an expert that only learns task ``n`` from ``t0`` on
    (updated w.p. ``p`` per round).

    Args:
        k: rounds since ``t0`` (>= 0).
        p: per-round selection probability of the expert.
        rho: per-update factor (:func:`update_factor`).
        err0: ``||w_{t0} - u||^2``.
        err0_perp: ``||Pi e0||^2`` with ``e0 = w_{t0} - w_n`` (``= ||e0||^2`` for
            isotropic columns).
        cross: ``(Pi e0) . (w_n - u)`` (0 when ``u = w_n``).
        target_gap: ``||w_n - u||^2`` (0 when ``u = w_n``).

    With ``u = w_n`` and isotropic columns this is
    ``(1 - p(1 - r))^k ||w_{t0} - w_n||^2`` (SPEC §6.6).
    """
    k = np.asarray(k, dtype=float)
    p = np.asarray(p, dtype=float)
    none = (1.0 - p) ** k
    a = specialised_decay_rate(p, rho) ** k
    return (
        none * np.asarray(err0)
        + (a - none) * (np.asarray(err0_perp) + 2.0 * np.asarray(cross))
        + (1.0 - none) * np.asarray(target_gap)
    )
