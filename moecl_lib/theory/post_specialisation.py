"""Exact expected curves after a specialisation round ``t0``, from the realised state
(Theorems 1-2; SPEC §6.6; this project's derivation, overview in
:mod:`moecl_lib.theory.moe`).

Given the experts after round ``t0`` of a recorded run (:func:`state_at`) and the expert
set each of them serves from then on, :func:`post_specialisation_curves` gives
``E[G_t]`` and ``E[F_t]`` for ``t > t0``; :func:`pre_specialisation_residual` is the
``c/t`` term that the arrivals before ``t0`` leave in ``G_t``. Metric conventions: those
of :mod:`moecl_lib.theory.moe` (index ``t-1`` = after round ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError
from moecl_lib.theory.exact_update import update_coefficients
from moecl_lib.theory.specialised_routing import selection_probabilities, update_factor

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

__all__ = [
    "PostSpecialisation",
    "post_specialisation_curves",
    "pre_specialisation_residual",
    "state_at",
]


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
    # E[K rho^K] = k p rho a^(k-1)   and
    # E[sum_{j<=K} rho^j] = rho (1 - a^k) / (1 - rho)
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
