"""Batched simulation of Algorithm 1 (linear MoE for continual learning) over R independent runs.

Conventions (SPEC §3-§5): gate ``h_m = theta_m^T xbar_t`` with ``xbar_t = X_t 1`` (sum of the round's
samples); noisy top-1 routing ``argmax_m h_m + Unif[0, lambda]``; the selected expert moves to the
minimum-change interpolator (Eq. 4, solved with ``solve``, never an inverse); the router takes one GD step on
locality + load-balancing loss (explicit gradient of SPEC §4.5) unless frozen by the termination rule.

Metrics are exact and incremental, O(M N d) per round and run: with ``D[m, n] = ||w^(m) - w_n||^2`` and
``C[m, n]`` the number of past arrivals of task n learned by expert m,
``G_t = sum(C_t * D_t) / t`` and ``F_t = (sum(C_{t-1} * D_t) - sum_{tau<t} E_tau(tau)) / (t - 1)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from .config import ExperimentConfig
from .tasks import TaskPool, make_task_pool, mean_signal_strength, sample_rounds, sample_tasks

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]


# ----------------------------------------------------------------------------------------------
# Pure router helpers (shared with the deep-network learner)
# ----------------------------------------------------------------------------------------------
def softmax(h: FloatArray, axis: int = -1) -> FloatArray:
    """Numerically stable softmax (max-subtracted, SPEC A14)."""
    z = h - h.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def router_coefficients(
    delta_norm: FloatArray,
    pi: FloatArray,
    chosen: IntArray,
    f: FloatArray,
    t: int,
    alpha: float,
    aux_grad: Literal["decay", "no_decay"] = "decay",
) -> FloatArray:
    """Scalars ``c^(k)`` with ``grad_{theta^(k)} L^tr = c^(k) xbar_t`` (SPEC §4.5), batched over runs.

    ``c^(k) = ||Delta_t|| pi_{m_t} (1{k = m_t} - pi_k) + s_t alpha M pi_k (f^(k) - sum_m f^(m) pi_m)`` with
    ``s_t = 1/t`` for ``aux_grad="decay"`` (only the current round's term of ``P_t`` depends on Theta) and
    ``s_t = 1`` for ``"no_decay"`` (SPEC A3). The coefficients sum to zero over experts.

    Args:
        delta_norm: ``||w_t^(m_t) - w_{t-1}^(m_t)||_2``, shape (R,).
        pi: softmax router probabilities, shape (R, M).
        chosen: selected expert ``m_t``, shape (R,).
        f: load fractions ``f_t^(m)`` (including round t), shape (R, M).
        t: round index (1-based).
        alpha: load-balancing weight.
        aux_grad: gradient variant of the load-balancing term.
    """
    R, M = pi.shape
    runs = np.arange(R)
    pi_chosen = pi[runs, chosen]
    loc = -(delta_norm * pi_chosen)[:, None] * pi
    loc[runs, chosen] += delta_norm * pi_chosen
    scale = alpha * M / t if aux_grad == "decay" else alpha * M
    aux = scale * pi * (f - (f * pi).sum(axis=1, keepdims=True))
    return loc + aux


def gap_test(h: FloatArray, chosen: IntArray, lam: float, gamma: float) -> BoolArray:
    """Termination test of SPEC §4.6 (recommended ``gap`` rule), batched over runs.

    With ``S_t = {m : |h_m - h_{m_t}| <= lambda}`` (experts tied with the winner up to the routing noise),
    the test passes when ``S_t`` is not all experts and every expert outside it is below the winner by
    more than ``Gamma``.
    """
    R = h.shape[0]
    h_win = h[np.arange(R), chosen][:, None]
    outside = np.abs(h - h_win) > lam
    margin = np.where(outside, h_win - h, np.inf).min(axis=1)
    return outside.any(axis=1) & (margin > gamma)


# ----------------------------------------------------------------------------------------------
# Result container
# ----------------------------------------------------------------------------------------------
@dataclass
class SimulationResult:
    """Output of :func:`simulate`. Index ``t - 1`` of a round axis holds the value after round t.

    Attributes:
        config: the configuration that produced it.
        F: forgetting ``F_t`` (SPEC §5.1; arrival-averaged, denominator t - 1; may be negative), (R, T);
            ``F[:, 0]`` is NaN (undefined at t = 1).
        G: generalisation error ``G_t`` (arrival-averaged, denominator t), (R, T).
        G_pool: pool-averaged error ``(1/N) sum_n ||w^(mhat(n)) - w_n||^2`` with ``mhat(n)`` the noise-free
            router choice on the mean signal ``E[beta] v_n``, (R, T).
        err_new: error of each arrival right after it was learned, ``E_t(t)``, (R, T).
        experts: selected expert ``m_t``, (R, T).
        tasks: arriving task ``n_t``, (R, T).
        T2: round at which the router was frozen (-1 if never), (R,).
        pool: the task pool.
        snapshot_rounds: rounds at which gates on the task signals were recorded.
        gate_snapshots: ``theta^(m) . (E[beta] v_n)`` after those rounds, (R, S, N, M).
        final_w: expert parameters after round T, (R, M, d).
        final_theta: router parameters after round T, (R, M, d).
        weights: optional per-round expert parameters (R, T, M, d) (``record_weights=True``).
        wall_time: seconds spent in :func:`simulate`.
    """

    config: ExperimentConfig
    F: FloatArray
    G: FloatArray
    G_pool: FloatArray
    err_new: FloatArray
    experts: IntArray
    tasks: IntArray
    T2: IntArray
    pool: TaskPool
    snapshot_rounds: IntArray
    gate_snapshots: FloatArray
    final_w: FloatArray
    final_theta: FloatArray
    weights: FloatArray | None = None
    wall_time: float = 0.0
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rounds(self) -> IntArray:
        """Round numbers 1..T (x-axis of every curve)."""
        return np.arange(1, self.config.T + 1)


# ----------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------
def simulate(
    cfg: ExperimentConfig,
    *,
    progress: bool = False,
    record_weights: bool = False,
    rng: np.random.Generator | None = None,
) -> SimulationResult:
    """Run Algorithm 1 for ``cfg.n_runs`` independent runs at once (``n_experts = 1``: single expert).

    Args:
        cfg: validated configuration.
        progress: show a tqdm progress bar over rounds.
        record_weights: also return every expert's parameters after every round (memory R*T*M*d).
        rng: random generator; defaults to ``np.random.default_rng(cfg.seed)``.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed) if rng is None else rng
    dtype = np.dtype(cfg.dtype)
    R, M, N, d, T = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T
    runs = np.arange(R)
    pool = make_task_pool(cfg, rng)
    W = pool.W
    signal_in = mean_signal_strength(cfg) * pool.V  # noise-free router input per task, (R, N, d)
    gamma, T1 = cfg.gamma_value, cfg.T1_value

    w = np.zeros((R, M, d), dtype=dtype)
    theta = np.zeros((R, M, d), dtype=dtype)
    counts = np.zeros((R, M), dtype=np.int64)
    active = np.full(R, M > 1)
    T2 = np.full(R, -1, dtype=np.int64)
    # D[r, m, n] = ||w^(m) - w_n||^2 ; C[r, m, n] = arrivals of task n learned by expert m
    D = np.repeat((W**2).sum(-1)[:, None, :], M, axis=1).astype(dtype)
    C = np.zeros((R, M, N), dtype=dtype)
    S = np.zeros(R, dtype=dtype)  # sum of err_new over past arrivals

    F = np.full((R, T), np.nan, dtype=dtype)
    G = np.empty((R, T), dtype=dtype)
    G_pool = np.empty((R, T), dtype=dtype)
    err_new = np.empty((R, T), dtype=dtype)
    experts = np.empty((R, T), dtype=np.int32)
    tasks_hist = np.empty((R, T), dtype=np.int32)
    weights = np.empty((R, T, M, d), dtype=dtype) if record_weights else None
    snap_every = cfg.snapshot_every
    snap_rounds = [t for t in range(1, T + 1) if snap_every and t % snap_every == 0]
    if not snap_rounds or snap_rounds[-1] != T:
        snap_rounds.append(T)
    snapshots = np.empty((R, len(snap_rounds), N, M), dtype=dtype)
    snap_idx = 0

    for t in tqdm(range(1, T + 1), disable=not progress, desc=f"M={M} rounds", leave=False):
        n = sample_tasks(cfg, rng)
        X, y = sample_rounds(cfg, pool, n, rng)
        if M > 1:
            xbar = X.sum(axis=2)
            h = np.einsum("rmd,rd->rm", theta, xbar)
            m = np.argmax(h + rng.uniform(0.0, cfg.lam, size=(R, M)), axis=1)
        else:
            m = np.zeros(R, dtype=np.int64)
        # expert update, Eq. (4): w <- w + X (X^T X)^{-1} (y - X^T w)
        w_old = w[runs, m]
        resid = y - np.einsum("rds,rd->rs", X, w_old)
        gram = np.einsum("rds,rdk->rsk", X, X)
        coef = np.linalg.solve(gram, resid[..., None])[..., 0]
        delta = np.einsum("rds,rs->rd", X, coef)
        w_new = w_old + delta
        w[runs, m] = w_new
        # metrics, incremental
        D[runs, m] = ((w_new[:, None, :] - W) ** 2).sum(-1)
        total = (C * D).sum(axis=(1, 2))
        if t >= 2:
            F[:, t - 1] = (total - S) / (t - 1)
        e_new = D[runs, m, n]
        C[runs, m, n] += 1
        S += e_new
        G[:, t - 1] = (total + e_new) / t
        err_new[:, t - 1] = e_new
        experts[:, t - 1] = m
        tasks_hist[:, t - 1] = n
        counts[runs, m] += 1
        if weights is not None:
            weights[:, t - 1] = w
        # router
        if M > 1:
            if active.any():
                if cfg.termination == "gap" and t > T1:
                    stop = active & gap_test(h, m, cfg.lam, gamma)
                elif cfg.termination == "freeze_at_T1" and t > T1:
                    stop = active.copy()
                else:
                    stop = np.zeros(R, dtype=bool)
                T2[stop] = t
                active &= ~stop
                if active.any():
                    pi = softmax(h)
                    c = router_coefficients(
                        np.sqrt((delta**2).sum(-1)), pi, m, counts / t, t, cfg.alpha, cfg.aux_grad
                    )
                    c[~active] = 0.0
                    theta -= cfg.eta * c[:, :, None] * xbar[:, None, :]
            gates_sig = np.einsum("rmd,rnd->rnm", theta, signal_in)
            mhat = np.argmax(gates_sig, axis=2)  # (R, N) noise-free router choice per task
            G_pool[:, t - 1] = D[runs[:, None], mhat, np.arange(N)[None, :]].mean(axis=1)
        else:
            gates_sig = np.zeros((R, N, 1), dtype=dtype)
            G_pool[:, t - 1] = D[:, 0, :].mean(axis=1)
        if snap_idx < len(snap_rounds) and t == snap_rounds[snap_idx]:
            snapshots[:, snap_idx] = gates_sig
            snap_idx += 1

    return SimulationResult(
        config=cfg, F=F, G=G, G_pool=G_pool, err_new=err_new, experts=experts, tasks=tasks_hist,
        T2=T2, pool=pool, snapshot_rounds=np.asarray(snap_rounds), gate_snapshots=snapshots,
        final_w=w, final_theta=theta, weights=weights, wall_time=time.perf_counter() - start,
    )
