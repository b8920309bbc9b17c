"""One exact min-norm update: Haar moments of a random projector and the map of the
first two moments of ``w`` (this project's derivation; overview and formulas in
:mod:`moecl_lib.theory.exact`).

Building blocks of :mod:`moecl_lib.theory.exact_single` and
:mod:`moecl_lib.theory.exact_moe`: the moment coefficients
(:func:`update_coefficients`), the homogeneous update of a batch of states
(:func:`_task_terms`, :func:`_apply_map`), the checks of the inputs and the exact
reduction of a pool to ``span(W, vhat)`` (:func:`_reduced_pool`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.config import ConfigError

__all__ = [
    "projector_moment_coeffs",
    "haar_projector_sandwich",
    "update_coefficients",
    "expected_update",
]

FloatArray = NDArray[np.float64]


def _fail(msg: str) -> None:
    raise ConfigError(msg)


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
