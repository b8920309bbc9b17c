"""Benchmark of the batched simulation engine against a naive per-run reference (``moecl bench``).

Two implementations of Algorithm 1 (SPEC §3-§5) live side by side:

* :func:`moecl_lib.engine.simulate`: the batched engine (all runs at once, incremental metrics).
* :func:`reference_simulate` (here): a deliberately straightforward loop, **one run at a time**, that solves
  the ``s x s`` normal equations with ``numpy.linalg.solve`` every round and **recomputes** ``F_t`` and
  ``G_t`` from the whole history of arrivals every round (``O(t d)`` work in round ``t``, so ``O(T^2 d)`` per
  run). It is kept as the reference: :func:`check_reference` asserts that both give the same numbers.

Both consume the *same random numbers*: the reference draws the task pool with
:func:`moecl_lib.tasks.make_task_pool` and then all rounds with :func:`moecl_lib.engine.draw_rounds`, the
function the engine calls block by block; ``draw_rounds`` consumes the generator round by round in a fixed
order, so the block length does not change the stream. Hence at a fixed seed the discrete trajectory
(tasks, chosen experts, termination rounds) is identical and the float metrics agree to rounding
(the engine projects with an orthonormal basis and updates metrics incrementally; the reference solves and
re-sums; see :data:`REFERENCE_RTOL`).

What ``moecl bench`` measures (wall-clock; the machine is shared, so every timing is the MINIMUM over
repeats, and the numbers are noisy):

1. throughput in run-rounds per second for the Figure-2 configuration (N=6, M in {1,5,10,20}, d=10, s=6,
   T=2000, R=500) and a large one (d=200, s=20, M=40, N=10), batched vs reference. The reference is timed
   on a few runs at the full T and extrapolated linearly in R (it is a loop over independent runs);
2. time versus T, R, M and d (one figure, PNG+PDF, and a CSV);
3. peak memory of one batched run (``tracemalloc``, which also sees numpy's buffers) and the process'
   maximum resident set size;
4. optionally (``--notebooks``) the wall time of every notebook under the quick and paper profiles and of
   the book build, through the notebook runner.

Results go to ``results/bench/`` (git-ignored). ``--quick`` runs tiny sizes (about a minute; a smoke test).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from .config import ExperimentConfig
from .engine import draw_rounds, simulate
from .tasks import make_task_pool, mean_signal_strength

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]

REFERENCE_RTOL = 1e-8
"""Relative tolerance (with absolute floor :data:`REFERENCE_ATOL`) of engine-vs-reference float metrics."""
REFERENCE_ATOL = 1e-10

FIG2 = ExperimentConfig(n_tasks=6, n_experts=10, d=10, s=6, T=2000, n_runs=500)
"""The Figure-2 configuration (M is varied over :data:`FIG2_M`)."""
FIG2_M = (1, 5, 10, 20)
LARGE = ExperimentConfig(n_tasks=10, n_experts=40, d=200, s=20, T=1000, n_runs=100)
"""The large configuration of issue 7 (T and R are our choice)."""


# ------------------------------------------------------------------------------------------------------------
# The naive per-run reference
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ReferenceResult:
    """Output of :func:`reference_simulate`; same conventions and shapes as ``SimulationResult``."""

    F: FloatArray
    G: FloatArray
    G_pool: FloatArray
    err_new: FloatArray
    experts: IntArray
    tasks: IntArray
    T2: IntArray
    final_w: FloatArray
    final_theta: FloatArray


def reference_simulate(cfg: ExperimentConfig, *, runs: Sequence[int] | None = None) -> ReferenceResult:
    """Algorithm 1, one run at a time, recomputing ``F_t`` and ``G_t`` from the whole history (float64).

    Args:
        cfg: configuration (``cfg.dtype`` is ignored: the reference always computes in float64).
        runs: which runs of the batch to simulate (default: all ``cfg.n_runs``); the random draws are those of
            the full batch, so run ``r`` here is run ``r`` of ``simulate(cfg)``.

    Returns:
        Arrays with a leading axis over the selected runs.
    """
    rng = np.random.default_rng(cfg.seed)
    pool = make_task_pool(cfg, rng)
    draws = draw_rounds(cfg, rng, cfg.T)  # (T, R, ...): the same stream the engine consumes block by block
    run_ids = list(range(cfg.n_runs)) if runs is None else [int(r) for r in runs]
    M, N, d, T = cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T
    gamma, T1 = cfg.gamma_value, cfg.T1_value
    out = {k: [] for k in ("F", "G", "G_pool", "err_new", "experts", "tasks", "T2", "final_w", "final_theta")}
    for r in run_ids:
        W = np.asarray(pool.W[r], dtype=float)
        V = np.asarray(pool.V[r], dtype=float)
        signal_in = mean_signal_strength(cfg) * V
        w = np.zeros((M, d))
        theta = np.zeros((M, d))
        counts = np.zeros(M)
        active = M > 1
        T2 = -1
        hist_m = np.zeros(T, dtype=np.int64)
        hist_n = np.zeros(T, dtype=np.int64)
        F = np.full(T, np.nan)
        G = np.empty(T)
        G_pool = np.empty(T)
        diag = np.empty(T)  # E_tau(tau): error of each arrival right after it was learned
        for t in range(1, T + 1):
            n = int(draws.tasks[t - 1, r])
            X = draws.noise[t - 1, r].copy()  # (d, s)
            if draws.pos is not None and draws.beta is not None:
                X[:, draws.pos[t - 1, r]] = draws.beta[t - 1, r] * V[n]
            y = X.T @ W[n]
            if M > 1:
                xbar = X.sum(axis=1)
                h = theta @ xbar
                m = int(np.argmax(h + draws.route_noise[t - 1, r]))
            else:
                m = 0
            # min-norm update, Eq. (4): w <- w + X (X^T X)^{-1} (y - X^T w)
            coef = np.linalg.solve(X.T @ X, y - X.T @ w[m])
            delta = X @ coef
            w[m] = w[m] + delta
            hist_m[t - 1], hist_n[t - 1] = m, n
            # metrics recomputed from the whole history: E_t(tau) = ||w_t^(m_tau) - w_{n_tau}||^2, tau <= t
            E = ((w[hist_m[:t]] - W[hist_n[:t]]) ** 2).sum(axis=1)
            diag[t - 1] = E[t - 1]
            G[t - 1] = E.mean()
            if t >= 2:
                F[t - 1] = (E[: t - 1] - diag[: t - 1]).mean()
            counts[m] += 1
            # router (SPEC §4.5-4.6), written out for one run
            if active:
                stop = False
                if cfg.termination == "gap" and t > T1:
                    outside = np.abs(h - h[m]) > cfg.lam
                    stop = bool(outside.any()) and float(np.min(h[m] - h[outside])) > gamma
                elif cfg.termination == "freeze_at_T1" and t > T1:
                    stop = True
                if stop:
                    T2, active = t, False
                else:
                    z = np.exp(h - h.max())
                    pi = z / z.sum()
                    f = counts / t
                    s_t = 1.0 / t if cfg.aux_grad == "decay" else 1.0
                    c = -np.linalg.norm(delta) * pi[m] * pi
                    c[m] += np.linalg.norm(delta) * pi[m]
                    c += s_t * cfg.alpha * M * pi * (f - f @ pi)
                    theta = theta - cfg.eta * np.outer(c, xbar)
            mhat = np.argmax(signal_in @ theta.T, axis=1)  # noise-free choice per task, (N,)
            G_pool[t - 1] = ((w[mhat] - W) ** 2).sum(axis=1).mean()
        for key, val in (("F", F), ("G", G), ("G_pool", G_pool), ("err_new", diag), ("experts", hist_m),
                         ("tasks", hist_n), ("T2", T2), ("final_w", w), ("final_theta", theta)):
            out[key].append(val)
    return ReferenceResult(**{k: np.asarray(v) for k, v in out.items()})


def check_reference(cfg: ExperimentConfig, *, runs: Sequence[int] | None = None,
                    rtol: float = REFERENCE_RTOL, atol: float = REFERENCE_ATOL) -> dict[str, float]:
    """Assert that the engine and the reference agree at ``cfg`` (float64); returns the max relative errors.

    Discrete outputs (tasks, experts, termination rounds) must be equal; float outputs within ``rtol``/``atol``.
    Raises ``AssertionError`` naming the first output that differs.
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
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"engine vs reference: '{key}'")
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(a - b) / np.maximum(np.abs(b), atol)
        errors[key] = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
    return errors
