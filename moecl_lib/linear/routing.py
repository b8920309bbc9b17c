"""The router of Algorithm 1: routing rule, router gradient, gap termination test.

One implementation of each rule, used by the numpy loop of
:mod:`moecl_lib.linear.engine`, the naive reference (:mod:`moecl_lib.linear.reference`)
and the deep-network learner (:mod:`moecl_lib.deep.moe`). The compiled kernel
(:mod:`moecl_lib.linear.kernel`) calls the jitted one-run twins :func:`gap_passes_run`
and :func:`router_coefficients_run` defined here; ``tests/test_routing.py`` holds each
twin equal to its numpy version. Conventions (SPEC §4.5-§4.6): gate ``h_m = theta_m .
xbar_t``; noisy top-1 routing ``argmax_m (h_m + Unif[0, lambda])`` with the first
maximum on ties; the router's gradient is ``grad_{theta^(k)} L^tr = c^(k) xbar_t``.

Options of the router (``ExperimentConfig``, tag [C]), each defined here once:

* ``route_noise``: the routing noise is drawn as ``Unif[0, lambda]`` and, for another
  law, transformed by :func:`shape_route_noise` (same draws, same stream consumption):
  ``"gaussian"`` ``N(0, lambda^2/12)``, ``"gumbel"`` Gumbel of scale
  ``lambda / (pi sqrt 2)``; all three have the standard deviation ``lambda/sqrt(12)``
  (the location does not matter for an argmax). The gap test keeps ``lambda``.
* ``locality``: the locality term's weight is ``||Delta_t||`` (``"l2"``, Eq. 6) or
  ``||Delta_t||^2`` (``"l2sq"``), :func:`locality_weight`.
* ``lb_loss``: every load-balancing form has the gradient ``scale pi_k (g_k - sum_m
  g_m pi_m)`` with a *balance signal* ``g`` (:func:`balance_signal`): ``"paper"``
  ``g = f`` (load fractions so far, Eq. 7); ``"switch"`` ``g = 1{m = m_t}`` (Switch
  Transformer's ``f`` over a batch of one round: Switch's ``f`` and ``P`` come from the
  same batch; with ``f`` the fraction so far and ``P`` the round's ``pi`` it would be
  ``"paper"`` with ``aux_grad="no_decay"``); ``"entropy"`` ``g = log P_t``, with
  ``P_t`` the mean router probability over rounds ``1..t`` (the gradient of
  ``-alpha H(P_t)``; only round t's term depends on Theta). ``scale`` is
  :func:`aux_scale`.
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

LB_CODES = {"paper": 0, "switch": 1, "entropy": 2}
"""Integer codes of ``ExperimentConfig.lb_loss`` (compiled twin)."""
TINY = 1e-300
"""Floor of ``P_t`` inside the logarithm of the entropy form (a probability that
underflowed)."""
NOISE_SD = 1.0 / np.sqrt(12.0)
"""Standard deviation of ``Unif[0, 1]``; every routing-noise law has ``lambda`` times
it."""


def shape_route_noise(u: FloatArray, lam: float, law: str) -> FloatArray:
    """Routing noise of law ``law`` from ``Unif[0, lam]`` draws ``u`` (any shape).

    ``"uniform"`` returns ``u`` itself (the default stream, untouched); otherwise ``p =
    u / lam`` (clipped to ``[2^-53, 1 - 2^-53]``) is mapped through the inverse
    distribution function: ``lam/sqrt(12) Phi^-1(p)`` (``"gaussian"``) or
    ``-b log(-log p)`` with ``b = lam / (pi sqrt 2)`` (``"gumbel"``), so that every law
    has the standard deviation ``lam / sqrt(12)`` of ``Unif[0, lam]``.
    """
    if law == "uniform" or lam == 0:
        return u
    eps = 2.0**-53
    p = np.clip(u / lam, eps, 1.0 - eps)
    if law == "gaussian":
        from scipy.special import ndtri

        return lam * NOISE_SD * ndtri(p)
    if law == "gumbel":
        return -(lam / (np.pi * np.sqrt(2.0))) * np.log(-np.log(p))
    raise ValueError(f"route_noise={law!r} must be uniform, gaussian or gumbel")


def locality_weight(delta_norm: FloatArray, locality: str) -> FloatArray:
    """Weight of the locality term: ``||Delta||`` (``"l2"``) or ``||Delta||^2``."""
    return delta_norm if locality == "l2" else delta_norm * delta_norm


def balance_signal(
    f: FloatArray, chosen: IntArray, pbar: FloatArray | None, lb_loss: str
) -> FloatArray:
    """Balance signal ``g`` (M, R) of the load-balancing gradient, runs last.

    ``f`` load fractions ``f_t`` (arrivals per expert including round t, over t);
    ``pbar`` the mean router probabilities ``P_t`` over rounds ``1..t`` (entropy only).
    """
    if lb_loss == "paper":
        return f
    if lb_loss == "switch":
        g = np.zeros(f.shape, dtype=f.dtype)
        g[chosen, np.arange(f.shape[1])] = 1.0
        return g
    if lb_loss != "entropy" or pbar is None:
        raise ValueError(f"lb_loss={lb_loss!r}: entropy needs pbar")
    return np.log(np.maximum(pbar, TINY))


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
    alpha: float,
    n_experts: int,
    t: int,
    aux_grad: Literal["decay", "no_decay"],
    lb_loss: str = "paper",
) -> float:
    """``s_t alpha M``: ``s_t = 1/t`` (``"decay"``) or 1 (``"no_decay"``, SPEC A3).

    The entropy form has no factor ``M`` (``s_t alpha``): near a uniform load both give
    ``alpha pi_k delta`` for a relative imbalance ``delta`` of expert k.
    """
    a = alpha if lb_loss == "entropy" else alpha * n_experts
    return a / t if aux_grad == "decay" else a


def router_coefficients(
    delta_norm: FloatArray,
    pi: FloatArray,
    chosen: IntArray,
    f: FloatArray,
    t: int,
    alpha: float,
    aux_grad: Literal["decay", "no_decay"] = "decay",
    *,
    lb_loss: str = "paper",
    locality: str = "l2",
    pbar: FloatArray | None = None,
) -> FloatArray:
    """Scalars ``c^(k)`` with ``grad_{theta^(k)} L^tr = c^(k) xbar_t`` (SPEC §4.5).

    ``c^(k) = ||Delta_t|| pi_{m_t} (1{k = m_t} - pi_k) + s_t alpha M pi_k (f^(k) -
    sum_m f^(m) pi_m)`` with ``s_t = 1/t`` for ``aux_grad="decay"`` (only the current
    round's term of ``P_t`` depends on Theta) and ``s_t = 1`` for ``"no_decay"`` (SPEC
    A3). The coefficients sum to zero over experts. ``lb_loss`` and ``locality`` select
    the other forms of the module docstring.

    Args:
        delta_norm: ``||w_t^(m_t) - w_{t-1}^(m_t)||_2``, shape (R,).
        pi: softmax router probabilities, shape (R, M).
        chosen: selected expert ``m_t``, shape (R,).
        f: load fractions ``f_t^(m)`` (including round t), shape (R, M).
        t: round index (1-based).
        alpha: load-balancing weight.
        aux_grad: gradient variant of the load-balancing term.
        lb_loss: form of the load-balancing loss.
        locality: form of the locality loss.
        pbar: mean router probabilities over rounds ``1..t``, (R, M) (``"entropy"``).
    """
    scale = aux_scale(alpha, pi.shape[1], t, aux_grad, lb_loss)
    g = balance_signal(f.T, chosen, None if pbar is None else pbar.T, lb_loss)
    dn = locality_weight(delta_norm, locality)
    return coefficients_runs_last(dn, pi.T, chosen, g, scale).T


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
def router_coefficients_run(
    h, m, counts, t, dn, scale, pi, f, c, lb, pi_sum
):  # pragma: no cover - compiled
    """Jitted twin of :func:`coefficients_runs_last` with :func:`balance_signal` for one
    run, into ``c`` (M,).

    ``h`` gates (M,), ``m`` winner, ``counts`` arrivals per expert (M,), ``t`` round,
    ``dn`` the locality weight (:func:`locality_weight`), ``scale`` :func:`aux_scale`,
    ``lb`` the :data:`LB_CODES` of the form; ``pi_sum`` (M,) sums the router
    probabilities of the rounds so far (updated here for the entropy form only); ``pi,
    f`` (M,) are work buffers (left holding the softmax and the balance signal).
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
        if lb == 0:
            f[k] = counts[k] / t
        elif lb == 1:
            f[k] = 1.0 if k == m else 0.0
        else:
            pi_sum[k] += pi[k]
            f[k] = np.log(max(pi_sum[k] / t, TINY))
        fpi += f[k] * pi[k]
    pw = pi[m]
    for k in range(M):
        c[k] = scale * pi[k] * (f[k] - fpi) - (dn * pw) * pi[k]
    c[m] += dn * pw
