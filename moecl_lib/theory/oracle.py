"""Cluster floors and the ideal (oracle-routed) MoE, exact for both generators
(Theorems 1-2; SPEC §6.7; this project's derivation, overview in
:mod:`moecl_lib.theory.moe`).

A specialised expert of cluster ``k`` is a single expert on the sub-pool ``W_k``, so the
exact single-expert recursion of :mod:`moecl_lib.theory.exact` on each sub-pool gives
the floors (:func:`cluster_floors_exact`) and the whole curves of the MoE whose routing
is specialised from round 1 (:func:`oracle_moe_exact`). :func:`convergence_round` reads
the empirical convergence round off such a curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError
from moecl_lib.theory.exact_single import single_expert_exact
from moecl_lib.theory.specialised_routing import balanced_expert_sets, update_factor

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

__all__ = [
    "cluster_floor",
    "cluster_floors_exact",
    "OracleCurves",
    "oracle_moe_exact",
    "convergence_round",
]


# --------------------------------------------------------------------------------------
# Cluster floors
# --------------------------------------------------------------------------------------
def cluster_floor(W: ArrayLike, cluster_of: ArrayLike) -> FloatArray:
    """SPEC §6.7 floor
    ``E[G_inf] = sum_k (N_k/N) (1/N_k^2) sum_{n != n' in W_k} ||w_n - w_n'||^2``.

    Exact limit of ``E[G_t]`` (and ``E[G_t^pool]``) for isotropic columns when every
    expert serves one cluster with tasks uniform inside it; then
    ``E[F_t] -> (1 - r) * floor``. Under Definition 1 it is exact for ``G`` when the
    tasks of a cluster share one signal direction (``signal="random"`` /
    ``"orthonormal"``), not for ``F``. With singleton clusters it is 0 (Theorem 1); with
    one cluster it is the single expert's model gap ``Delta``. Shapes: W (N, d) or
    (R, N, d); returns a scalar array or (R,).
    """
    W = np.asarray(W, dtype=float)
    cl = np.asarray(cluster_of, dtype=int)
    N = W.shape[-2]
    if cl.shape != (N,):
        raise ConfigError(f"cluster_of must have shape (N={N},), got {cl.shape}")
    pair = ((W[..., :, None, :] - W[..., None, :, :]) ** 2).sum(-1)
    total = np.zeros(W.shape[:-2])
    for k in np.unique(cl):
        idx = np.flatnonzero(cl == k)
        Nk = len(idx)
        total = total + (Nk / N) / Nk**2 * pair[..., idx[:, None], idx[None, :]].sum(
            (-1, -2)
        )
    return total


def _cluster_batches(W: FloatArray, vhat: ArrayLike | None, cl: IntArray):
    """Yield ``(idx, W_sub, V_sub)`` for groups of equal-size clusters, stacked on a new
    leading axis.

    ``idx`` (G, N_k) are the task indices of the G clusters of size N_k; ``W_sub`` has
    shape (G, ..., N_k, d). Batching equal-size clusters lets one call of the exact
    recursion serve all of them.
    """
    labels = np.unique(cl)
    members = [np.flatnonzero(cl == k) for k in labels]
    for size in sorted({len(m) for m in members}):
        idx = np.stack([m for m in members if len(m) == size])
        Wk = np.stack([W[..., i, :] for i in idx])
        Vk = (
            None
            if vhat is None
            else np.stack([np.asarray(vhat, dtype=float)[..., i, :] for i in idx])
        )
        yield idx, Wk, Vk


def _horizon(rho: float, tol: float = 1e-13) -> int:
    return max(50, int(math.ceil(math.log(tol) / math.log(rho))) + 5)


def cluster_floors_exact(
    W: ArrayLike, vhat: ArrayLike | None, s: int, cluster_of: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Exact limits ``(lim E[G_t], lim E[F_t])`` of an MoE whose experts each serve one
    cluster (tasks uniform).

    A specialised expert of cluster ``k`` is a single expert on the sub-pool ``W_k``;
    its stationary moments are obtained by running the exact recursion of
    :func:`moecl_lib.theory.exact.single_expert_exact` on ``W_k`` until it has converged
    (geometric rate ``rho``). The arrival-averaged limits are
    ``G_inf = sum_k (N_k/N) mean_{n in W_k} err_k(n)`` and
    ``F_inf = G_inf - sum_k (N_k/N) self_k`` (``self_k``: the stationary error right
    after an update). Works for isotropic columns (``vhat=None``) and Definition 1.
    ``cluster_of = zeros(N)`` gives the single expert's exact floors. Shapes: W (N, d)
    or (R, N, d).
    """
    W = np.asarray(W, dtype=float)
    cl = np.asarray(cluster_of, dtype=int)
    N, d = W.shape[-2:]
    rho = update_factor(d, s, vhat is not None)
    H = _horizon(rho)
    G = np.zeros(W.shape[:-2])
    F = np.zeros(W.shape[:-2])
    for idx, Wk, Vk in _cluster_batches(W, vhat, cl):
        ex = single_expert_exact(
            Wk, Vk, s, H
        )  # leading axis: the clusters of this size
        g_k = ex.task_error[..., -1, :].mean(-1)
        G = G + (idx.shape[1] / N * g_k).sum(0)
        F = F + (idx.shape[1] / N * (g_k - ex.self_error[..., -1])).sum(0)
    return G, F


# --------------------------------------------------------------------------------------
# The ideal MoE: specialised routing from round 1 (exact for both generators)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleCurves:
    """Exact expected curves of the ideal (oracle-routed) MoE, shape (..., T); index
    ``t-1`` = after round ``t``.

    Attributes:
        G, F, G_pool: ``E[G_t]``, ``E[F_t]`` (NaN at t = 1), ``E[G_t^pool]`` (pool
            average over the experts of each task's set).
        G_floor, F_floor: the limits (cluster floors; 0 for singleton clusters).
        rate: per-round decay factor ``1 - p(1 - rho)`` of the experts of each cluster
            (indexed by cluster), (K,).
    """

    G: FloatArray
    F: FloatArray
    G_pool: FloatArray
    G_floor: FloatArray
    F_floor: FloatArray
    rate: FloatArray


def _binomial_table(T: int, p: float) -> FloatArray:
    """``B[t-1, K] = P(Bin(t, p) = K)`` for ``t = 1..T``, ``K = 0..T`` (stable forward
    recursion)."""
    B = np.zeros((T, T + 1))
    row = np.zeros(T + 1)
    row[0] = 1.0
    for t in range(T):
        row[1:] = (1 - p) * row[1:] + p * row[:-1]
        row[0] *= 1 - p
        B[t] = row
    return B


def _oracle_sums(
    W: FloatArray,
    vhat: ArrayLike | None,
    s: int,
    T: int,
    cl: IntArray,
    ec: IntArray,
    rho: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Sums over the experts for :func:`oracle_moe_exact`, each (..., T), ``t = 1..T``.

    Returns ``(t E[G_t], sum_tau E err_tau(tau), E[G_t^pool], rate)``; ``rate`` (K,) is
    the per-round decay factor ``1 - p_k (1 - rho)`` of the experts of each cluster.
    """
    N = W.shape[-2]
    batch = W.shape[:-2]
    tG = np.zeros(batch + (T,))
    Sself = np.zeros(batch + (T,))
    Gp = np.zeros(batch + (T,))
    rates = np.zeros(int(cl.max()) + 1)
    tables: dict[float, FloatArray] = {}
    for idx, Wk, Vk in _cluster_batches(W, vhat, cl):
        # (G, ..., T) for the G clusters of this size
        ex = single_expert_exact(Wk, Vk, s, T)
        zero = np.zeros(ex.G.shape[:-1] + (1,))
        # K G_K, K = 0..T
        KG = np.concatenate([zero, np.arange(1, T + 1) * ex.G], axis=-1)
        cself = np.concatenate([zero, np.cumsum(ex.self_error, axis=-1)], axis=-1)
        w2 = (Wk**2).sum(-1)  # error of an untouched expert on its tasks
        # (G, ..., T+1)
        terr = np.concatenate([w2[..., None, :], ex.task_error], axis=-2).mean(-1)
        for j, members in enumerate(idx):
            k = cl[members[0]]
            size = int((ec == k).sum())
            pk = len(members) / N / size
            rates[k] = 1 - pk * (1 - rho)
            if pk not in tables:
                tables[pk] = _binomial_table(T, pk)
            B = tables[pk]  # (T, T+1)
            tG += size * np.einsum("tk,...k->...t", B, KG[j])
            Sself += size * np.einsum("tk,...k->...t", B, cself[j])
            Gp += len(members) / N * np.einsum("tk,...k->...t", B, terr[j])
    return tG, Sself, Gp, rates


def oracle_moe_exact(
    W: ArrayLike,
    vhat: ArrayLike | None,
    s: int,
    T: int,
    n_experts: int,
    cluster_of: ArrayLike | None = None,
    expert_cluster: ArrayLike | None = None,
) -> OracleCurves:
    """Exact ``E[G_t]``, ``E[F_t]``, ``E[G_t^pool]`` of the MoE with specialised routing
    from round 1.

    Every round: task uniform over the pool; expert uniform inside the set of the task's
    cluster (independent of the data); ``w_0 = 0``. Expert ``m`` of cluster ``k`` is
    updated ``K_m(t) ~ Bin(t, p_k)`` times, ``p_k = (N_k/N)/|M_k|``, each time on a
    uniform task of ``W_k``; given ``K_m = K`` it is a single expert on ``W_k`` after
    ``K`` rounds. So

        t E[G_t] = sum_m E[K_m G^{(k)}_{K_m}],
        sum_tau E err_tau(tau) = sum_m E[sum_{j<=K_m} self^{(k)}_j],

    with ``G^{(k)}``, ``self^{(k)}`` from the exact single-expert recursion
    (:mod:`moecl_lib.theory.exact`) on the sub-pool;
    ``E[F_t] = (t E[G_t] - E sum self) / (t - 1)``. Exact for isotropic columns
    (``vhat=None``) and for Definition 1. Singleton clusters and ``M >= N`` give Theorem
    1's setting (floor 0); ``M < N`` with clustered tasks gives Theorem 2's (floor =
    within-cluster gap). Shapes: W (N, d) or (R, N, d).
    """
    W = np.asarray(W, dtype=float)
    N, d = W.shape[-2:]
    cl = np.arange(N) if cluster_of is None else np.asarray(cluster_of, dtype=int)
    ec = (
        balanced_expert_sets(n_experts, cl)
        if expert_cluster is None
        else np.asarray(expert_cluster, dtype=int)
    )
    if ec.shape != (n_experts,):
        raise ConfigError(
            f"expert_cluster must have shape (M={n_experts},), got {ec.shape}"
        )
    G_floor, F_floor = cluster_floors_exact(W, vhat, s, cl)
    rho = update_factor(d, s, vhat is not None)
    labels = np.unique(cl)
    for k in labels:
        if not np.any(ec == k):
            raise ConfigError(
                f"cluster {k} has no expert; every cluster needs one (M >= K)"
            )
    tG, Sself, Gp, rates = _oracle_sums(W, vhat, s, T, cl, ec, rho)
    t = np.arange(1, T + 1, dtype=float)
    G = tG / t
    with np.errstate(invalid="ignore", divide="ignore"):
        F = (tG - Sself) / (t - 1)
    F[..., 0] = np.nan
    return OracleCurves(
        G=G, F=F, G_pool=Gp, G_floor=G_floor, F_floor=F_floor, rate=rates
    )


# --------------------------------------------------------------------------------------
# Sweeps over M
# --------------------------------------------------------------------------------------
def convergence_round(curve: ArrayLike, threshold: float | ArrayLike) -> FloatArray:
    """First round ``t`` from which ``curve`` stays ``<= threshold`` up to the horizon
    (NaN if never).

    This project's definition of the empirical convergence round (used by the sweep over
    M): with the pool-averaged error ``G_t^pool`` and ``threshold = eps * Delta`` (a
    fixed fraction of the single expert's model gap) it is the number of rounds an MoE
    needs until every task is served by an expert that is ``eps``-close to it, for good.
    ``curve`` has shape (..., T); ``threshold`` broadcasts against (...,).
    """
    c = np.asarray(curve, dtype=float)
    thr = np.asarray(threshold, dtype=float)[..., None]
    above = ~(c <= thr)  # NaN counts as above
    T = c.shape[-1]
    last_above = np.where(
        above.any(-1), T - 1 - np.argmax(above[..., ::-1], axis=-1), -1
    )
    out = (last_above + 2).astype(
        float
    )  # round number = index + 1, first index after the last violation
    return np.where(last_above >= T - 1, np.nan, out)
