"""Exact expected curves of ONE expert (``w_0 = 0``): expectation over the task draws
and the data of every round, for a fixed pool (this project's derivation; overview and
formulas in :mod:`moecl_lib.theory.exact`).

:func:`single_expert_exact` propagates the unconditional state and, per task, the sum
over the past arrivals of the state conditioned on that arrival (metric conventions of
:mod:`moecl_lib.theory.exact`); :func:`single_expert_limits_exact` iterates the
unconditional map to its fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.theory.exact_update import (
    _check_s,
    _fail,
    _prepare_pool,
    _reduced_pool,
    _task_terms,
    update_coefficients,
)

__all__ = [
    "ExactCurves",
    "single_expert_exact",
    "ExactLimits",
    "single_expert_limits_exact",
    "single_expert_exact_for_pool",
    "unit_signal_directions",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ExactCurves:
    """Exact expected metric curves (index ``t-1`` = after round ``t``).

    Attributes
    ----------
    G: ``E[G_t]`` arrival-averaged generalisation error, shape ``(..., T)``.
    F: ``E[F_t]`` forgetting (SPEC §5.1, denominator ``t-1``), shape ``(..., T)``;
        ``F[..., 0]`` is NaN.
    G_pool: ``E[G_t^pool]``, shape ``(..., T)`` (NaN where no pool assignment was
        given).
    task_error: ``E||w_t^{(mhat(n))} - w_n||^2`` per pool task, shape ``(..., T, N)``.
    self_error: ``E||w_t^{(m_t)} - w_{n_t}||^2`` (error of the task just learned), shape
        ``(..., T)``.
    """

    G: FloatArray
    F: FloatArray
    G_pool: FloatArray
    task_error: FloatArray
    self_error: FloatArray


# --------------------------------------------------------------------------------------
# The recursion of one expert, round by round
# --------------------------------------------------------------------------------------
class _Pool(NamedTuple):
    """A pool reduced to ``U = span(W, vhat)`` (see :func:`_reduced_pool`), with the
    update coefficients of its tasks and the task weights of a round."""

    W: FloatArray  # ground truths in a basis of U, (..., N, k)
    V: FloatArray  # signal directions in that basis, (..., N, k)
    rho: FloatArray  # update coefficients (rho, a, b) of each task, (..., N)
    a: FloatArray
    b: FloatArray
    q: FloatArray  # probability of each task in a round, (N,)
    qa_s: FloatArray  # sum_n q_n a_n, (...)
    left: FloatArray  # rows u_n then v_n, (..., 2N, k)
    q2: FloatArray  # weights of the rows of [p; r], (2N, 1)
    wn2: FloatArray  # ||w_n||^2 in the full space, (..., N)
    eye: FloatArray  # identity of U, (k, k)
    d: int  # dimension of the full space


def _task_weights(task_probs: ArrayLike | None, N: int) -> FloatArray:
    """Probabilities of the ``N`` tasks per round (default uniform ``1/N``), checked."""
    q = (
        np.full(N, 1.0 / N)
        if task_probs is None
        else np.asarray(task_probs, dtype=float)
    )
    if q.shape != (N,) or np.any(q < 0) or abs(q.sum() - 1.0) > 1e-9:
        _fail(f"task_probs must be N={N} non-negative numbers summing to 1")
    return q


def _reduce(W: FloatArray, V: FloatArray, s: int, q: FloatArray) -> _Pool:
    """:class:`_Pool` of a checked pool ``(W, V)`` (full space, (..., N, d))."""
    d = W.shape[-1]
    rho, a, b = update_coefficients(d, s, np.sum(V * V, axis=-1) > 0.5)  # (..., N)
    Wc, Vc = _reduced_pool(W, V)
    return _Pool(
        W=Wc,
        V=Vc,
        rho=rho,
        a=a,
        b=b,
        q=q,
        qa_s=np.einsum("n,...n->...", q, a),
        left=np.concatenate([Wc, Vc], axis=-2),
        q2=np.concatenate([q, q])[:, None],
        wn2=np.sum(W * W, axis=-1),
        eye=np.eye(Wc.shape[-1]),
        d=d,
    )


def _trace(pool: _Pool, B: FloatArray, c: FloatArray) -> FloatArray:
    """Trace in the full space of the second moments ``B + c I``, (..., K)."""
    return np.trace(B, axis1=-2, axis2=-1) + pool.d * c


def _pool_errors(pool: _Pool, trS: FloatArray, m: FloatArray) -> FloatArray:
    """``E||w - w_n||^2`` per task (..., N) of a state with trace ``trS`` and mean
    ``m`` (..., k)."""
    return trS[..., None] - 2 * np.einsum("...nd,...d->...n", pool.W, m) + pool.wn2


def _round_terms(
    pool: _Pool, omega: FloatArray, m: FloatArray, B: FloatArray, c: FloatArray
) -> dict[str, FloatArray]:
    """:func:`_task_terms` of the states ``(omega, m, B + c I)`` on every task."""
    trS = _trace(pool, B, c)
    S = B + c[..., None, None] * pool.eye
    return _task_terms(omega, m, S, pool.W, pool.V, pool.rho, pool.a, pool.b, trS=trS)


def _averaged_second_moment(
    pool: _Pool, tt: dict[str, FloatArray], B: FloatArray, c: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Second moments ``(B', c')`` of every state after a round, averaged over its task:
    ``sum_n q_n (a_n B + u p^T + p u^T + v r^T + r v^T)`` and
    ``sum_n q_n (a_n c + b_n tr(Pi C))``."""
    # sum_n q_n (u p^T + p u^T + v r^T + r v^T) as one product of (k x 4N) and
    # (4N x k) factors
    pr = np.concatenate([tt["p"], tt["r"]], axis=-2)  # (..., K, 2N, k)
    lhs = np.concatenate(
        [np.broadcast_to(pool.left[..., None, :, :], pr.shape), pr * pool.q2], axis=-2
    )
    rhs = np.concatenate(
        [pr * pool.q2, np.broadcast_to(pool.left[..., None, :, :], pr.shape)], axis=-2
    )
    B_new = np.swapaxes(lhs, -1, -2) @ rhs
    B_new += pool.qa_s[..., None, None, None] * B
    c_new = pool.qa_s[..., None] * c + np.einsum(
        "n,...n,...kn->...k", pool.q, pool.b, tt["trPC"]
    )
    return B_new, c_new


def _single_round(
    pool: _Pool,
    omega: FloatArray,
    m: FloatArray,
    B: FloatArray,
    c: FloatArray,
    t: int,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Round ``t`` of the recursion of :func:`single_expert_exact`.

    State 0 is unconditional; state ``n + 1`` is the sum over the past arrivals of the
    state conditioned on that arrival being task ``n``, which the arrival of round ``t``
    joins. Returns the new ``(omega, m, B, c)`` and ``E||w_t - w_{n_t}||^2``.
    """
    Wc, Vc, a, b = pool.W, pool.V, pool.a, pool.b
    tt = _round_terms(pool, omega, m, B, c)  # (..., K, N, .)
    # average over the task of round t
    m_new = np.einsum(
        "n,...knd->...kd",
        pool.q,
        omega[..., None, None] * Wc[..., None, :, :] + tt["Ee"],
    )
    B_new, c_new = _averaged_second_moment(pool, tt, B, c)
    # the arrival of round t, conditioned on n_t = n (fresh state k = 0 on task n),
    # joins the n-th sum
    Ee0, p0, r0 = (
        tt["Ee"][..., 0, :, :],
        tt["p"][..., 0, :, :],
        tt["r"][..., 0, :, :],
    )
    m_new[..., 1:, :] += Wc + Ee0
    # u p^T + p u^T + ..
    B_fresh = np.stack([Wc, Vc, p0, r0], axis=-1) @ np.stack([p0, r0, Wc, Vc], axis=-2)
    B_fresh += a[..., None, None] * B[..., 0:1, :, :]
    B_new[..., 1:, :, :] += B_fresh
    c_new[..., 1:] += a * c[..., 0:1] + b * tt["trPC"][..., 0, :]
    omega = omega.copy()
    omega[..., 1:] = t
    # E||w_t - w_{n_t}||^2 = sum_n q_n rho_n tr(Pi_n C_n) (trace identity of one
    # update)
    self_now = np.einsum("n,...n->...", pool.q, pool.rho * tt["trPC"][..., 0, :])
    return omega, m_new, B_new, c_new, self_now


# --------------------------------------------------------------------------------------
# Single expert: expectation over task draws and data
# --------------------------------------------------------------------------------------
def single_expert_exact(
    W: ArrayLike,
    vhat: ArrayLike | None,
    s: int,
    T: int,
    task_probs: ArrayLike | None = None,
) -> ExactCurves:
    """Exact ``E[G_t]``, ``E[F_t]``, ``E[G_t^pool]`` for one expert (``w_0 = 0``),
    ``t = 1..T``.

    Parameters
    ----------
    W: ground truths, shape ``(N, d)`` or batched ``(R, N, d)`` (one fixed pool per
        leading index).
    vhat: unit signal directions ``v_n / ||v_n||`` of the same shape, or ``None`` for
        all-isotropic columns (``signal="none"``; reproduces the closed forms of SPEC
        §6.5 exactly). Zero rows mean "no signal column".
    s: samples per round (``1 <= s < d``).
    T: horizon.
    task_probs: probabilities of the ``N`` tasks per round (default uniform ``1/N``,
        SPEC §2.1).

    Cost ``O(T N^2 k^2)`` per pool with ``k = min(2N, d)`` (it propagates the
    unconditional state and, per task ``n``, the sum over past arrivals of the state
    conditioned on that arrival being task ``n``, in the subspace spanned by the ground
    truths and signals; see :func:`_reduced_pool`).
    """
    W, V = _prepare_pool(W, vhat)
    batch = W.shape[:-2]
    N, d = W.shape[-2:]
    _check_s(d, s)
    T = int(T)
    if T < 1:
        _fail(f"T must be >= 1, got {T}")
    q = _task_weights(task_probs, N)
    # exact reduction to U = span(W, V): second moments are Bs B Bs^T + c I_d
    pool = _reduce(W, V, s, q)
    k = pool.W.shape[-1]
    # state 0: unconditional; states 1..N: sums over past arrivals tau of the state
    # conditioned on n_tau = n
    m = np.zeros(batch + (N + 1, k))
    B = np.zeros(batch + (N + 1, k, k))
    c = np.zeros(batch + (N + 1,))
    omega = np.zeros(batch + (N + 1,))
    omega[..., 0] = 1.0

    G = np.empty(batch + (T,))
    F = np.full(batch + (T,), np.nan)
    G_pool = np.empty(batch + (T,))
    task_error = np.empty(batch + (T, N))
    self_error = np.empty(batch + (T,))
    cum_self = np.zeros(batch)  # sum_{tau < t} E||w_tau - w_{n_tau}||^2
    for t in range(1, T + 1):
        omega, m, B, c, self_now = _single_round(pool, omega, m, B, c, t)
        trS = _trace(pool, B, c)
        # E||w_t - w_n||^2 from the unconditional state
        err_uncond = _pool_errors(pool, trS[..., 0], m[..., 0, :])
        task_error[..., t - 1, :] = err_uncond
        G_pool[..., t - 1] = err_uncond.mean(axis=-1)
        self_error[..., t - 1] = self_now
        # sum_{tau <= t} E||w_t - w_{n_tau}||^2
        agg = (
            trS[..., 1:]
            - 2 * np.einsum("...nd,...nd->...n", pool.W, m[..., 1:, :])
            + t * pool.wn2
        )
        total = agg @ q
        G[..., t - 1] = total / t
        if t >= 2:
            F[..., t - 1] = (total - self_now - cum_self) / (t - 1)
        cum_self = cum_self + self_now
    return ExactCurves(
        G=G, F=F, G_pool=G_pool, task_error=task_error, self_error=self_error
    )


@dataclass(frozen=True)
class ExactLimits:
    """``t -> infinity`` limits of the single-expert curves (fixed pool).

    Attributes
    ----------
    G: ``lim E[G_t] = sum_n q_n lim E||w_t - w_n||^2`` (the single expert's floor;
        ``q_n = 1/N``), ``(...)``.
    F: ``lim E[F_t] = G - self_error``, ``(...)``.
    G_pool: ``lim E[G_t^pool] = (1/N) sum_n lim E||w_t - w_n||^2`` (equals ``G`` for
        uniform tasks), ``(...)``.
    task_error: ``lim E||w_t - w_n||^2`` per task, ``(..., N)``.
    self_error: ``lim E||w_t - w_{n_t}||^2`` (error of the task just learned),
        ``(...)``.
    """

    G: FloatArray
    F: FloatArray
    G_pool: FloatArray
    task_error: FloatArray
    self_error: FloatArray


def single_expert_limits_exact(
    W: ArrayLike,
    vhat: ArrayLike | None,
    s: int,
    task_probs: ArrayLike | None = None,
    tol: float = 1e-13,
    max_rounds: int = 200_000,
) -> ExactLimits:
    """Stationary limits of :func:`single_expert_exact` (iterates the unconditional map
    to its fixed point).

    The arrival average forgets any finite number of recent arrivals, so ``lim E[G_t]``
    is the ``q``-weighted average of the stationary errors and
    ``lim E[F_t] = lim E[G_t] - lim E||w_t - w_{n_t}||^2``. For isotropic columns these
    are ``Delta`` and ``(1 - r) Delta`` (SPEC §6.5). Convergence is geometric (factor
    about ``(d-s)/(d-1)`` per round); raises ``ConfigError`` if ``max_rounds`` is not
    enough.
    """
    W, V = _prepare_pool(W, vhat)
    N, d = W.shape[-2:]
    _check_s(d, s)
    q = _task_weights(task_probs, N)
    pool = _reduce(W, V, s, q)
    batch, k = W.shape[:-2], pool.W.shape[-1]
    m = np.zeros(batch + (1, k))
    B = np.zeros(batch + (1, k, k))
    c = np.zeros(batch + (1,))
    omega = np.ones(batch + (1,))
    err_old = None
    for _ in range(max_rounds):
        tt = _round_terms(pool, omega, m, B, c)
        self_err = np.einsum("n,...n->...", q, pool.rho * tt["trPC"][..., 0, :])
        m = np.einsum("n,...knd->...kd", q, pool.W[..., None, :, :] + tt["Ee"])
        B, c = _averaged_second_moment(pool, tt, B, c)
        trS = _trace(pool, B, c)
        err = _pool_errors(pool, trS[..., 0], m[..., 0, :])
        if err_old is not None and np.all(
            np.abs(err - err_old) <= tol * (1.0 + np.abs(err))
        ):
            G = err @ q
            return ExactLimits(
                G=G,
                F=G - self_err,
                G_pool=err.mean(axis=-1),
                task_error=err,
                self_error=self_err,
            )
        err_old = err
    _fail(
        f"single_expert_limits_exact did not converge in max_rounds={max_rounds} rounds"
    )
    raise AssertionError  # unreachable


def single_expert_exact_for_pool(
    pool: Any, s: int, T: int, runs: ArrayLike | None = None
) -> ExactCurves:
    """:func:`single_expert_exact` for the pools of a simulation
    (``SimulationResult.pool``, a ``TaskPool``).

    Returns curves with a leading run axis, shape ``(len(runs), T)`` (all runs if
    ``runs`` is None), so that a run-by-run (paired) comparison
    ``res.G[runs] - exact.G`` isolates the Monte-Carlo noise of the task draws and data.
    A shared pool (``ExperimentConfig.shared_pool=True``) is computed once. Cost: see
    :func:`single_expert_exact` (about 1 s per 100 pools at ``N=4, T=200``; pass a
    subset of runs for large ``R``).
    """
    W = np.asarray(pool.W, dtype=float)
    vh = unit_signal_directions(pool)
    V = np.zeros_like(W) if vh is None else vh
    idx = (
        np.arange(W.shape[0])
        if runs is None
        else np.asarray(runs, dtype=int).reshape(-1)
    )
    if np.array_equal(W, np.broadcast_to(W[:1], W.shape)) and np.array_equal(
        V, np.broadcast_to(V[:1], V.shape)
    ):
        one = single_expert_exact(W[0], None if vh is None else V[0], s, T)
        return ExactCurves(
            **{
                f: np.broadcast_to(x, (idx.size,) + x.shape).copy()
                for f, x in one.__dict__.items()
            }
        )
    return single_expert_exact(W[idx], None if vh is None else V[idx], s, T)


# --------------------------------------------------------------------------------------
# Adapter to the Definition-1 generator
# --------------------------------------------------------------------------------------
def unit_signal_directions(pool: Any) -> FloatArray | None:
    """Unit signal directions ``vhat`` (shape of ``pool.W``, ``(R, N, d)``) of a
    ``moecl_lib.linear.tasks.TaskPool``.

    Returns ``None`` when the pool has no signal column at all (``signal="none"``:
    all-isotropic columns), so that the result can be passed straight to
    :func:`single_expert_exact` / :func:`moe_exact_given_routing`.
    """
    if hasattr(pool, "signal_directions"):
        vhat = np.asarray(pool.signal_directions(), dtype=float)
    else:
        V = np.asarray(pool.V, dtype=float)
        nrm = np.linalg.norm(V, axis=-1, keepdims=True)
        vhat = np.divide(V, nrm, out=np.zeros_like(V), where=nrm > 0)
    if not np.any(vhat):
        return None
    return vhat
