"""State-independent work of a block of rounds: orthonormal bases and summed inputs.

For every round ``t`` and run of a block, ``Q_t^T`` is an orthonormal basis of the row
span of ``X_t^T`` (so ``Q_t Q_t^T`` projects onto ``span(X_t)``, the operator of the
min-norm update, Eq. 4) and ``xbar_t = X_t 1`` is the router's input. Layout runs-last:
``Q^T`` (s, d, B, R), ``xbar`` (d, B, R). Used by the numpy loop of the engine.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.draws import RoundDraws
from moecl_lib.linear.tasks import TaskPool

FloatArray = NDArray[np.floating]

_TORCH_QR_MIN_SIZE = 400
"""Above this ``s * d`` the block bases are computed by Cholesky-QR in torch (see
:func:`_block_bases`)."""


def _block_bases(
    cfg: ExperimentConfig,
    pool: TaskPool,
    draws: RoundDraws,
    dtype: np.dtype,
    need_xbar: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """State-independent work of a block: ``Q_t^T`` (s, d, B, R) and ``xbar_t = X_t 1``
    (d, B, R).

    Small matrices (``s * d <= _TORCH_QR_MIN_SIZE``, e.g. Figure 2): ``X^T`` is laid out
    runs-last and orthonormalised by the vectorised Gram-Schmidt
    :func:`orthonormal_rows`. Large ones (e.g. d=200, s=20): Cholesky-QR with torch's
    batched BLAS/LAPACK in the runs-first layout, transposed once at the end.
    """
    B, R = draws.tasks.shape
    d, s, K = cfg.d, cfg.s, B * R
    has_signal = draws.pos is not None and draws.beta is not None
    vals = None
    if has_signal:
        # (B, R, d) signal rows
        vals = draws.beta[..., None] * pool.V[np.arange(R), draws.tasks]
    if s * d <= _TORCH_QR_MIN_SIZE:
        XT = np.ascontiguousarray(
            draws.noise.transpose(3, 2, 0, 1), dtype=dtype
        )  # (s, d, B, R)
        if has_signal:
            index = (
                draws.pos.reshape(-1) * (d * K)
                + np.arange(K)
                + (np.arange(d) * K)[:, None]
            )  # (d, K)
            XT.reshape(-1)[index] = vals.reshape(K, d).T
        xbar = XT.sum(axis=0) if need_xbar else None
        return orthonormal_rows(XT, overwrite=True), xbar
    return _torch_bases(draws, vals, dtype, need_xbar, (B, R, d, s))


def _torch_bases(
    draws: RoundDraws,
    vals: FloatArray | None,
    dtype: np.dtype,
    need_xbar: bool,
    shape: tuple[int, int, int, int],
) -> tuple[FloatArray, FloatArray | None]:
    """:func:`_block_bases` for large matrices: Cholesky-QR in torch (one thread),
    runs-first; ``vals`` are the signal rows (B, R, d), ``shape`` is
    ``(B, R, d, s)``."""
    import torch

    B, R, d, s = shape
    K = B * R
    Xa = np.ascontiguousarray(draws.noise.swapaxes(-1, -2), dtype=dtype).reshape(
        K, s, d
    )  # (K, s, d)
    if vals is not None:
        Xa[np.arange(K), draws.pos.reshape(-1)] = vals.reshape(K, d)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic, and fair on a shared machine
    try:
        Xt = torch.from_numpy(Xa)
        L = torch.linalg.cholesky(Xt @ Xt.transpose(1, 2))
        Qa = torch.linalg.solve_triangular(L, Xt, upper=False).numpy()
    finally:
        torch.set_num_threads(threads)
    QT = np.ascontiguousarray(Qa.reshape(B, R, s, d).transpose(2, 3, 0, 1))
    xbar = (
        np.ascontiguousarray(Xa.sum(axis=1).reshape(B, R, d).transpose(2, 0, 1))
        if need_xbar
        else None
    )
    return QT, xbar


def orthonormal_rows(XT: FloatArray, overwrite: bool = False) -> FloatArray:
    """Orthonormal basis of the row span of each ``X^T`` in a batch laid out as
    (s, d, ...), ``s <= d``.

    Modified Gram-Schmidt vectorised over the trailing batch axes (which should be
    contiguous): rows are normalised one at a time and removed from the rows after
    them. ``Q Q^T`` is the orthogonal projector onto ``span(X)``, the operator of the
    min-norm update (Eq. 4); MGS loses orthogonality only like ``cond(X) * eps`` (the
    normal equations of the original engine: ``cond(X)^2 * eps``). Looping LAPACK over
    millions of tiny matrices is several times slower. Returns ``Q^T`` in the layout of
    ``XT`` (computed in place when ``overwrite`` and ``XT`` is contiguous).
    """
    s, d = XT.shape[:2]
    V = XT.reshape(s, d, -1)  # (s, d, K)
    if not (overwrite and np.shares_memory(V, XT)):
        V = V.copy()
    for j in range(s):
        V[j] /= np.sqrt(np.einsum("dk,dk->k", V[j], V[j]))
        if j + 1 < s:
            coef = np.einsum("dk,idk->ik", V[j], V[j + 1 :])  # (s-j-1, K)
            V[j + 1 :] -= coef[:, None, :] * V[j][None]
    return V.reshape(XT.shape)
