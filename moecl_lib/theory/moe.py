"""MoE after specialisation: decay, pre-specialisation residual and cluster floors
(Theorems 1-2; SPEC §6.6-§6.7).

Everything here is **this project's derivation** (SPEC tag ``[D]``), not a quote of the
paper, whose exact Theorem 1/2 expressions were not available to us. Derivations: book
page ``derivations_moe``.

Setting ("specialised routing"): from round ``t0`` on, every round's task is uniform
over the pool (probability ``q_n = 1/N``) and is sent to an expert of its expert set,
each member with equal probability (Proposition 3), with the choice **independent of the
data of the round**. Expert ``m`` of set ``M_k`` (serving cluster ``k``, or the single
task ``n`` when clusters are singletons) is then updated in a round with probability
``p_m = (N_k/N) / |M_k|`` (``= 1/(N |M_n|)`` for single tasks), independently across
rounds.

One min-norm update on task ``n`` maps the error ``e = w - w_n`` to ``R e`` with
``R = I - P_t`` a uniformly random projector (exact Haar moments, see
:mod:`moecl_lib.theory.exact`):

* isotropic columns (``signal="none"``): ``E[R] = E[R^T R] = rho I`` with
  ``rho = r = (d-s)/d``;
* Definition 1 (one column ``beta v_n``): ``R`` lives in ``vhat_n^perp``,
  ``E[R] = E[R^T R] = rho Pi_n`` with ``rho = (d-s)/(d-1)`` and
  ``Pi_n = I - vhat_n vhat_n^T``: the first update removes the signal component of the
  error, every later one shrinks the rest by ``rho`` on average.

Hence (single-task expert, ``k = t - t0`` rounds, ``K ~ Bin(k, p)`` updates,
``delta = w_n - u`` for a fixed target ``u``, ``e0 = w_{t0} - w_n``)::

    E||w_t - u||^2 = (1-p)^k ||e0 + delta||^2
                     + [a^k - (1-p)^k] (||Pi e0||^2 + 2 (Pi e0).delta)
                     + [1 - (1-p)^k] ||delta||^2,
    a = 1 - p (1 - rho).

For isotropic columns (``Pi = I``) this is
``a^k ||w_{t0} - u||^2 + (1 - a^k) ||w_n - u||^2``: the geometric decay
``(1 - p_m(1 - r))^{t - t0}`` of SPEC §6.6. Which formula is exact for which generator
(isotropic columns, ``vhat=None`` | Definition 1, any ``vhat``):

* single-task decay / post-specialisation: exact (closed form) | exact (closed form
  above);
* clustered experts from a realised state: exact (scalar recursion) | not here: use
  ``moe_exact_given_routing``;
* ideal MoE from round 1 (:func:`oracle_moe_exact`): exact | exact (via
  ``single_expert_exact``);
* cluster floor, SPEC formula: exact | exact for G if the cluster shares one signal
  direction; otherwise approximate;
* cluster floors, :func:`cluster_floors_exact`: exact | exact.

"Exact" means: equal to the expectation over the data (and the random in-set routing)
for a fixed pool, given that the routing does not depend on the round's data. Algorithm
1's frozen router sees the Gaussian columns through ``X_t 1``, so for Algorithm-1 runs
these formulas are (very good) approximations.

Metric conventions are those of :mod:`moecl_lib.linear.engine` (SPEC §5.1): arrays of
length ``T``, index ``t-1`` = after round ``t``;
``G_t = (1/t) sum_{tau<=t} ||w_t^{(m_tau)} - w_{n_tau}||^2`` (arrival-averaged),
``F_t = (1/(t-1)) sum_{tau<t} (err_tau(t) - err_tau(tau))`` (NaN at ``t = 1``; may be
negative), so that ``(t-1) F_t = t G_t - sum_{tau<=t} err_tau(tau)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError
from moecl_lib.theory.exact import single_expert_exact, update_coefficients

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

__all__ = [
    "update_factor",
    "specialised_decay_rate",
    "balanced_expert_sets",
    "selection_probabilities",
    "specialised_error",
    "PostSpecialisation",
    "post_specialisation_curves",
    "pre_specialisation_residual",
    "cluster_floor",
    "cluster_floors_exact",
    "OracleCurves",
    "oracle_moe_exact",
    "convergence_round",
    "state_at",
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


@dataclass(frozen=True)
class PostSpecialisation:
    """Expected curves after a specialisation round ``t0`` (conditional on the state
    after ``t0``).

    Attributes (shape (R, T), NaN for ``t <= t0``; ``F`` also NaN at ``t = 1``):
        G: ``E[G_t | state at t0]``.
        F: ``E[F_t | state at t0]``.
        pre: expected summed error of the arrivals ``tau <= t0``,
            ``sum_{tau<=t0} E||w_t^{(m_tau)} - w_{n_tau}||^2``.
        post: expected summed error of the arrivals ``t0 < tau <= t``.
        post_self: expected sum of the errors right after learning,
            ``sum_{t0<tau<=t} E err_tau(tau)``.
        t0: the specialisation round per run, (R,).
    """

    G: FloatArray
    F: FloatArray
    pre: FloatArray
    post: FloatArray
    post_self: FloatArray
    t0: IntArray


def _batch(x: ArrayLike, ndim: int, name: str) -> FloatArray:
    a = np.asarray(x, dtype=float)
    if a.ndim == ndim - 1:
        a = a[None]
    if a.ndim != ndim:
        raise ConfigError(
            f"{name} must have {ndim - 1} or {ndim} (batched) dimensions, got shape "
            f"{np.shape(x)}"
        )
    return a


def post_specialisation_curves(
    w0: ArrayLike,
    W: ArrayLike,
    vhat: ArrayLike | None,
    s: int,
    t0: ArrayLike,
    T: int,
    expert_cluster: ArrayLike,
    counts0: ArrayLike,
    self_sum0: ArrayLike,
    cluster_of: ArrayLike | None = None,
    p: ArrayLike | None = None,
    method: str = "auto",
) -> PostSpecialisation:
    """Exact ``E[G_t]``, ``E[F_t]`` for ``t > t0`` given the state after round ``t0``
    and a specialised routing.

    Args (leading run axis R optional everywhere):
        w0: expert parameters after round ``t0``, (R, M, d).
        W: ground truths, (R, N, d).
        vhat: unit signal directions (R, N, d) for the Definition-1 generator, or
            ``None`` for isotropic columns.
        s: samples per round.
        t0: specialisation round per run (0 <= t0 < T), scalar or (R,).
        T: horizon.
        expert_cluster: cluster (= task if singletons) each expert serves from ``t0``
            on, (R, M); -1 = none.
        counts0: ``C[m, n]`` = arrivals ``tau <= t0`` of task ``n`` learned by expert
            ``m``, (R, M, N).
        self_sum0: ``sum_{tau<=t0} err_tau(tau)`` (errors right after learning), (R,).
        cluster_of: cluster of each task (N,); default singletons (``K = N``).
        p: per-round selection probability of each expert, (R, M); default from
            :func:`selection_probabilities`.
        method: ``"closed_form"`` (single-task experts, both generators),
            ``"recursion"`` (isotropic columns, any clusters; scalar recursion on
            ``E||w^(m) - w_n||^2``), or ``"auto"``.

    Raises ``ConfigError`` for clustered experts under the Definition-1 generator (the
    error second moment does not close on scalars there; use
    :func:`moecl_lib.theory.exact.moe_exact_given_routing` on a realised routing).
    """
    w0 = _batch(w0, 3, "w0")
    W = _batch(W, 3, "W")
    R, M, d = w0.shape
    N = W.shape[1]
    if W.shape[0] not in (1, R) or W.shape[2] != d:
        raise ConfigError(f"W has shape {W.shape}, expected (R={R}, N, d={d})")
    W = np.broadcast_to(W, (R, N, d))
    V = None if vhat is None else np.broadcast_to(_batch(vhat, 3, "vhat"), (R, N, d))
    ec = np.broadcast_to(np.asarray(expert_cluster, dtype=int).reshape(-1, M), (R, M))
    C = np.broadcast_to(_batch(counts0, 3, "counts0"), (R, M, N))
    S0 = np.broadcast_to(np.asarray(self_sum0, dtype=float).reshape(-1), (R,))
    t0 = np.broadcast_to(np.asarray(t0, dtype=int).reshape(-1), (R,))
    if np.any(t0 < 0) or np.any(t0 >= T):
        raise ConfigError(f"t0 must satisfy 0 <= t0 < T={T}")
    cl = np.arange(N) if cluster_of is None else np.asarray(cluster_of, dtype=int)
    singletons = len(np.unique(cl)) == N
    if p is None:
        p = selection_probabilities(ec, cl).sum(axis=-2)  # (R, M)
    p = np.broadcast_to(np.asarray(p, dtype=float).reshape(-1, M), (R, M))
    if method == "auto":
        method = "closed_form" if singletons else "recursion"
    if method == "closed_form":
        if not singletons:
            raise ConfigError(
                "method='closed_form' needs singleton clusters (one task per expert "
                "set)"
            )
        return _post_closed_form(w0, W, V, s, t0, T, ec, C, S0, p)
    if method == "recursion":
        if V is not None:
            raise ConfigError(
                "the scalar recursion is exact for isotropic columns only (vhat=None); "
                "for clustered experts under Definition 1 use "
                "theory_exact.moe_exact_given_routing on a realised routing"
            )
        return _post_recursion(w0, W, s, t0, T, ec, C, S0, p, cl)
    raise ConfigError(
        f"method={method!r} must be one of ['auto', 'closed_form', 'recursion']"
    )


def _post_closed_form(w0, W, V, s, t0, T, ec, C, S0, p) -> PostSpecialisation:
    R, M, d = w0.shape
    runs = np.arange(R)[:, None]
    task = np.where(ec >= 0, ec, 0)
    wn = W[runs, task]  # (R, M, d) ground truth each expert converges to
    if V is None:
        rho = np.full((R, M), update_factor(d, s, False))
        e0 = w0 - wn
        pe0 = e0
    else:
        has = (V**2).sum(-1) > 0.5
        rho_n, _, _ = update_coefficients(d, s, has)
        rho = rho_n[runs, task]
        vn = V[runs, task]
        e0 = w0 - wn
        pe0 = e0 - vn * (vn * e0).sum(-1, keepdims=True)
    p = np.where(ec >= 0, p, 0.0)
    delta = wn[:, :, None, :] - W[:, None, :, :]  # (R, M, N, d): w_n(m) - w_n'
    err0 = ((w0[:, :, None, :] - W[:, None, :, :]) ** 2).sum(-1)  # (R, M, N)
    perp = (pe0**2).sum(-1)  # (R, M)
    cross = np.einsum("rmd,rmnd->rmn", pe0, delta)
    gap = (delta**2).sum(-1)
    c1 = (C * err0).sum(-1)
    c2 = (C * (perp[:, :, None] + 2 * cross)).sum(-1)
    c3 = (C * gap).sum(-1)
    t = np.arange(1, T + 1)
    k = (t[None, :] - t0[:, None]).astype(float)  # (R, T)
    valid = k >= 1
    kk = np.where(valid, k, 0.0)[:, None, :]  # (R, 1, T)
    pp, rr = p[:, :, None], rho[:, :, None]
    none = (1 - pp) ** kk
    a = 1 - pp * (1 - rr)
    ak = a**kk
    pre = (
        none * c1[:, :, None]
        + (ak - none) * c2[:, :, None]
        + (1 - none) * c3[:, :, None]
    ).sum(1)
    # E[K rho^K] = k p rho a^(k-1)   and   E[sum_{j<=K} rho^j] = rho (1 - a^k) / (1 -
    # rho)
    post = (kk * pp * rr * a ** np.maximum(kk - 1, 0) * perp[:, :, None]).sum(1)
    post_self = (rr / (1 - rr) * (1 - ak) * perp[:, :, None]).sum(1)
    return _assemble(pre, post, post_self, S0, t0, T, valid)


def _post_recursion(w0, W, s, t0, T, ec, C, S0, p, cl) -> PostSpecialisation:
    R, M, d = w0.shape
    N = W.shape[1]
    r = update_factor(d, s, False)
    K = int(cl.max()) + 1
    pair = ((W[:, :, None, :] - W[:, None, :, :]) ** 2).sum(-1)  # (R, N, N)
    member = (cl[None, :] == np.arange(K)[:, None]).astype(float)  # (K, N)
    qk = member / member.sum(1, keepdims=True)  # uniform task within a cluster
    g_cluster = np.einsum(
        "kn,rnj->rkj", qk, pair
    )  # (R, K, N): mean_{n in W_k} ||w_n - w_j||^2
    ecc = np.where(ec >= 0, ec, 0)
    g = np.take_along_axis(
        g_cluster, ecc[:, :, None], axis=1
    )  # (R, M, N) target of each expert
    q_in = qk[ecc]  # (R, M, N): probability of task n given expert m is updated
    p = np.where(ec >= 0, p, 0.0)
    a = 1 - p * (1 - r)
    D = ((w0[:, :, None, :] - W[:, None, :, :]) ** 2).sum(-1)  # (R, M, N)
    Z = np.zeros((R, M, N))
    om = np.zeros((R, M, N))
    pre = np.full((R, T), np.nan)
    post = np.full((R, T), np.nan)
    post_self = np.full((R, T), np.nan)
    cum_self = np.zeros(R)
    runs = np.arange(R)
    for k in range(1, T + 1):
        t = t0 + k
        live = t <= T
        if not live.any():
            break
        new = (
            (p[:, :, None] * q_in) * r * D
        )  # arrivals of this round, error right after learning
        Z = a[:, :, None] * Z + (1 - a[:, :, None]) * g * om + new
        om = om + p[:, :, None] * q_in
        D = a[:, :, None] * D + (1 - a[:, :, None]) * g
        cum_self = cum_self + new.sum((1, 2))
        idx = t[live] - 1
        pre[runs[live], idx] = (C * D).sum((1, 2))[live]
        post[runs[live], idx] = Z.sum((1, 2))[live]
        post_self[runs[live], idx] = cum_self[live]
    t = np.arange(1, T + 1)
    valid = t[None, :] > t0[:, None]
    return _assemble(pre, post, post_self, S0, t0, T, valid)


def _assemble(pre, post, post_self, S0, t0, T, valid) -> PostSpecialisation:
    t = np.arange(1, T + 1, dtype=float)[None, :]
    G = (pre + post) / t
    with np.errstate(invalid="ignore", divide="ignore"):
        F = (t * G - S0[:, None] - post_self) / (t - 1)
    nan = ~valid
    for x in (G, F, pre, post, post_self):
        x[nan] = np.nan
    F[:, 0] = np.nan
    return PostSpecialisation(
        G=G, F=F, pre=pre, post=post, post_self=post_self, t0=np.asarray(t0)
    )


def pre_specialisation_residual(
    counts0: ArrayLike, W: ArrayLike, expert_task: ArrayLike
) -> FloatArray:
    """``c = sum_{m, n'} C[m, n'] ||w_{n(m)} - w_{n'}||^2``: what the arrivals before
    ``t0`` leave behind for ever.

    For single-task experts ``t E[G_t] -> c`` as ``t -> infinity``: an arrival of task
    ``n'`` learned (before specialisation) by an expert that later specialises on task
    ``n(m)`` keeps the error ``||w_{n(m)} - w_{n'}||^2``, but weighs ``1/t`` in ``G_t``;
    hence ``E[G_t] = c/t + o(1/t)``, the ``O(T2/t)`` term of SPEC §6.6 (``c`` grows
    linearly with the number of misrouted arrivals, i.e. with ``T2``). Shapes: counts
    (R, M, N), W (R, N, d), expert_task (R, M) (-1: an expert that receives nothing
    afterwards contributes its current error instead, which this function cannot know,
    so it is rejected).
    """
    C = _batch(counts0, 3, "counts0")
    W = _batch(W, 3, "W")
    et = np.asarray(expert_task, dtype=int).reshape(-1, C.shape[1])
    et = np.broadcast_to(et, C.shape[:2])
    if np.any((et < 0) & (C.sum(-1) > 0)):
        raise ConfigError(
            "an expert that learned arrivals before t0 must be assigned a task after t0"
        )
    runs = np.arange(C.shape[0])[:, None]
    wn = np.broadcast_to(W, (C.shape[0],) + W.shape[1:])[
        runs, np.maximum(et, 0)
    ]  # (R, M, d)
    gap = (
        (wn[:, :, None, :] - np.broadcast_to(W, (C.shape[0],) + W.shape[1:])[:, None])
        ** 2
    ).sum(-1)
    return (C * gap).sum((1, 2))


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
    one cluster it is the single expert's model gap ``Delta``. Shapes: W (N, d) or (R,
    N, d); returns a scalar array or (R,).
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
    batch = W.shape[:-2]
    tG = np.zeros(batch + (T,))
    Sself = np.zeros(batch + (T,))
    Gp = np.zeros(batch + (T,))
    rates = np.zeros(int(cl.max()) + 1)
    tables: dict[float, FloatArray] = {}
    G_floor, F_floor = cluster_floors_exact(W, vhat, s, cl)
    rho = update_factor(d, s, vhat is not None)
    labels = np.unique(cl)
    for k in labels:
        if not np.any(ec == k):
            raise ConfigError(
                f"cluster {k} has no expert; every cluster needs one (M >= K)"
            )
    for idx, Wk, Vk in _cluster_batches(W, vhat, cl):
        ex = single_expert_exact(
            Wk, Vk, s, T
        )  # (G, ..., T) for the G clusters of this size
        zero = np.zeros(ex.G.shape[:-1] + (1,))
        KG = np.concatenate(
            [zero, np.arange(1, T + 1) * ex.G], axis=-1
        )  # K G_K, K = 0..T
        cself = np.concatenate([zero, np.cumsum(ex.self_error, axis=-1)], axis=-1)
        w2 = (Wk**2).sum(-1)  # error of an untouched expert on its tasks
        terr = np.concatenate([w2[..., None, :], ex.task_error], axis=-2).mean(
            -1
        )  # (G, ..., T+1)
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
    t = np.arange(1, T + 1, dtype=float)
    G = tG / t
    with np.errstate(invalid="ignore", divide="ignore"):
        F = (tG - Sself) / (t - 1)
    F[..., 0] = np.nan
    return OracleCurves(
        G=G, F=F, G_pool=Gp, G_floor=G_floor, F_floor=F_floor, rate=rates
    )


# --------------------------------------------------------------------------------------
# Helpers for Algorithm-1 results and sweeps
# --------------------------------------------------------------------------------------
def state_at(
    weights: ArrayLike,
    experts: ArrayLike,
    tasks: ArrayLike,
    err_new: ArrayLike,
    t0: ArrayLike,
    n_tasks: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """State after round ``t0`` (per run) of a recorded simulation, for
    :func:`post_specialisation_curves`.

    Args: ``weights`` (R, T, M, d) from ``simulate(..., record_weights=True)``;
    ``experts``, ``tasks``, ``err_new`` (R, T); ``t0`` (R,) with ``1 <= t0 <= T``.
    Returns ``(w_t0 (R, M, d), counts (R, M, N), self_sum (R,))``.
    """
    Wt = np.asarray(weights)
    R, T, M, _ = Wt.shape
    t0 = np.asarray(t0, dtype=int).reshape(-1)
    if np.any(t0 < 1) or np.any(t0 > T):
        raise ConfigError(f"t0 must lie in [1, T={T}] for every run")
    runs = np.arange(R)
    w_t0 = Wt[runs, t0 - 1]
    upto = np.arange(1, T + 1)[None, :] <= t0[:, None]
    counts = np.zeros((R, M, n_tasks))
    ex, tk = np.asarray(experts), np.asarray(tasks)
    np.add.at(
        counts,
        (
            np.repeat(runs, T)[upto.ravel()],
            ex.ravel()[upto.ravel()],
            tk.ravel()[upto.ravel()],
        ),
        1.0,
    )
    self_sum = np.where(upto, np.asarray(err_new), 0.0).sum(1)
    return w_t0, counts, self_sum


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
