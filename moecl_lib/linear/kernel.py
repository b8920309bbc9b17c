"""Compiled (numba) kernel of :func:`moecl_lib.linear.engine.simulate`: Algorithm 1 one
run at a time, in machine code.

The numpy engine pays a fixed Python/numpy cost per round (tens of array calls over the
run axis); this kernel runs the same recursion run by run with the state of one run in
cache, so a run-round costs O(M d + s^2 d + N d + M N) flops and no interpreter work. It
consumes the SAME random draws (:func:`moecl_lib.linear.engine.draw_rounds`, computed by
numpy block by block) in the same order of operations, so a seed gives the same tasks,
experts and termination rounds as the numpy engine and the naive reference, with float
outputs equal to rounding (tested, ``tests/test_kernels.py``), except that the softmax
uses libm's ``exp`` where numpy may use an AVX-512 version that differs in the last bit:
strongly driven routers (calibrated setting, large M, long T) can turn that into a
different but equally valid trajectory after a near-tie; means agree (tested; fidelity
ledger, "What a seed reproduces").

Conventions are those of :mod:`moecl_lib.linear.engine` (gate on ``xbar_t = X_t 1``,
first-maximum argmax, projection update with a modified Gram-Schmidt basis of
``span(X_t)``, incremental F/G with ``C``, ``D``, ``P``). ``numba`` is a declared
dependency; when it cannot be imported, :data:`AVAILABLE` is False and the engine uses
its numpy path (``backend="auto"``) or raises (``backend="numba"``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from moecl_lib.linear.routing import (
    AVAILABLE,
    IMPORT_ERROR,
    gap_passes_run,
    njit,
    router_coefficients_run,
)

__all__ = ["AVAILABLE", "IMPORT_ERROR", "TERMINATION_CODES", "run_block"]

TERMINATION_CODES = {"never": 0, "gap": 1, "freeze_at_T1": 2}
"""Integer codes of ``ExperimentConfig.termination`` passed to the kernel."""


class BlockDraws(NamedTuple):
    """A block's random draws: ``tasks, beta, pos`` (B, R); ``noise`` (B, R, d, s)
    (already times ``sigma_t``); ``route_noise`` (B, R, M) (a dummy if M = 1)."""

    tasks: Any
    noise: Any
    beta: Any
    pos: Any
    route_noise: Any


class PoolArrays(NamedTuple):
    """The task pool, runs first: ``W, V, signal_in`` (R, N, d)."""

    W: Any
    V: Any
    signal_in: Any


class KernelState(NamedTuple):
    """The state of every run, runs first, updated in place: ``w, theta`` (R, M, d);
    ``counts, P`` (R, M); ``D, C, gates`` (R, M, N); ``S, T2, active`` (R,); ``gp``
    (R, N) noise-free choice of expert per task; ``pi_sum`` (R, M) sum of the router
    probabilities so far (entropy load balancing only)."""

    w: Any
    theta: Any
    counts: Any
    D: Any
    C: Any
    P: Any
    S: Any
    active: Any
    T2: Any
    gates: Any
    gp: Any
    pi_sum: Any


class KernelOutputs(NamedTuple):
    """Per-round outputs (R, T); ``weights`` (R, T, M, d) or a dummy; ``snap_slot``
    (T + 1,) position of round t in ``snapshots`` (R, n_snap, N, M) or -1."""

    F: Any
    G: Any
    G_pool: Any
    err_new: Any
    experts: Any
    tasks_hist: Any
    weights: Any
    snap_slot: Any
    snapshots: Any


class KernelKnobs(NamedTuple):
    """Scalars: ``lam, eta, alpha, gamma`` (float), ``T1`` (int), ``termination``
    (:data:`TERMINATION_CODES`), ``decay``, ``has_signal``, ``record_weights`` (bool),
    ``lb`` (:data:`~moecl_lib.linear.routing.LB_CODES`), ``squared`` (bool: locality
    ``"l2sq"``)."""

    lam: float
    eta: float
    alpha: float
    gamma: float
    T1: int
    termination: int
    decay: bool
    has_signal: bool
    record_weights: bool
    lb: int
    squared: bool


@njit(cache=True, nogil=True, error_model="numpy")
def run_block(t0, draws, pool, state, out, knobs):  # pragma: no cover - compiled
    """Advance every run by the ``B = tasks.shape[0]`` rounds ``t0 + 1 .. t0 + B`` of a
    block of draws (:class:`BlockDraws`), updating :class:`KernelState` and writing
    :class:`KernelOutputs` in place; the scalars come in :class:`KernelKnobs`."""
    tasks, noise, beta, pos, route_noise = draws
    W, V, signal_in = pool
    w, theta, counts, D, C, P, S, active, T2, gates, gp, pi_sum = state
    F, G, G_pool, err_new, experts, tasks_hist, weights, snap_slot, snapshots = out
    (
        lam,
        eta,
        alpha,
        gamma,
        T1,
        termination,
        decay,
        has_signal,
        record_weights,
        lb,
        squared,
    ) = knobs
    B, R = tasks.shape
    d, s = noise.shape[2], noise.shape[3]
    M, N = w.shape[1], W.shape[1]
    routed = M > 1
    Q = np.empty((s, d))
    xbar = np.empty(d)
    v = np.empty(d)
    delta = np.empty(d)
    coef = np.empty(s)
    h = np.empty(M)
    pi = np.empty(M)
    c = np.empty(M)
    xs = np.empty(N)
    f = np.empty(M)
    inv_n = 1.0 / N
    for r in range(R):
        for b in range(B):
            t = t0 + b + 1
            n = tasks[b, r]
            # rows of Q <- X_t^T (samples), the signal sample beta_t v_n at row pos
            for j in range(s):
                for i in range(d):
                    Q[j, i] = noise[b, r, i, j]
            if has_signal:
                p = pos[b, r]
                bt = beta[b, r]
                for i in range(d):
                    Q[p, i] = bt * V[r, n, i]
            # routing: h = Theta xbar, noisy top-1 (first maximum)
            m = 0
            if routed:
                for i in range(d):
                    acc = 0.0
                    for j in range(s):
                        acc += Q[j, i]
                    xbar[i] = acc
                best = -np.inf
                for k in range(M):
                    acc = 0.0
                    for i in range(d):
                        acc += theta[r, k, i] * xbar[i]
                    h[k] = acc
                    val = acc + route_noise[b, r, k]
                    if val > best:
                        best = val
                        m = k
            # orthonormal basis of span(X_t): modified Gram-Schmidt on the rows of Q
            for j in range(s):
                nrm = 0.0
                for i in range(d):
                    nrm += Q[j, i] * Q[j, i]
                nrm = np.sqrt(nrm)
                for i in range(d):
                    Q[j, i] /= nrm
                for k in range(j + 1, s):
                    acc = 0.0
                    for i in range(d):
                        acc += Q[j, i] * Q[k, i]
                    for i in range(d):
                        Q[k, i] -= acc * Q[j, i]
            # expert update, Eq. (4) with noise-free labels: w <- w + Q^T Q (w_n - w)
            for i in range(d):
                v[i] = W[r, n, i] - w[r, m, i]
                delta[i] = 0.0
            for j in range(s):
                acc = 0.0
                for i in range(d):
                    acc += Q[j, i] * v[i]
                coef[j] = acc
            for j in range(s):
                for i in range(d):
                    delta[i] += coef[j] * Q[j, i]
            for i in range(d):
                w[r, m, i] += delta[i]
            # metrics, incremental: only row m of D changes
            pm = 0.0
            for q in range(N):
                acc = 0.0
                for i in range(d):
                    diff = w[r, m, i] - W[r, q, i]
                    acc += diff * diff
                D[r, m, q] = acc
                pm += C[r, m, q] * acc
            P[r, m] = pm
            total = 0.0
            for k in range(M):
                total += P[r, k]
            if t >= 2:
                F[r, t - 1] = (total - S[r]) / (t - 1)
            e_new = D[r, m, n]
            C[r, m, n] += 1.0
            P[r, m] += e_new
            S[r] += e_new
            G[r, t - 1] = (total + e_new) / t
            err_new[r, t - 1] = e_new
            experts[r, t - 1] = m
            tasks_hist[r, t - 1] = n
            counts[r, m] += 1.0
            if record_weights:
                for k in range(M):
                    for i in range(d):
                        weights[r, t - 1, k, i] = w[r, k, i]
            # router: termination test, then one GD step (SPEC §4.5-4.6)
            if active[r]:
                stop = False
                if termination == 1 and t > T1:
                    stop = gap_passes_run(h, m, lam, gamma)
                elif termination == 2 and t > T1:
                    stop = True
                if stop:
                    T2[r] = t
                    active[r] = False
                else:
                    dn = 0.0
                    for i in range(d):
                        dn += delta[i] * delta[i]
                    dn = np.sqrt(dn)
                    if squared:
                        dn = dn * dn
                    if lb == 2:
                        scale = alpha / t if decay else alpha
                    else:
                        scale = alpha * M / t if decay else alpha * M
                    router_coefficients_run(
                        h, m, counts[r], t, dn, scale, pi, f, c, lb, pi_sum[r]
                    )
                    for q in range(N):
                        acc = 0.0
                        for i in range(d):
                            acc += signal_in[r, q, i] * xbar[i]
                        xs[q] = acc
                    for k in range(M):
                        ck = eta * c[k]
                        for i in range(d):
                            theta[r, k, i] -= ck * xbar[i]
                        for q in range(N):
                            gates[r, k, q] -= ck * xs[q]
                    for q in range(N):
                        kb = 0
                        gb = gates[r, 0, q]
                        for k in range(1, M):
                            if gates[r, k, q] > gb:
                                gb = gates[r, k, q]
                                kb = k
                        gp[r, q] = kb
            acc = 0.0
            for q in range(N):
                acc += D[r, gp[r, q], q]
            G_pool[r, t - 1] = acc * inv_n
            slot = snap_slot[t]
            if slot >= 0:
                for q in range(N):
                    for k in range(M):
                        snapshots[r, slot, q, k] = gates[r, k, q]
