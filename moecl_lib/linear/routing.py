"""The router of Algorithm 1: routing rule, router gradient, gap termination test.

One implementation of each rule, used by the numpy loop of
:mod:`moecl_lib.linear.engine`, the naive reference (:mod:`moecl_lib.linear.reference`)
and the deep-network learner (:mod:`moecl_lib.deep.moe`). The compiled kernel
(:mod:`moecl_lib.linear.kernel`) calls the jitted one-run twins :func:`gap_passes_run`
and :func:`router_coefficients_run` defined here; ``tests/test_routing.py`` holds each
twin equal to its numpy version. Conventions (SPEC §4.5-§4.6): gate ``h_m = theta_m .
xbar_t``; noisy top-1 routing ``argmax_m (h_m + Unif[0, lambda])`` with the first
maximum on ties; the router's gradient is ``grad_{theta^(k)} L^tr = c^(k) xbar_t``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

try:  # pragma: no cover - exercised by whichever environment runs the tests
    from numba import njit

    AVAILABLE = True
    IMPORT_ERROR = ""
except Exception as exc:  # pragma: no cover
    AVAILABLE = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

    def njit(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        """Stand-in so that the modules import without numba (plain Python twins)."""

        def wrap(fn: Any) -> Any:
            return fn

        return wrap(args[0]) if args and callable(args[0]) else wrap


FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]


def softmax(h: FloatArray, axis: int = -1) -> FloatArray:
    """Numerically stable softmax (max-subtracted, SPEC A14)."""
    z = h - h.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def argmax_first(a: FloatArray) -> IntArray:
    """``np.argmax(a, axis=0)`` (index of the FIRST maximum) for a short axis 0.

    The routing rule's tie break, vectorised over the trailing axes: two reductions over
    axis 0 (fast when the trailing axes are contiguous) instead of numpy's per-row
    argmax. Rows containing NaN (a diverged run) give index ``len(a) - 1`` rather
    than an out-of-range index.
    """
    K = a.shape[0]
    if K == 1:
        return np.zeros(a.shape[1:], dtype=np.intp)
    rank = np.arange(K, 0, -1, dtype=np.int16 if K < 2**15 else np.int64).reshape(
        (K,) + (1,) * (a.ndim - 1)
    )
    # K - index of the first maximum (0 if none)
    first = ((a == a.max(axis=0)) * rank).max(axis=0)
    return np.minimum(K - first.astype(np.intp), K - 1)


def route(h: FloatArray, route_noise: FloatArray) -> IntArray:
    """Noisy top-1 routing ``argmax_m (h_m + noise_m)`` along axis 0 (first maximum)."""
    return argmax_first(h + route_noise)


def gap_passes(
    h: FloatArray, h_win: FloatArray, lam: float, gamma: float, axis: int
) -> BoolArray:
    """Gap termination test of SPEC §4.6 along the expert axis ``axis``.

    With ``S_t = {m : |h_m - h_{m_t}| <= lambda}`` (experts tied with the winner up to
    the routing noise) the test passes when ``S_t`` is not all experts and every expert
    outside it is below the winner by more than ``Gamma``. ``h_win`` is the winner's
    gate, broadcastable against ``h``.
    """
    outside = np.abs(h - h_win) > lam
    margin = np.where(outside, h_win - h, np.inf).min(axis=axis)
    return outside.any(axis=axis) & (margin > gamma)


def gap_test(h: FloatArray, chosen: IntArray, lam: float, gamma: float) -> BoolArray:
    """:func:`gap_passes` batched over runs: ``h`` (R, M), ``chosen`` (R,) -> (R,)."""
    h_win = h[np.arange(h.shape[0]), chosen][:, None]
    return gap_passes(h, h_win, lam, gamma, axis=1)


def coefficients_runs_last(
    delta_norm: FloatArray,
    pi: FloatArray,
    chosen: IntArray,
    f: FloatArray,
    scale: float,
) -> FloatArray:
    """Router coefficients ``c`` (M, R) from runs-last ``pi, f`` (M, R), as the engine.

    ``c^(k) = s_t alpha M pi_k (f^(k) - sum_m f^(m) pi_m) - ||Delta|| pi_{m_t} pi_k``,
    then ``+ ||Delta|| pi_{m_t}`` at ``k = m_t``; ``scale = s_t alpha M``. This order of
    operations fixes the engine's rounding.
    """
    k = np.arange(pi.shape[1])
    pi_win = pi[chosen, k]
    c = scale * pi * (f - np.einsum("mr,mr->r", f, pi)) - (delta_norm * pi_win) * pi
    c[chosen, k] += delta_norm * pi_win
    return c


def aux_scale(
    alpha: float, n_experts: int, t: int, aux_grad: Literal["decay", "no_decay"]
) -> float:
    """``s_t alpha M``: ``s_t = 1/t`` (``"decay"``) or 1 (``"no_decay"``, SPEC A3)."""
    return alpha * n_experts / t if aux_grad == "decay" else alpha * n_experts


def router_coefficients(
    delta_norm: FloatArray,
    pi: FloatArray,
    chosen: IntArray,
    f: FloatArray,
    t: int,
    alpha: float,
    aux_grad: Literal["decay", "no_decay"] = "decay",
) -> FloatArray:
    """Scalars ``c^(k)`` with ``grad_{theta^(k)} L^tr = c^(k) xbar_t`` (SPEC §4.5).

    ``c^(k) = ||Delta_t|| pi_{m_t} (1{k = m_t} - pi_k) + s_t alpha M pi_k (f^(k) -
    sum_m f^(m) pi_m)`` with ``s_t = 1/t`` for ``aux_grad="decay"`` (only the current
    round's term of ``P_t`` depends on Theta) and ``s_t = 1`` for ``"no_decay"`` (SPEC
    A3). The coefficients sum to zero over experts.

    Args:
        delta_norm: ``||w_t^(m_t) - w_{t-1}^(m_t)||_2``, shape (R,).
        pi: softmax router probabilities, shape (R, M).
        chosen: selected expert ``m_t``, shape (R,).
        f: load fractions ``f_t^(m)`` (including round t), shape (R, M).
        t: round index (1-based).
        alpha: load-balancing weight.
        aux_grad: gradient variant of the load-balancing term.
    """
    scale = aux_scale(alpha, pi.shape[1], t, aux_grad)
    return coefficients_runs_last(delta_norm, pi.T, chosen, f.T, scale).T


@njit(cache=True, nogil=True, error_model="numpy")
def gap_passes_run(h, m, lam, gamma):  # pragma: no cover - compiled
    """Jitted twin of :func:`gap_passes` for one run: ``h`` (M,), winner ``m``."""
    any_out = False
    margin = np.inf
    for k in range(h.shape[0]):
        if abs(h[k] - h[m]) > lam:
            any_out = True
            if h[m] - h[k] < margin:
                margin = h[m] - h[k]
    return any_out and margin > gamma


@njit(cache=True, nogil=True, error_model="numpy")
def router_coefficients_run(h, m, counts, t, dn, scale, pi, f, c):  # pragma: no cover
    """Jitted twin of :func:`coefficients_runs_last` for one run, into ``c`` (M,).

    ``h`` gates (M,), ``m`` winner, ``counts`` arrivals per expert (M,), ``t`` round,
    ``dn = ||Delta||``, ``scale = s_t alpha M``; ``pi, f`` (M,) are work buffers (left
    holding the softmax and the load fractions).
    """
    M = h.shape[0]
    hmax = h[0]
    for k in range(1, M):
        if h[k] > hmax:
            hmax = h[k]
    z = 0.0
    for k in range(M):
        pi[k] = np.exp(h[k] - hmax)
        z += pi[k]
    fpi = 0.0
    for k in range(M):
        pi[k] /= z
        f[k] = counts[k] / t
        fpi += f[k] * pi[k]
    pw = pi[m]
    for k in range(M):
        c[k] = scale * pi[k] * (f[k] - fpi) - (dn * pw) * pi[k]
    c[m] += dn * pw
