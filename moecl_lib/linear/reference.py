"""Naive reference of Algorithm 1: one run at a time, metrics recomputed from the
history.

The batched engine (:mod:`moecl_lib.linear.engine`) and its kernel are tested against
:func:`reference_simulate` (:func:`check_reference`, ``tests/test_bench.py``) and timed
against it by ``moecl bench`` (:mod:`moecl_lib.tools.bench`). The reference solves the
min-norm update with ``np.linalg.solve`` and recomputes ``F_t`` and ``G_t`` from every
past arrival (O(t) per round), in float64; it shares the draws
(:func:`moecl_lib.linear.engine.draw_rounds`) and the router's rules
(:mod:`moecl_lib.linear.routing`) with the engine, so that the discrete outputs (tasks,
experts, termination rounds) must be equal and the float outputs agree to
:data:`REFERENCE_RTOL`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.draws import RoundDraws, draw_rounds
from moecl_lib.linear.engine import simulate
from moecl_lib.linear.results import RunCurves
from moecl_lib.linear.routing import (
    aux_scale,
    balance_signal,
    coefficients_runs_last,
    gap_passes,
    locality_weight,
    route,
    softmax,
)
from moecl_lib.linear.streams import make_streams, task_pool
from moecl_lib.linear.tasks import TaskPool, mean_signal_strength

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

REFERENCE_RTOL = 1e-8
"""Relative tolerance (with absolute floor :data:`REFERENCE_ATOL`) of
engine-vs-reference float metrics."""
REFERENCE_ATOL = 1e-10


@dataclass
class ReferenceResult(RunCurves):
    """Output of :func:`reference_simulate`; same conventions and shapes as
    ``SimulationResult``."""

    T2: IntArray
    final_w: FloatArray
    final_theta: FloatArray


def reference_simulate(
    cfg: ExperimentConfig, *, runs: Sequence[int] | None = None
) -> ReferenceResult:
    """Algorithm 1, one run at a time, recomputing ``F_t`` and ``G_t`` from the whole
    history (float64).

    Args:
        cfg: configuration (``cfg.dtype`` is ignored: the reference always computes in
            float64).
        runs: which runs of the batch to simulate (default: all ``cfg.n_runs``); the
            random draws are those of the full batch, so run ``r`` here is run ``r`` of
            ``simulate(cfg)``.

    Returns:
        Arrays with a leading axis over the selected runs.
    """
    rng = make_streams(cfg)
    pool = task_pool(cfg, rng)
    # (T, R, ...): the same stream the engine consumes block by block
    draws = draw_rounds(cfg, rng, cfg.T)
    run_ids = list(range(cfg.n_runs)) if runs is None else [int(r) for r in runs]
    keys = ("F", "G", "G_pool", "err_new", "experts", "tasks", "T2", "final_w")
    out: dict[str, list] = {k: [] for k in (*keys, "final_theta")}
    for r in run_ids:
        for key, val in _reference_run(cfg, pool, draws, r).items():
            out[key].append(val)
    return ReferenceResult(**{k: np.asarray(v) for k, v in out.items()})


def _reference_run(
    cfg: ExperimentConfig, pool: TaskPool, draws: RoundDraws, r: int
) -> dict[str, np.ndarray | int]:
    """Run ``r`` of :func:`reference_simulate`: its curves (T,), ``T2`` and final
    parameters (M, d)."""
    M, d, T = cfg.n_experts, cfg.d, cfg.T
    W = np.asarray(pool.W[r], dtype=float)
    V = np.asarray(pool.V[r], dtype=float)
    signal_in = mean_signal_strength(cfg) * V
    w = np.zeros((M, d))
    theta = np.zeros((M, d))
    counts = np.zeros(M)
    pi_sum = np.zeros(M)  # router probabilities so far (entropy load balancing)
    active = M > 1
    T2 = -1
    hist_m = np.zeros(T, dtype=np.int64)
    hist_n = np.zeros(T, dtype=np.int64)
    F = np.full(T, np.nan)
    G = np.empty(T)
    G_pool = np.empty(T)
    # E_tau(tau): error of each arrival right after it was learned
    diag = np.empty(T)
    for t in range(1, T + 1):
        n = int(draws.tasks[t - 1, r])
        X = draws.noise[t - 1, r].copy()  # (d, s)
        if draws.pos is not None and draws.beta is not None:
            X[:, draws.pos[t - 1, r]] = draws.beta[t - 1, r] * V[n]
        y = X.T @ W[n]
        if M > 1:
            xbar = X.sum(axis=1)
            h = theta @ xbar
            m = int(route(h, draws.route_noise[t - 1, r]))
        else:
            m = 0
        # min-norm update, Eq. (4): w <- w + X (X^T X)^{-1} (y - X^T w)
        coef = np.linalg.solve(X.T @ X, y - X.T @ w[m])
        delta = X @ coef
        w[m] = w[m] + delta
        hist_m[t - 1], hist_n[t - 1] = m, n
        # metrics recomputed from the whole history:
        # E_t(tau) = ||w_t^(m_tau) - w_{n_tau}||^2, tau <= t
        E = ((w[hist_m[:t]] - W[hist_n[:t]]) ** 2).sum(axis=1)
        diag[t - 1] = E[t - 1]
        G[t - 1] = E.mean()
        if t >= 2:
            F[t - 1] = (E[: t - 1] - diag[: t - 1]).mean()
        counts[m] += 1
        if active:
            theta, stopped = _reference_router(
                cfg, t, theta, h, m, delta, xbar, counts, pi_sum
            )
            if stopped:
                T2, active = t, False
        # noise-free choice per task, (N,)
        mhat = np.argmax(signal_in @ theta.T, axis=1)
        G_pool[t - 1] = ((w[mhat] - W) ** 2).sum(axis=1).mean()
    return {
        "F": F,
        "G": G,
        "G_pool": G_pool,
        "err_new": diag,
        "experts": hist_m,
        "tasks": hist_n,
        "T2": T2,
        "final_w": w,
        "final_theta": theta,
    }


def _reference_router(
    cfg: ExperimentConfig,
    t: int,
    theta: FloatArray,
    h: FloatArray,
    m: int,
    delta: FloatArray,
    xbar: FloatArray,
    counts: FloatArray,
    pi_sum: FloatArray,
) -> tuple[FloatArray, bool]:
    """Router of round ``t`` (SPEC §4.5-4.6), written out for one run: the
    termination test, else one GD step. Returns the new ``theta`` and whether the
    router stops now; ``pi_sum`` is updated in place."""
    M = cfg.n_experts
    gamma, T1 = cfg.gamma_value, cfg.T1_value
    stop = False
    if cfg.termination == "gap" and t > T1:
        stop = bool(gap_passes(h, h[m], cfg.lam, gamma, axis=0))
    elif cfg.termination == "freeze_at_T1" and t > T1:
        stop = True
    if stop:
        return theta, True
    pi = softmax(h)
    pi_sum += pi
    scale = aux_scale(cfg.alpha, M, t, cfg.aux_grad, cfg.lb_loss)
    dn = locality_weight(np.array([np.linalg.norm(delta)]), cfg.locality)
    g = balance_signal(
        (counts / t)[:, None],
        np.array([m]),
        (pi_sum / t)[:, None],
        cfg.lb_loss,
    )
    c = coefficients_runs_last(dn, pi[:, None], np.array([m]), g, scale)[:, 0]
    theta = theta - cfg.eta * np.outer(c, xbar)
    return theta, False


def check_reference(
    cfg: ExperimentConfig,
    *,
    runs: Sequence[int] | None = None,
    rtol: float = REFERENCE_RTOL,
    atol: float = REFERENCE_ATOL,
) -> dict[str, float]:
    """Assert that the engine and the reference agree at ``cfg`` (float64); returns the
    max relative errors.

    Discrete outputs (tasks, experts, termination rounds) must be equal; float outputs
    within ``rtol``/``atol``. Raises ``AssertionError`` naming the first output that
    differs.
    """
    if cfg.dtype != "float64":
        raise ValueError("check_reference compares float64 runs; set dtype='float64'")
    res = simulate(cfg)
    ref = reference_simulate(cfg, runs=runs)
    sel = list(range(cfg.n_runs)) if runs is None else list(runs)
    for key in ("tasks", "experts", "T2"):
        a, b = np.asarray(getattr(res, key))[sel], getattr(ref, key)
        if not np.array_equal(a, b):
            raise AssertionError(f"engine and reference differ in '{key}'")
    errors: dict[str, float] = {}
    for key in ("F", "G", "G_pool", "err_new", "final_w", "final_theta"):
        a, b = np.asarray(getattr(res, key))[sel], getattr(ref, key)
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=atol, err_msg=f"engine vs reference: '{key}'"
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(a - b) / np.maximum(np.abs(b), atol)
        errors[key] = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
    return errors
