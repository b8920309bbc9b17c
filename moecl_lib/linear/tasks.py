"""Task pools and round data of Definition 1 (SPEC §2), batched over R independent runs.

Shapes: R runs, N tasks, K clusters, d features, s samples per round. Columns of ``X_t``
are samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass(frozen=True)
class TaskPool:
    """Ground truths and feature signals of every run.

    Attributes:
        W: ground truths ``w_n``, shape (R, N, d).
        V: feature signals ``v_n`` (norm ``signal_scale``; zeros when
            ``signal="none"``), shape (R, N, d).
        cluster_of: cluster index of each task, shape (N,); tasks are split into K
            contiguous blocks.
    """

    W: FloatArray
    V: FloatArray
    cluster_of: IntArray

    @property
    def n_runs(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_tasks(self) -> int:
        return int(self.W.shape[1])

    @property
    def d(self) -> int:
        return int(self.W.shape[2])

    def signal_directions(self) -> FloatArray:
        """Unit signal directions ``v_n / ||v_n||`` (zeros where there is no signal),
        shape (R, N, d)."""
        norms = np.linalg.norm(self.V, axis=-1, keepdims=True)
        return np.divide(self.V, norms, out=np.zeros_like(self.V), where=norms > 0)


def cluster_assignment(n_tasks: int, n_clusters: int) -> IntArray:
    """Split tasks 0..N-1 into ``n_clusters`` contiguous, as-equal-as-possible
    blocks."""
    return (np.arange(n_tasks) * n_clusters) // n_tasks


def make_task_pool(cfg: ExperimentConfig, rng: np.random.Generator) -> TaskPool:
    """Draw the ground-truth pool and feature signals (SPEC §2.2, §2.3, A2, A6).

    Cluster centres ``c_k ~ N(0, sigma0^2 I)``; with K < N each task is
    ``w_n = c_k(n) + N(0, spread^2 I)`` (spread ``sigma0**1.5`` by default), with K = N
    simply ``w_n = c_n``. Signals have norm ``signal_scale``: ``aligned`` ->
    ``c w_n/||w_n||``; ``random`` -> a random unit direction per cluster;
    ``orthonormal`` -> canonical basis vector ``e_k`` of the task's cluster; ``none`` ->
    zero (no signal column).
    """
    dtype = np.dtype(cfg.dtype)
    R = 1 if cfg.shared_pool else cfg.n_runs
    N, K, d = cfg.n_tasks, cfg.K, cfg.d
    cluster_of = cluster_assignment(N, K)
    centres = rng.normal(0.0, cfg.sigma0, size=(R, K, d))
    W = centres[:, cluster_of, :]
    if K < N:
        W = W + rng.normal(0.0, cfg.cluster_spread_value, size=(R, N, d))
    if cfg.signal == "aligned":
        V = cfg.signal_scale * W / np.linalg.norm(W, axis=-1, keepdims=True)
    elif cfg.signal == "random":
        u = rng.normal(size=(R, K, d))
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        V = cfg.signal_scale * u[:, cluster_of, :]
    elif cfg.signal == "orthonormal":
        V = np.zeros((R, N, d))
        V[:, np.arange(N), cluster_of] = cfg.signal_scale
    else:  # "none"
        V = np.zeros((R, N, d))
    if cfg.shared_pool:
        W = np.broadcast_to(W, (cfg.n_runs, N, d))
        V = np.broadcast_to(V, (cfg.n_runs, N, d))
    return TaskPool(
        W=np.ascontiguousarray(W, dtype=dtype),
        V=np.ascontiguousarray(V, dtype=dtype),
        cluster_of=cluster_of,
    )


def sample_tasks(cfg: ExperimentConfig, rng: np.random.Generator) -> IntArray:
    """Uniform i.i.d. task index of one round for every run (SPEC A5), shape (R,)."""
    return rng.integers(cfg.n_tasks, size=cfg.n_runs)


def sample_rounds(
    cfg: ExperimentConfig, pool: TaskPool, tasks: IntArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Round data ``(X_t, y_t)`` for every run (Definition 1).

    One column of ``X_t`` (at a uniformly random position, SPEC A4) is
    ``beta_t v_{n_t}``; the other ``s - 1`` columns are i.i.d. ``N(0, sigma_t^2 I)``.
    With ``signal="none"`` all ``s`` columns are Gaussian. Labels are noise-free:
    ``y_t = X_t^T w_{n_t}``.

    Returns:
        X of shape (R, d, s) and y of shape (R, s).
    """
    dtype = np.dtype(cfg.dtype)
    R, d, s = cfg.n_runs, cfg.d, cfg.s
    runs = np.arange(R)
    X = rng.normal(0.0, cfg.sigma_t, size=(R, d, s)).astype(dtype, copy=False)
    if cfg.signal != "none":
        if cfg.beta_dist == "constant":
            beta = np.full(R, cfg.beta, dtype=dtype)
        else:
            beta = (cfg.beta * (1.0 - rng.random(R))).astype(dtype)  # Unif(0, beta]
        pos = rng.integers(s, size=R)
        X[runs, :, pos] = beta[:, None] * pool.V[runs, tasks]
    y = np.einsum("rds,rd->rs", X, pool.W[runs, tasks])
    return X, y


def mean_signal_strength(cfg: ExperimentConfig) -> float:
    """``E[beta_t]``: the signal scale the noise-free router sees (used for
    ``G_t^pool``)."""
    return cfg.beta if cfg.beta_dist == "constant" else cfg.beta / 2.0
