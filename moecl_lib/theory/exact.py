"""Exact expected forgetting / generalisation error under the Definition-1 generator
(this project's derivation).

The isotropic closed forms of SPEC §6.5 (``moecl_lib.theory.isotropic``) assume that all
``s`` columns of ``X_t`` are isotropic Gaussian, so that ``E[P_t] = (s/d) I``. The
generator we simulate (Definition 1, SPEC §2.3) puts the task's feature signal
``beta * v_n`` in one column and ``s - 1`` isotropic Gaussian columns next to it. The
projector onto the column span is then

    P_t = vhat vhat^T + P_g,     vhat = v_{n_t} / ||v_{n_t}||,

with ``P_g`` a uniformly (Haar) distributed ``(s-1)``-dimensional orthogonal projector
inside ``vhat^perp`` (``beta`` and ``sigma_t`` drop out of the span). Equivalently
``R_t = I - P_t`` is a uniformly random ``(d-s)``-dimensional projector inside
``vhat^perp``. For isotropic columns (``signal="none"``) ``R_t`` is a uniformly random
``(d-s)``-dimensional projector in ``R^d``; both cases are handled by passing a unit
``vhat`` (signal) or the zero vector (no signal column) per task.

Haar moments used (``Q`` uniform rank-``k`` projector in a ``D``-dimensional space with
projector ``Pi``):

    E[Q] = (k/D) Pi,
    E[Q_ij Q_kl] = alpha Pi_ij Pi_kl + gamma (Pi_ik Pi_jl + Pi_il Pi_jk)
                   (in an orthonormal basis of the space),
    gamma = k (D-k) / (D (D-1) (D+2)),   alpha = k/D - (D+1) gamma,
    E[Q A Q] = alpha Pi A Pi + gamma Pi A^T Pi + gamma tr(Pi A) Pi,

so for symmetric ``A``: ``E[Q A Q] = a Pi A Pi + b tr(Pi A) Pi`` with
``a = alpha + gamma``, ``b = gamma``.

One min-norm update on task ``n`` maps the error ``e = w - w_n`` to ``R e``; hence, for
the mean ``m`` and the second moment ``S`` of ``w`` (expectation over the data of the
round, ``w`` independent of it),

    E[e'] = rho Pi (m - w_n),                    rho = (d-s)/D,
    E[e' e'^T] = a Pi C Pi + b tr(Pi C) Pi,
    C = S - m w_n^T - w_n m^T + w_n w_n^T,

and ``m' = w_n + E[e']``, ``S' = w_n w_n^T + w_n E[e']^T + E[e'] w_n^T + E[e' e'^T]``.
The map is linear in the homogeneous triple ``(omega, omega*m, omega*S)``, which lets
the code propagate *sums* of conditioned states (one per past arrival) at the cost of
one state per task: the arrival-averaged ``G_t`` and ``F_t`` of SPEC §5.1 cost
``O(T N^2 k^2)`` per curve, where ``k = dim span(W, vhat) <= 2N`` (exact reduction:
every second moment is ``B_U B B_U^T + c I``, see :func:`_reduced_pool`), whatever
``d``. Derivation: book page ``derivations_exact``.

Metric conventions (same as ``moecl_lib.linear.engine``; SPEC §5.1): arrays have length
``T`` with index ``t-1`` = after round ``t``; errors are squared Euclidean parameter
distances ``||w_t^{(m_tau)} - w_{n_tau}||^2``; ``G_t = (1/t) sum_{tau<=t}``,
``F_t = (1/(t-1)) sum_{tau<t} (err_tau(t) - err_tau(tau))`` (``F[..., 0]`` is NaN),
``G_t^pool = (1/N) sum_n ||w_t^{(mhat(n))} - w_n||^2``. Expectations are over the task
draws (single expert) and the data of every round, for a fixed pool ``(W, vhat)``; a
leading batch axis of pools is supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError

__all__ = [
    "ExactCurves",
    "projector_moment_coeffs",
    "haar_projector_sandwich",
    "update_coefficients",
    "expected_update",
    "single_expert_exact",
    "single_expert_exact_for_pool",
    "ExactLimits",
    "single_expert_limits_exact",
    "moe_exact_given_routing",
    "unit_signal_directions",
]

FloatArray = NDArray[np.float64]


def _fail(msg: str) -> None:
    raise ConfigError(msg)


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
# Haar moments of a random projector
# --------------------------------------------------------------------------------------


def projector_moment_coeffs(D: int, k: int) -> tuple[float, float]:
    """Return ``(alpha, gamma)`` with
    ``E[Q_ij Q_kl] = alpha d_ij d_kl + gamma (d_ik d_jl + d_il d_jk)``.

    ``Q`` is a uniformly random rank-``k`` orthogonal projector in ``R^D``
    (``0 <= k <= D``). Derived from ``Q^2 = Q`` (gives ``alpha + (D+1) gamma = k/D``)
    and ``tr(Q)^2 = k^2`` (gives ``D^2 alpha + 2 D gamma = k^2``).
    """
    D = int(D)
    k = int(k)
    if D < 1 or not 0 <= k <= D:
        _fail(f"projector moments need D >= 1 and 0 <= k <= D, got D={D}, k={k}")
    if k == 0 or k == D:
        return (float(k) / D, 0.0)
    gamma = k * (D - k) / (D * (D - 1) * (D + 2))
    alpha = k / D - (D + 1) * gamma
    return (float(alpha), float(gamma))


def haar_projector_sandwich(A: ArrayLike, k: int) -> FloatArray:
    """``E[Q A Q]`` for a uniformly random rank-``k`` projector ``Q`` in ``R^D`` (``A``
    of shape ``(..., D, D)``)."""
    A = np.asarray(A, dtype=float)
    D = A.shape[-1]
    alpha, gamma = projector_moment_coeffs(D, k)
    tr = np.trace(A, axis1=-2, axis2=-1)[..., None, None]
    return alpha * A + gamma * np.swapaxes(A, -1, -2) + gamma * tr * np.eye(D)


def update_coefficients(
    d: int, s: int, has_signal: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Coefficients ``(rho, a, b)`` of one min-norm update, per task.

    ``R = I - P`` is a uniform rank-``(d-s)`` projector in a space of dimension
    ``D = d-1`` (signal column present, the space is ``vhat^perp``) or ``D = d`` (all
    columns isotropic). Returns ``rho = (d-s)/D`` and the symmetric-sandwich
    coefficients ``a = alpha + gamma``, ``b = gamma``.
    """
    hs = np.asarray(has_signal, dtype=bool)
    rho = np.empty(hs.shape)
    a = np.empty(hs.shape)
    b = np.empty(hs.shape)
    for flag in (False, True):
        D = d - 1 if flag else d
        alpha, gamma = projector_moment_coeffs(D, d - s)
        rho[hs == flag] = (d - s) / D
        a[hs == flag] = alpha + gamma
        b[hs == flag] = gamma
    return rho, a, b


# --------------------------------------------------------------------------------------
# One exact update
# --------------------------------------------------------------------------------------


def _outer(x: FloatArray, y: FloatArray) -> FloatArray:
    return x[..., :, None] * y[..., None, :]


def _task_terms(
    omega: FloatArray,
    m: FloatArray,
    S: FloatArray,
    W: FloatArray,
    V: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    b: FloatArray,
    trS: FloatArray | None = None,
) -> dict[str, FloatArray]:
    """Vectors of the exact update of every state ``k`` on every task ``n`` (all in
    O(d^2) per state).

    States: ``omega (..., K)``, ``m (..., K, d)``, ``S (..., K, d, d)``; tasks:
    ``W, V (..., N, d)``, ``rho, a, b (..., N)``. With ``e = m - omega u``,
    ``C = S - e u^T - u e^T - omega u u^T`` (the second moment of ``w - u``),
    ``x = C v - (v^T C v / 2) v`` one has ``Pi C Pi = C - v x^T - x v^T`` and

        S'_{kn} = a_n S_k + b_n tr(Pi C) I + (u p^T + p u^T) + (v r^T + r v^T),
        p = E[e'] - a e + (1 - a) omega u / 2,   r = -a x - b tr(Pi C) v / 2,
        E[e'] = rho Pi e,
        m'_{kn} = omega u + E[e'].

    Returns the arrays ``Ee, p, r`` of shape ``(..., K, N, d)`` and ``trPC`` of shape
    ``(..., K, N)``. ``S`` may be the restriction of the second moment to a subspace
    containing every ``u`` and ``v`` (then ``trS (..., K)``, the trace of the full
    matrix, must be given; see :func:`_reduced_pool`).
    """
    om = omega[..., :, None]  # (..., K, 1)
    u = W[..., None, :, :]  # (..., 1, N, d)
    v = V[..., None, :, :]
    mu = np.einsum("...kd,...nd->...kn", m, W)
    mv = np.einsum("...kd,...nd->...kn", m, V)
    uu = np.sum(W * W, axis=-1)[..., None, :]  # (..., 1, N)
    uv = np.sum(W * V, axis=-1)[..., None, :]
    Sv = np.swapaxes(
        S @ np.swapaxes(V, -1, -2)[..., None, :, :], -1, -2
    )  # (..., K, N, d)
    e = m[..., :, None, :] - om[..., None] * u  # (..., K, N, d)
    eu = mu - om * uu
    ev = mv - om * uv
    vSv = np.einsum("...knd,...nd->...kn", Sv, V)
    Cv = Sv - e * uv[..., None] - u * ev[..., None] - (om * uv)[..., None] * u
    vCv = vSv - 2 * ev * uv - om * uv * uv
    trS = (np.trace(S, axis1=-2, axis2=-1) if trS is None else trS)[..., :, None]
    trPC = trS - 2 * eu - om * uu - vCv
    x = Cv - 0.5 * vCv[..., None] * v
    rho_ = rho[..., None, :, None]
    a_ = a[..., None, :, None]
    b_ = b[..., None, :, None]
    Ee = rho_ * (e - ev[..., None] * v)
    p = Ee - a_ * e + 0.5 * (1 - a_) * om[..., None] * u
    r = -a_ * x - 0.5 * b_ * trPC[..., None] * v
    return {"Ee": Ee, "p": p, "r": r, "trPC": trPC}


def _add_identity(S: FloatArray, c: FloatArray) -> FloatArray:
    d = S.shape[-1]
    flat = S.reshape(S.shape[:-2] + (d * d,))
    flat[..., :: d + 1] += c[..., None]
    return S


def _apply_map(
    omega: FloatArray,
    m: FloatArray,
    S: FloatArray,
    u: FloatArray,
    v: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    b: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Homogeneous exact update of states ``(omega, m, S)`` (shapes ``(...,)``,
    ``(..., d)``, ``(..., d, d)``) on one task each (``u, v (..., d)``,
    ``rho, a, b (...,)``); returns ``(m', S')``."""
    tt = _task_terms(
        omega[..., None],
        m[..., None, :],
        S[..., None, :, :],
        u[..., None, :],
        v[..., None, :],
        rho[..., None],
        a[..., None],
        b[..., None],
    )
    Ee, p, r, trPC = (
        tt[k][..., 0, 0, :] if k != "trPC" else tt[k][..., 0, 0]
        for k in ("Ee", "p", "r", "trPC")
    )
    m_new = omega[..., None] * u + Ee
    S_new = (
        a[..., None, None] * S
        + _outer(u, p)
        + _outer(p, u)
        + _outer(v, r)
        + _outer(r, v)
    )
    return m_new, _add_identity(S_new, b * trPC)


def expected_update(
    mean: ArrayLike, second: ArrayLike, w_task: ArrayLike, vhat: ArrayLike, s: int
) -> tuple[FloatArray, FloatArray]:
    """Exact ``(E[w'], E[w' w'^T])`` after one min-norm update on a task with ground
    truth ``w_task``.

    ``mean``/``second`` are ``E[w]``/``E[w w^T]`` before the round (``w`` independent of
    the round's data); ``vhat`` is the unit signal direction of the task, or the zero
    vector for all-isotropic columns.
    """
    m = np.asarray(mean, dtype=float)
    S = np.asarray(second, dtype=float)
    u = np.asarray(w_task, dtype=float)
    v = np.asarray(vhat, dtype=float)
    d = u.shape[-1]
    _check_s(d, s)
    rho, a, b = update_coefficients(d, s, np.sum(v * v, axis=-1) > 0.5)
    omega = np.ones(np.broadcast_shapes(m.shape[:-1], u.shape[:-1]))
    return _apply_map(omega, m, S, u, v, rho, a, b)


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def _check_s(d: int, s: int) -> None:
    if not (isinstance(s, (int, np.integer)) and 1 <= s < d):
        _fail(
            f"s must be an integer with 1 <= s < d (overparameterised), got s={s!r}, "
            f"d={d}"
        )


def _prepare_pool(
    W: ArrayLike, vhat: ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    W = np.asarray(W, dtype=float)
    if W.ndim < 2:
        _fail(f"W must have shape (..., N, d), got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        _fail("W must be finite")
    if vhat is None:
        V = np.zeros_like(W)
    else:
        V = np.asarray(vhat, dtype=float)
        if V.shape[-2:] != W.shape[-2:]:
            _fail(
                f"vhat must have the shape of W (..., N, d), got {V.shape} vs {W.shape}"
            )
        V = np.broadcast_to(V, np.broadcast_shapes(V.shape, W.shape)).copy()
        nrm = np.sum(V * V, axis=-1)
        if not np.all((np.abs(nrm - 1.0) < 1e-8) | (nrm == 0.0)):
            _fail(
                "every vhat row must be a unit vector (signal column) or zero "
                "(isotropic columns)"
            )
        W = np.broadcast_to(W, V.shape).copy()
    return W, V


def _reduced_pool(W: FloatArray, V: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Coordinates of ``W`` and ``V`` (``(..., N, d)``) in an orthonormal basis of a
    subspace ``U`` containing them.

    Exact dimension reduction: starting from ``w_0 = 0``, every second moment the
    recursion meets has the form ``S = Bs B Bs^T + c I_d`` and every mean lies in
    ``U = span(Bs)`` (all maps only add outer products of ``u_n, v_n`` and vectors built
    from them, multiples of ``I``, and ``Pi_n = I - v_n v_n^T``). The state is then
    ``(m in R^k, B in R^{k x k}, c)`` with ``k = dim U <= min(2N, d)`` (``N`` for
    aligned signals or isotropic columns), whatever ``d``.
    """
    d = W.shape[-1]
    A = np.concatenate([W, V], axis=-2)  # (..., 2N, d)
    _, sv, vt = np.linalg.svd(
        A, full_matrices=False
    )  # rows of vt: orthonormal basis of the row space
    tol = 1e-10 * np.maximum(sv[..., :1], 1e-300)
    k = max(
        1, int(np.max(np.sum(sv > tol, axis=-1)))
    )  # common dimension over the batch (a superset is exact)
    if k >= d:
        return W, V
    basis = np.swapaxes(vt[..., :k, :], -1, -2)  # (..., d, k)
    return W @ basis, V @ basis


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
    q = (
        np.full(N, 1.0 / N)
        if task_probs is None
        else np.asarray(task_probs, dtype=float)
    )
    if q.shape != (N,) or np.any(q < 0) or abs(q.sum() - 1.0) > 1e-9:
        _fail(f"task_probs must be N={N} non-negative numbers summing to 1")
    rho, a, b = update_coefficients(d, s, np.sum(V * V, axis=-1) > 0.5)  # (..., N)

    # exact reduction to U = span(W, V): second moments are Bs B Bs^T + c I_d (see
    # _reduced_pool)
    Wc, Vc = _reduced_pool(W, V)
    k = Wc.shape[-1]
    eye_k = np.eye(k)
    # state 0: unconditional; states 1..N: sums over past arrivals tau of the state
    # conditioned on n_tau = n
    m = np.zeros(batch + (N + 1, k))
    B = np.zeros(batch + (N + 1, k, k))
    c = np.zeros(batch + (N + 1,))
    omega = np.zeros(batch + (N + 1,))
    omega[..., 0] = 1.0
    wn2 = np.sum(W * W, axis=-1)  # (..., N)

    G = np.empty(batch + (T,))
    F = np.full(batch + (T,), np.nan)
    G_pool = np.empty(batch + (T,))
    task_error = np.empty(batch + (T, N))
    self_error = np.empty(batch + (T,))
    cum_self = np.zeros(batch)  # sum_{tau < t} E||w_tau - w_{n_tau}||^2

    qa_s = np.einsum("n,...n->...", q, a)  # sum_n q_n a_n
    qa = qa_s[..., None, None, None]
    left = np.concatenate([Wc, Vc], axis=-2)  # (..., 2N, k): rows u_n then v_n
    q2 = np.concatenate([q, q])[:, None]  # weights of the rows of [p; r]
    for t in range(1, T + 1):
        trS = np.trace(B, axis1=-2, axis2=-1) + d * c
        tt = _task_terms(
            omega, m, B + c[..., None, None] * eye_k, Wc, Vc, rho, a, b, trS=trS
        )  # (..., K, N, .)
        # average over the task of round t
        m_new = np.einsum(
            "n,...knd->...kd",
            q,
            omega[..., None, None] * Wc[..., None, :, :] + tt["Ee"],
        )
        # sum_n q_n (u p^T + p u^T + v r^T + r v^T) as one product of (k x 4N) and (4N x
        # k) factors
        pr = np.concatenate([tt["p"], tt["r"]], axis=-2)  # (..., K, 2N, k)
        lhs = np.concatenate(
            [np.broadcast_to(left[..., None, :, :], pr.shape), pr * q2], axis=-2
        )
        rhs = np.concatenate(
            [pr * q2, np.broadcast_to(left[..., None, :, :], pr.shape)], axis=-2
        )
        B_new = np.swapaxes(lhs, -1, -2) @ rhs
        B_new += qa * B
        c_new = qa_s[..., None] * c + np.einsum("n,...n,...kn->...k", q, b, tt["trPC"])
        # the arrival of round t, conditioned on n_t = n (fresh state k = 0 on task n),
        # joins the n-th sum
        Ee0, p0, r0 = (
            tt["Ee"][..., 0, :, :],
            tt["p"][..., 0, :, :],
            tt["r"][..., 0, :, :],
        )
        m_new[..., 1:, :] += Wc + Ee0
        B_fresh = np.stack([Wc, Vc, p0, r0], axis=-1) @ np.stack(
            [p0, r0, Wc, Vc], axis=-2
        )  # u p^T + p u^T + ..
        B_fresh += a[..., None, None] * B[..., 0:1, :, :]
        B_new[..., 1:, :, :] += B_fresh
        c_new[..., 1:] += a * c[..., 0:1] + b * tt["trPC"][..., 0, :]
        omega = omega.copy()
        omega[..., 1:] = t
        m, B, c = m_new, B_new, c_new

        trS = np.trace(B, axis1=-2, axis2=-1) + d * c
        # E||w_t - w_n||^2 from the unconditional state
        err_uncond = (
            trS[..., 0, None]
            - 2 * np.einsum("...nd,...d->...n", Wc, m[..., 0, :])
            + wn2
        )
        task_error[..., t - 1, :] = err_uncond
        G_pool[..., t - 1] = err_uncond.mean(axis=-1)
        # E||w_t - w_{n_t}||^2 = sum_n q_n rho_n tr(Pi_n C_n) (trace identity of one
        # update)
        self_now = np.einsum("n,...n->...", q, rho * tt["trPC"][..., 0, :])
        self_error[..., t - 1] = self_now
        # sum_{tau <= t} E||w_t - w_{n_tau}||^2
        agg = (
            trS[..., 1:]
            - 2 * np.einsum("...nd,...nd->...n", Wc, m[..., 1:, :])
            + t * wn2
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
    q = (
        np.full(N, 1.0 / N)
        if task_probs is None
        else np.asarray(task_probs, dtype=float)
    )
    if q.shape != (N,) or np.any(q < 0) or abs(q.sum() - 1.0) > 1e-9:
        _fail(f"task_probs must be N={N} non-negative numbers summing to 1")
    rho, a, b = update_coefficients(d, s, np.sum(V * V, axis=-1) > 0.5)
    Wc, Vc = _reduced_pool(W, V)
    batch, k = W.shape[:-2], Wc.shape[-1]
    eye_k = np.eye(k)
    wn2 = np.sum(W * W, axis=-1)
    m = np.zeros(batch + (1, k))
    B = np.zeros(batch + (1, k, k))
    c = np.zeros(batch + (1,))
    omega = np.ones(batch + (1,))
    qa_s = np.einsum("n,...n->...", q, a)
    left = np.concatenate([Wc, Vc], axis=-2)
    q2 = np.concatenate([q, q])[:, None]
    err_old = None
    for _ in range(max_rounds):
        trS = np.trace(B, axis1=-2, axis2=-1) + d * c
        tt = _task_terms(
            omega, m, B + c[..., None, None] * eye_k, Wc, Vc, rho, a, b, trS=trS
        )
        self_err = np.einsum("n,...n->...", q, rho * tt["trPC"][..., 0, :])
        m = np.einsum("n,...knd->...kd", q, Wc[..., None, :, :] + tt["Ee"])
        pr = np.concatenate([tt["p"], tt["r"]], axis=-2)
        lhs = np.concatenate(
            [np.broadcast_to(left[..., None, :, :], pr.shape), pr * q2], axis=-2
        )
        rhs = np.concatenate(
            [pr * q2, np.broadcast_to(left[..., None, :, :], pr.shape)], axis=-2
        )
        B = np.swapaxes(lhs, -1, -2) @ rhs + qa_s[..., None, None, None] * B
        c = qa_s[..., None] * c + np.einsum("n,...n,...kn->...k", q, b, tt["trPC"])
        trS = np.trace(B, axis1=-2, axis2=-1) + d * c
        err = (
            trS[..., 0, None]
            - 2 * np.einsum("...nd,...d->...n", Wc, m[..., 0, :])
            + wn2
        )
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
# MoE conditional on a realised routing sequence: expectation over the data only
# --------------------------------------------------------------------------------------


def moe_exact_given_routing(
    W: ArrayLike,
    vhat: ArrayLike | None,
    s: int,
    tasks: ArrayLike,
    experts: ArrayLike,
    M: int,
    pool_experts: ArrayLike | None = None,
) -> ExactCurves:
    """Exact ``E[F_t | routing]``, ``E[G_t | routing]`` for ``M`` experts (all
    ``w_0^{(m)} = 0``).

    The task sequence ``tasks`` (``n_tau``) and the routing ``experts`` (``m_tau``),
    shapes ``(T,)`` or ``(R, T)`` (with ``W``/``vhat`` of shape ``(R, N, d)`` or a
    shared ``(N, d)``), are held fixed; only the data of every round is averaged. Exact
    when the routing is independent of the Gaussian columns of the rounds (e.g. a forced
    routing); for Algorithm 1 the router also sees the Gaussian columns through
    ``X_t 1``, so this is then an approximation (see the book page
    ``derivations_exact``).

    ``pool_experts`` gives ``mhat(n)``, the expert that serves task ``n`` in
    ``G_t^pool``: shape ``(N,)``, ``(R, N)``, or time-varying ``(R, T, N)`` / ``(T, N)``
    (value used after round ``t`` at index ``t-1``). Without it ``G_pool`` is NaN;
    ``task_error[..., t-1, n]`` is then the error of the expert that learned task ``n``
    last (or of expert 0 if ``n`` never arrived).
    """
    W0, V0 = _prepare_pool(W, vhat)
    N, d = W0.shape[-2:]
    _check_s(d, s)
    tasks = np.asarray(tasks)
    experts = np.asarray(experts)
    if tasks.shape != experts.shape or tasks.ndim not in (1, 2):
        _fail(
            "tasks and experts must have the same shape (T,) or (R, T), got "
            f"{tasks.shape}, {experts.shape}"
        )
    squeeze = tasks.ndim == 1
    if squeeze:
        tasks = tasks[None]
        experts = experts[None]
    Rr, T = tasks.shape
    if W0.ndim == 2:
        W0 = np.broadcast_to(W0, (Rr, N, d))
        V0 = np.broadcast_to(V0, (Rr, N, d))
    if W0.shape[0] != Rr or W0.ndim != 3:
        _fail(f"W has shape {W0.shape}; expected (N, d) or (R={Rr}, N, d)")
    M = int(M)
    if M < 1:
        _fail(f"M must be >= 1, got {M}")
    if not (
        np.issubdtype(tasks.dtype, np.integer) and tasks.min() >= 0 and tasks.max() < N
    ):
        _fail(f"tasks must be integers in [0, N={N})")
    if not (
        np.issubdtype(experts.dtype, np.integer)
        and experts.min() >= 0
        and experts.max() < M
    ):
        _fail(f"experts must be integers in [0, M={M})")
    pe: NDArray[np.int64] | None = None
    if pool_experts is not None:
        pe = np.asarray(pool_experts)
        if pe.ndim == 1:
            pe = np.broadcast_to(pe, (Rr, T, N))
        elif (
            pe.ndim == 2
            and pe.shape == (Rr, N)
            and not (pe.shape == (T, N) and squeeze)
        ):
            pe = np.broadcast_to(pe[:, None, :], (Rr, T, N))
        elif pe.ndim == 2 and pe.shape == (T, N):
            pe = np.broadcast_to(pe[None], (Rr, T, N))
        if pe.shape != (Rr, T, N) or pe.min() < 0 or pe.max() >= M:
            _fail(
                f"pool_experts must be expert indices in [0, M={M}) of shape (N,), (R, "
                "N), (T, N) or (R, T, N)"
            )

    rho, a, b = update_coefficients(d, s, np.sum(V0 * V0, axis=-1) > 0.5)  # (R, N)
    Wc, Vc = _reduced_pool(
        W0, V0
    )  # exact reduction to span(W, V): S = Bs B Bs^T + c I_d
    k = Wc.shape[-1]
    mean = np.zeros((Rr, M, k))
    B = np.zeros((Rr, M, k, k))
    c = np.zeros((Rr, M))
    counts = np.zeros((Rr, M, N))
    last_expert = np.zeros((Rr, N), dtype=int)
    wn2 = np.sum(W0 * W0, axis=-1)  # (R, N)
    err = np.repeat(
        wn2[:, None, :], M, axis=1
    )  # E||w_t^{(m)} - w_n||^2, (R, M, N); only row m_t changes
    ones = np.ones((Rr, 1))
    ar = np.arange(Rr)
    eye_k = np.eye(k)

    G = np.empty((Rr, T))
    F = np.full((Rr, T), np.nan)
    G_pool = np.full((Rr, T), np.nan)
    task_error = np.empty((Rr, T, N))
    self_error = np.empty((Rr, T))
    cum_self = np.zeros(Rr)
    for t in range(1, T + 1):
        n_t = tasks[:, t - 1]
        m_t = experts[:, t - 1]
        B_old = B[ar, m_t]  # (R, k, k)
        c_old = c[ar, m_t]
        u = Wc[ar, n_t][:, None, :]  # (R, 1, k): one task per run
        v = Vc[ar, n_t][:, None, :]
        a_t = a[ar, n_t]
        tt = _task_terms(
            ones,
            mean[ar, m_t][:, None, :],
            (B_old + c_old[:, None, None] * eye_k)[:, None],
            u,
            v,
            rho[ar, n_t][:, None],
            a_t[:, None],
            b[ar, n_t][:, None],
            trS=(np.trace(B_old, axis1=-2, axis2=-1) + d * c_old)[:, None],
        )
        Ee, p, r, trPC = (
            tt["Ee"][:, 0, 0],
            tt["p"][:, 0, 0],
            tt["r"][:, 0, 0],
            tt["trPC"][:, 0, 0],
        )
        u, v = u[:, 0], v[:, 0]
        m_new = u + Ee
        B_new = (
            np.stack([u, v, p, r], axis=-1) @ np.stack([p, r, u, v], axis=-2)
            + a_t[:, None, None] * B_old
        )
        c_new = a_t * c_old + b[ar, n_t] * trPC
        mean[ar, m_t] = m_new
        B[ar, m_t] = B_new
        c[ar, m_t] = c_new
        counts[ar, m_t, n_t] += 1
        last_expert[ar, n_t] = m_t
        # row m_t of E||w_t^{(m)} - w_n||^2
        trS_new = np.trace(B_new, axis1=-2, axis2=-1) + d * c_new
        err[ar, m_t] = trS_new[:, None] - 2 * np.einsum("rnk,rk->rn", Wc, m_new) + wn2
        total = np.einsum("rmn,rmn->r", counts, err)
        self_now = err[ar, m_t, n_t]
        self_error[:, t - 1] = self_now
        G[:, t - 1] = total / t
        if t >= 2:
            F[:, t - 1] = (total - self_now - cum_self) / (t - 1)
        cum_self = cum_self + self_now
        if pe is not None:
            sel = pe[:, t - 1, :]
        else:
            sel = last_expert
        task_error[:, t - 1, :] = np.take_along_axis(err, sel[:, None, :], axis=1)[
            :, 0, :
        ]
        if pe is not None:
            G_pool[:, t - 1] = task_error[:, t - 1, :].mean(axis=-1)
    out = ExactCurves(
        G=G, F=F, G_pool=G_pool, task_error=task_error, self_error=self_error
    )
    if squeeze:
        out = ExactCurves(**{k: v[0] for k, v in out.__dict__.items()})
    return out


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
