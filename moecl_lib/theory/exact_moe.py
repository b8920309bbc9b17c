"""Exact expected curves of an MoE conditional on a realised routing sequence: the
expectation over the data of every round only (this project's derivation; overview and
formulas in :mod:`moecl_lib.theory.exact`).

Each expert keeps its first two moments in the reduced basis of :func:`_reduced_pool`;
a round updates the routed expert of every run exactly (:func:`_routed_update`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.theory.exact_single import ExactCurves
from moecl_lib.theory.exact_update import (
    _check_s,
    _fail,
    _prepare_pool,
    _reduced_pool,
    _task_terms,
    update_coefficients,
)

__all__ = ["moe_exact_given_routing"]

FloatArray = NDArray[np.float64]


def _check_routing(
    W0: FloatArray, V0: FloatArray, tasks: ArrayLike, experts: ArrayLike, M: int
) -> tuple[FloatArray, FloatArray, NDArray, NDArray, int, bool]:
    """Checked ``(W, V, tasks, experts, M, squeeze)`` with a leading run axis: pool
    (R, N, d), routing (R, T); ``squeeze`` = the routing came without one."""
    N, d = W0.shape[-2:]
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
    Rr = tasks.shape[0]
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
    return W0, V0, tasks, experts, M, squeeze


def _pool_expert_table(
    pool_experts: ArrayLike | None, Rr: int, T: int, N: int, M: int, squeeze: bool
) -> NDArray[np.int64] | None:
    """``pool_experts`` broadcast to (R, T, N) (``None`` stays ``None``), checked."""
    if pool_experts is None:
        return None
    pe = np.asarray(pool_experts)
    if pe.ndim == 1:
        pe = np.broadcast_to(pe, (Rr, T, N))
    elif pe.ndim == 2 and pe.shape == (Rr, N) and not (pe.shape == (T, N) and squeeze):
        pe = np.broadcast_to(pe[:, None, :], (Rr, T, N))
    elif pe.ndim == 2 and pe.shape == (T, N):
        pe = np.broadcast_to(pe[None], (Rr, T, N))
    if pe.shape != (Rr, T, N) or pe.min() < 0 or pe.max() >= M:
        _fail(
            f"pool_experts must be expert indices in [0, M={M}) of shape (N,), (R, "
            "N), (T, N) or (R, T, N)"
        )
    return pe


def _routed_update(
    m_old: FloatArray,
    B_old: FloatArray,
    c_old: FloatArray,
    task: tuple[FloatArray, ...],
    d: int,
    eye_k: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exact update of the routed expert of every run on the task of its round.

    Expert state ``(m, B, c)``: shapes (R, k), (R, k, k), (R,) (second moment
    ``B + c I``); ``task = (u, v, rho, a, b)``: shapes (R, k), (R, k), (R,) x 3.
    Returns the new ``(m, B, c)``.
    """
    u, v, rho_t, a_t, b_t = task
    tt = _task_terms(
        np.ones((len(c_old), 1)),
        m_old[:, None, :],
        (B_old + c_old[:, None, None] * eye_k)[:, None],
        u[:, None, :],  # (R, 1, k): one task per run
        v[:, None, :],
        rho_t[:, None],
        a_t[:, None],
        b_t[:, None],
        trS=(np.trace(B_old, axis1=-2, axis2=-1) + d * c_old)[:, None],
    )
    Ee, p, r, trPC = (
        tt["Ee"][:, 0, 0],
        tt["p"][:, 0, 0],
        tt["r"][:, 0, 0],
        tt["trPC"][:, 0, 0],
    )
    m_new = u + Ee
    B_new = (
        np.stack([u, v, p, r], axis=-1) @ np.stack([p, r, u, v], axis=-2)
        + a_t[:, None, None] * B_old
    )
    c_new = a_t * c_old + b_t * trPC
    return m_new, B_new, c_new


@dataclass
class _Experts:
    """The ``M`` experts of every run: moments in the reduced basis (mean (R, M, k),
    second moment ``B + c I`` with B (R, M, k, k) and c (R, M)), arrivals ``counts``
    (R, M, N), the expert that learned each task last (R, N) and
    ``err = E||w_t^{(m)} - w_n||^2`` (R, M, N)."""

    mean: FloatArray
    B: FloatArray
    c: FloatArray
    counts: FloatArray
    last_expert: NDArray[np.int64]
    err: FloatArray

    @classmethod
    def zero(cls, Rr: int, M: int, N: int, k: int, wn2: FloatArray) -> _Experts:
        """Experts at ``w_0 = 0``; ``wn2`` (R, N) = ``||w_n||^2``."""
        return cls(
            mean=np.zeros((Rr, M, k)),
            B=np.zeros((Rr, M, k, k)),
            c=np.zeros((Rr, M)),
            counts=np.zeros((Rr, M, N)),
            last_expert=np.zeros((Rr, N), dtype=int),
            err=np.repeat(wn2[:, None, :], M, axis=1),
        )

    def learn(self, pool: tuple, n_t: NDArray, m_t: NDArray) -> None:
        """Expert ``m_t`` of every run learns task ``n_t`` (both (R,)); only row
        ``m_t`` of ``err`` changes. ``pool = (W, V, rho, a, b, wn2, d, eye_k)``."""
        Wc, Vc, rho, a, b, wn2, d, eye_k = pool
        ar = np.arange(len(n_t))
        m_new, B_new, c_new = _routed_update(
            self.mean[ar, m_t],
            self.B[ar, m_t],
            self.c[ar, m_t],
            (Wc[ar, n_t], Vc[ar, n_t], rho[ar, n_t], a[ar, n_t], b[ar, n_t]),
            d,
            eye_k,
        )
        self.mean[ar, m_t] = m_new
        self.B[ar, m_t] = B_new
        self.c[ar, m_t] = c_new
        self.counts[ar, m_t, n_t] += 1
        self.last_expert[ar, n_t] = m_t
        trS_new = np.trace(B_new, axis1=-2, axis2=-1) + d * c_new
        self.err[ar, m_t] = (
            trS_new[:, None] - 2 * np.einsum("rnk,rk->rn", Wc, m_new) + wn2
        )


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
    W0, V0, tasks, experts, M, squeeze = _check_routing(W0, V0, tasks, experts, M)
    Rr, T = tasks.shape
    pe = _pool_expert_table(pool_experts, Rr, T, N, M, squeeze)

    rho, a, b = update_coefficients(d, s, np.sum(V0 * V0, axis=-1) > 0.5)  # (R, N)
    # exact reduction to span(W, V): S = Bs B Bs^T + c I_d
    Wc, Vc = _reduced_pool(W0, V0)
    wn2 = np.sum(W0 * W0, axis=-1)  # (R, N)
    pool = (Wc, Vc, rho, a, b, wn2, d, np.eye(Wc.shape[-1]))
    ex = _Experts.zero(Rr, M, N, Wc.shape[-1], wn2)
    ar = np.arange(Rr)

    G = np.empty((Rr, T))
    F = np.full((Rr, T), np.nan)
    G_pool = np.full((Rr, T), np.nan)
    task_error = np.empty((Rr, T, N))
    self_error = np.empty((Rr, T))
    cum_self = np.zeros(Rr)
    for t in range(1, T + 1):
        n_t = tasks[:, t - 1]
        m_t = experts[:, t - 1]
        ex.learn(pool, n_t, m_t)
        err = ex.err
        total = np.einsum("rmn,rmn->r", ex.counts, err)
        self_now = err[ar, m_t, n_t]
        self_error[:, t - 1] = self_now
        G[:, t - 1] = total / t
        if t >= 2:
            F[:, t - 1] = (total - self_now - cum_self) / (t - 1)
        cum_self = cum_self + self_now
        sel = pe[:, t - 1, :] if pe is not None else ex.last_expert
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
