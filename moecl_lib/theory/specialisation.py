"""When does the linear router specialise? A first-sweep criterion for the locality push
[D].

Everything here is derived in this companion (tag [D]), not quoted from the paper; the
derivation is in ``book/specialisation_theory.md`` and the checks against simulation in
``tests/test_specialisation_theory.py`` and
``moecl_lib/claims/specialisation_boundary.py``.

**Conventions.**

* Router gain ``gain = eta * c**2`` (``c`` = signal scale ``||v_n||``, ``eta`` = router
learning rate). With a
  constant signal strength ``beta`` the gate of expert ``m`` on task ``n`` is ``h =
  theta^(m) . (beta v_n)`` and one router step moves it by ``-eta * coef * (xbar . beta
  v_n) ~ -eta c^2 beta^2 coef``, so the push in gate units is ``G = gain * beta**2 * D``
  times the softmax factor, where ``D = ||Delta_t||`` is the locality step (SPEC §4.5).
* ``D`` is the typical length of the min-change update of an expert that last learned
another task,
  ``D_bar = sigma0 * sqrt(d + s)`` (root mean square for aligned signals, ``w_n ~ N(0,
  sigma0^2 I_d)``, :func:`switch_step`).
* ``G = gain * beta**2 * D_bar`` is the *push scale*: a winner with softmax probability
``p`` on the task
  loses ``G p (1 - p)`` of gate value, every other expert ``j`` gains ``G p p_j``.

**The criterion.** All gates start at 0. The first arrivals of a task go to the tied
leaders, each of which is pushed below the others (the locality gradient repels a task
from an expert that had to move). The sweep over the ``M`` experts ends with a last
leader whose lead over the rest has been built by the ``M - 1`` pushes before it; it
keeps the task for ever when its own push is smaller than that lead (it then learns the
task, ``D = 0`` on later visits, no further push). :func:`first_sweep` runs this
deterministic recursion; the router specialises iff ``G >= G_star(M)``
(:func:`critical_push`), i.e.

    eta * c**2 >= gain_star = G_star(M) / (beta**2 * sigma0 * sqrt(d + s))
    (boundary in the (c, eta) plane)

**Onset.** Specialisation of a task is predicted after the task's cumulative push
reaches that of one critical sweep, i.e. after ``k = ceil(M * gain_star / gain)``
arrivals (``k = M`` at the boundary); with uniform task draws the fraction of arrivals
routed like the previous arrival of the same task is ``P(Binomial(t - 1, 1/N) >= k)``
(:func:`repeat_curve`), half-way at about ``N k`` rounds (:func:`onset_round`).

**Not predicted here:** the routing noise ``lambda`` does not enter (the simulated
boundary does not move when ``lambda`` changes fourfold), nor ``T1`` (once the sweep is
over the state is absorbing). The naive drift-versus-noise criterion "one push exceeds
the routing noise" (:func:`naive_gain`) is kept for comparison: it predicts a boundary
proportional to ``lambda``, which the simulation contradicts.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats


def switch_step(sigma0: float, d: int, s: int) -> float:
    """Root-mean-square locality step ``D_bar = sigma0 sqrt(d + s)`` [D].

    An expert holding ``w_{n'}`` is given task ``n`` (aligned signal ``v_n ∝ w_n``, so
    ``w_n`` lies in ``span(X_t)``): ``Delta = w_n - P_X w_{n'}``; averaging over ``w ~
    N(0, sigma0^2 I_d)`` and the ``s - 1`` Gaussian columns, ``E||Delta||^2 = sigma0^2
    (d + 1 + (s - 1)) = sigma0^2 (d + s)``.
    """
    if sigma0 <= 0 or d < 2 or not 1 <= s < d:
        raise ValueError(f"need sigma0 > 0 and 1 <= s < d, got {sigma0}, s={s}, d={d}")
    return float(sigma0 * math.sqrt(d + s))


def _softmax(h: np.ndarray) -> np.ndarray:
    e = np.exp(h - h.max())
    return e / e.sum()


def first_sweep(G: float, M: int) -> tuple[bool, int]:
    """Run the first sweep of one task over ``M`` experts with push scale ``G`` (module
    docstring).

    Returns ``(specialises, visits)``: whether a leader survives its own push, and the
    visit at which it does (``M`` when it is the last one; ``-1`` when no leader
    survives).
    """
    if M < 2:
        raise ValueError(f"M={M} must be >= 2")
    h = np.zeros(M)
    pushed = np.zeros(M, dtype=bool)
    for visit in range(1, M + 1):
        free = np.flatnonzero(~pushed)
        k = int(free[np.argmax(h[free])])
        p = _softmax(h)
        h = h + G * p[k] * p
        h[k] -= G * p[k]
        pushed[k] = True
        if h[k] > np.delete(h, k).max():
            return True, visit
    return False, -1


@lru_cache(maxsize=256)
def critical_push(M: int, rel_tol: float = 1e-6) -> float:
    """``G_star(M)``: smallest push scale at which :func:`first_sweep` specialises
    (bisection) [D].

    Values: ``G_star(10) ≈ 8.35``, ``G_star(20) ≈ 15.49``, ``G_star(40) ≈ 27.7`` (about
    ``0.65-0.85 M``).
    """
    lo, hi = 1e-3, 4.0 * M
    if not first_sweep(hi, M)[0]:
        raise ValueError(f"no specialisation up to G = {hi} for M = {M}")
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        if first_sweep(mid, M)[0]:
            hi = mid
        else:
            lo = mid
    return hi


def critical_gain(
    M: int, sigma0: float, d: int, s: int, beta: float = 1.0, constant: float = 1.0
) -> float:
    """Predicted boundary ``gain_star = constant * G_star(M) / (beta^2 sigma0 sqrt(d +
    s))`` of ``eta c^2``.

    ``constant`` is 1 for the derived prediction; other values exist only so that tests
    can show that a wrong constant is rejected by the simulation.
    """
    return constant * critical_push(M) / (beta**2 * switch_step(sigma0, d, s))


def boundary_eta(
    c: float | np.ndarray, M: int, sigma0: float, d: int, s: int, beta: float = 1.0
) -> np.ndarray:
    """Learning rate on the predicted boundary for signal scale(s) ``c``: ``eta_star =
    gain_star / c^2``."""
    c = np.asarray(c, dtype=float)
    return critical_gain(M, sigma0, d, s, beta) / c**2


def onset_arrivals(gain: float, gain_star: float, M: int) -> float:
    """Arrivals of a task before it is specialised: ``ceil(M gain_star / gain)`` (inf
    below the boundary)."""
    if gain < gain_star:
        return math.inf
    return float(math.ceil(M * gain_star / gain))


def repeat_curve(
    t: np.ndarray, gain: float, gain_star: float, M: int, N: int
) -> np.ndarray:
    """Predicted fraction of rounds ``t`` whose task goes to the expert that took its
    previous arrival: ``P(Binomial(t - 1, 1/N) >= k)``, ``k`` = :func:`onset_arrivals`
    (0 below the boundary)."""
    t = np.asarray(t, dtype=float)
    k = onset_arrivals(gain, gain_star, M)
    if math.isinf(k):
        return np.zeros_like(t)
    return stats.binom.sf(k - 1, np.maximum(t - 1, 0), 1.0 / N)


def onset_round(gain: float, gain_star: float, M: int, N: int) -> float:
    """First round at which :func:`repeat_curve` reaches 1/2 (about ``N M gain_star /
    gain``; inf below)."""
    k = onset_arrivals(gain, gain_star, M)
    if math.isinf(k):
        return math.inf
    t = np.arange(1, int(4 * N * k + 50))
    curve = repeat_curve(t, gain, gain_star, M, N)
    return float(t[np.argmax(curve >= 0.5)])


def naive_gain(
    M: int, lam: float, sigma0: float, d: int, s: int, beta: float = 1.0
) -> float:
    """Naive drift-versus-noise boundary [D]: one push at uniform gates,
    ``G (1/M)(1 - 1/M)``, equals the routing-noise range ``lambda``. Kept for comparison
    (it scales with ``lambda``; the simulation does not)."""
    return lam * M**2 / ((M - 1) * beta**2 * switch_step(sigma0, d, s))


def input_norm2(
    c: float | np.ndarray, beta: float, s: int, d: int, sigma_t: float
) -> np.ndarray:
    """``E||xbar_t||^2 = beta^2 c^2 + (s - 1) d sigma_t^2``: squared norm of the router
    input.

    Heuristic, not derived: using ``eta * input_norm2`` instead of ``eta * beta^2 c^2``
    as the gain moves the simulated boundary at small ``c`` onto :func:`critical_gain`
    (see the chapter); the first-sweep argument itself only uses the mean ``beta^2 c^2``
    of ``xbar_t . xbar_t'`` between two arrivals of a task.
    """
    c = np.asarray(c, dtype=float)
    return beta**2 * c**2 + (s - 1) * d * sigma_t**2


def aux_equalisation_rounds(
    gap: float, eta: float, alpha: float, M: int, c: float, beta: float = 1.0
) -> float:
    """Lower bound [D] on the rounds the load-balancing term needs to raise by 1 the
    gate of an expert that trails the winner of a task by ``gap``.

    The expert's softmax probability is ``pi_k <= exp(-gap)``, so its aux coefficient
    obeys ``|alpha M pi_k (f_k - sum_m f_m pi_m)| <= alpha M exp(-gap)`` (non-decaying
    aux gradient; the decaying one adds a factor ``1/t``), and one round moves its gate
    by at most ``eta alpha M exp(-gap) beta^2 c^2`` (``|xbar . beta v| ~ beta^2 c^2``).
    While the gap stays above ``gap - 1``: ``rounds >= exp(gap - 1) / (eta alpha M
    beta^2 c^2)``. The aux coefficients sum to zero, so the experts with non-negligible
    probability can equalise among themselves but cannot, on average, come down to the
    trailing ones: the gates of a task cannot all become equal before that many rounds.
    """
    if eta <= 0 or alpha <= 0:
        return math.inf
    return math.exp(gap - 1.0) / (eta * alpha * M * beta**2 * c**2)
