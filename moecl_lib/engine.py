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
from .tasks import TaskPool, make_task_pool, mean_signal_strength

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
# Random draws (one function for the batched engine and the per-run reference of moecl_lib.bench)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundDraws:
    """Every random number of ``B`` consecutive rounds for all ``R`` runs (leading axes ``(B, R)``).

    Attributes:
        tasks: arriving task ``n_t``, (B, R) int.
        noise: i.i.d. ``N(0, sigma_t^2)`` entries of ``X_t`` (float64; the signal column is overwritten when
            the inputs are built), (B, R, d, s).
        beta: signal strength ``beta_t``, (B, R); ``None`` when ``signal="none"``.
        pos: column of ``X_t`` holding the signal, (B, R); ``None`` when ``signal="none"``.
        route_noise: routing noise ``Unif[0, lambda]``, (B, R, M); ``None`` when ``M = 1``.
    """

    tasks: IntArray
    noise: FloatArray
    beta: FloatArray | None
    pos: IntArray | None
    route_noise: FloatArray | None

    def __len__(self) -> int:
        return int(self.tasks.shape[0])


def draw_rounds(cfg: ExperimentConfig, rng: np.random.Generator, n_rounds: int) -> RoundDraws:
    """Draw the random inputs of ``n_rounds`` consecutive rounds (all runs), round by round.

    The generator is consumed in exactly the order of the original per-round engine (for each round: task
    indices, Gaussian columns, [uniform signal strengths], signal positions, [routing noise]), so a seed gives
    the same stream whatever the block length. Draws are float64 whatever ``cfg.dtype`` (a float32 run sees
    the rounded float64 draws, which is what makes the float32/float64 comparison meaningful).
    """
    R, N, M, d, s = cfg.n_runs, cfg.n_tasks, cfg.n_experts, cfg.d, cfg.s
    B = int(n_rounds)
    tasks = np.empty((B, R), dtype=np.int64)
    noise = np.empty((B, R, d, s))
    has_signal = cfg.signal != "none"
    beta = np.full((B, R), cfg.beta) if has_signal else None
    pos = np.empty((B, R), dtype=np.int64) if has_signal else None
    route = np.empty((B, R, M)) if M > 1 else None
    uniform_beta = has_signal and cfg.beta_dist == "uniform"
    for b in range(B):
        tasks[b] = rng.integers(N, size=R)
        rng.standard_normal(out=noise[b])  # == rng.normal(0, sigma_t) / sigma_t, bit for bit
        if has_signal:
            if uniform_beta:
                beta[b] = cfg.beta * (1.0 - rng.random(R))  # Unif(0, beta]
            pos[b] = rng.integers(s, size=R)
        if route is not None:
            route[b] = rng.uniform(0.0, cfg.lam, size=(R, M))
    noise *= cfg.sigma_t
    return RoundDraws(tasks=tasks, noise=noise, beta=beta, pos=pos, route_noise=route)


def round_inputs(cfg: ExperimentConfig, pool: TaskPool, draws: RoundDraws) -> FloatArray:
    """Feature matrices ``X_t`` (Definition 1) of a block of draws, (B, R, d, s) in ``cfg.dtype``.

    The Gaussian columns are ``draws.noise``; column ``pos`` is ``beta_t v_{n_t}`` (unless ``signal="none"``).
    Labels are noise-free, ``y_t = X_t^T w_{n_t}``.
    """
    X = draws.noise.astype(np.dtype(cfg.dtype), copy=True)
    if draws.pos is not None and draws.beta is not None:
        B, R = draws.tasks.shape
        bb, rr = np.meshgrid(np.arange(B), np.arange(R), indexing="ij")
        X[bb, rr, :, draws.pos] = draws.beta[..., None] * pool.V[rr, draws.tasks]
    return X


def orthonormal_columns(X: FloatArray) -> FloatArray:
    """Orthonormal basis ``Q`` of the column span of every ``X`` in a batch (..., d, s), ``s <= d``.

    Classical Gram-Schmidt with one re-orthogonalisation (CGS2), vectorised over the batch axes: as accurate
    as Householder QR for full-column-rank ``X`` and much faster than looping LAPACK over tiny matrices.
    ``Q Q^T`` is the orthogonal projector onto ``span(X)``, the operator of the min-norm update (Eq. 4).
    """
    d, s = X.shape[-2:]
    Xc = np.moveaxis(X, -1, 0)  # (s, ..., d): column k is a contiguous-ish slab
    Q = np.empty(Xc.shape, dtype=X.dtype)
    for k in range(s):
        v = Xc[k].copy()
        if k:
            Qk = Q[:k]
            for _ in range(2):
                proj = np.einsum("k...d,...d->k...", Qk, v)
                v -= np.einsum("k...,k...d->...d", proj, Qk)
        v /= np.sqrt(np.einsum("...d,...d->...", v, v))[..., None]
        Q[k] = v
    return np.moveaxis(Q, 0, -1)


def block_length(cfg: ExperimentConfig) -> int:
    """Rounds drawn and pre-processed at once: about 2**18 entries of ``X`` per block (memory-bounded)."""
    per_round = cfg.n_runs * cfg.d * cfg.s
    return int(max(1, min(cfg.T, 256, (1 << 18) // per_round)))


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

    Implementation (exact, see the module docstring): random draws and everything that does not depend on the
    state (``X_t``, an orthonormal basis ``Q_t`` of ``span(X_t)``, ``xbar_t``) are computed for a block of
    rounds at once; each round then costs O(M d + d s + M N) per run. The expert update is the projection
    ``w <- w + Q_t Q_t^T (w_{n_t} - w)``, which equals Eq. (4) because labels are noise-free.

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
    signal_in = (mean_signal_strength(cfg) * pool.V).astype(dtype)  # noise-free router input, (R, N, d)
    signal_in_T = np.ascontiguousarray(signal_in.transpose(0, 2, 1))  # (R, d, N)
    gamma, T1 = cfg.gamma_value, cfg.T1_value
    routed = M > 1

    w = np.zeros((R, M, d), dtype=dtype)
    theta = np.zeros((R, M, d), dtype=dtype)
    counts = np.zeros((R, M), dtype=dtype)
    active = np.full(R, routed)
    n_active = int(active.sum())
    T2 = np.full(R, -1, dtype=np.int64)
    # D[r, m, n] = ||w^(m) - w_n||^2 ; C[r, m, n] = arrivals of task n learned by expert m;
    # P[r, m] = sum_n C[r, m, n] D[r, m, n] (recomputed for the one changed expert per round: no drift)
    D = np.repeat((W**2).sum(-1)[:, None, :], M, axis=1).astype(dtype)
    C = np.zeros((R, M, N), dtype=dtype)
    P = np.zeros((R, M), dtype=dtype)
    S = np.zeros(R, dtype=dtype)  # sum of err_new over past arrivals

    # per-round outputs are written as rows of (T, R) arrays and transposed at the end
    F = np.full((T, R), np.nan, dtype=dtype)
    G = np.empty((T, R), dtype=dtype)
    G_pool = np.empty((T, R), dtype=dtype)
    err_new = np.empty((T, R), dtype=dtype)
    experts = np.empty((T, R), dtype=np.int32)
    tasks_hist = np.empty((T, R), dtype=np.int32)
    weights = np.empty((R, T, M, d), dtype=dtype) if record_weights else None
    snap_every = cfg.snapshot_every
    snap_rounds = [t for t in range(1, T + 1) if snap_every and t % snap_every == 0]
    if not snap_rounds or snap_rounds[-1] != T:
        snap_rounds.append(T)
    snapshots = np.empty((R, len(snap_rounds), N, M), dtype=dtype)
    snap_idx = 0
    all_tasks = np.arange(N)[None, :]
    mhat = np.zeros((R, N), dtype=np.int64)  # noise-free router choice per task
    gates_sig = np.zeros((R, N, M), dtype=dtype)
    gates_stale = False
    zeros_m = np.zeros((R, M), dtype=np.int64)[:, 0]

    block = block_length(cfg)
    bar = tqdm(total=T, disable=not progress, desc=f"M={M} rounds", leave=False)
    t = 0
    while t < T:
        draws = draw_rounds(cfg, rng, min(block, T - t))
        X = round_inputs(cfg, pool, draws)                       # (B, R, d, s)
        Q = orthonormal_columns(X)                               # (B, R, d, s)
        QT = np.ascontiguousarray(Q.swapaxes(-1, -2))            # (B, R, s, d)
        Wn = W[runs[None, :], draws.tasks]                       # (B, R, d)
        if routed:
            xbar = X.sum(axis=-1)                                # (B, R, d)
            xbar_col = xbar[..., None]                           # (B, R, d, 1)
        for b in range(len(draws)):
            t += 1
            n = draws.tasks[b]
            if routed:
                h = (theta @ xbar_col[b])[..., 0]                # (R, M)
                m = np.argmax(h + draws.route_noise[b], axis=1)
            else:
                m = zeros_m
            # expert update, Eq. (4) with noise-free labels: w <- w + Q Q^T (w_n - w)
            w_old = w[runs, m]
            coef = (Wn[b] - w_old)[:, None, :] @ Q[b]            # (R, 1, s)
            delta = (coef @ QT[b])[:, 0, :]                      # (R, d)
            w_new = w_old + delta
            w[runs, m] = w_new
            # metrics, incremental: only row m of D changes
            diff = w_new[:, None, :] - W                         # (R, N, d)
            Dm = np.einsum("rnd,rnd->rn", diff, diff)
            D[runs, m] = Dm
            Cm = C[runs, m]                                      # (R, N) counts before this arrival
            P[runs, m] = np.einsum("rn,rn->r", Cm, Dm)
            total = P.sum(axis=1)
            if t >= 2:
                F[t - 1] = (total - S) / (t - 1)
            e_new = Dm[runs, n]
            C[runs, m, n] += 1
            P[runs, m] += e_new
            S += e_new
            G[t - 1] = (total + e_new) / t
            err_new[t - 1] = e_new
            experts[t - 1] = m
            tasks_hist[t - 1] = n
            counts[runs, m] += 1
            if weights is not None:
                weights[:, t - 1] = w
            # router
            if n_active:
                if cfg.termination == "gap" and t > T1:
                    stop = active & gap_test(h, m, cfg.lam, gamma)
                elif cfg.termination == "freeze_at_T1" and t > T1:
                    stop = active.copy()
                else:
                    stop = None
                if stop is not None and stop.any():
                    T2[stop] = t
                    active &= ~stop
                    n_active = int(active.sum())
                if n_active:
                    pi = softmax(h)
                    c = router_coefficients(
                        np.sqrt(np.einsum("rd,rd->r", delta, delta)), pi, m, counts / t, t, cfg.alpha,
                        cfg.aux_grad,
                    )
                    if n_active < R:
                        c[~active] = 0.0
                    theta -= cfg.eta * c[:, :, None] * xbar[b][:, None, :]
                    gates_stale = True
            if gates_stale:
                gates_sig = theta @ signal_in_T                  # (R, M, N)
                gates_sig = gates_sig.swapaxes(1, 2)             # (R, N, M) view
                mhat = np.argmax(gates_sig, axis=2)
                gates_stale = False
            G_pool[t - 1] = D[runs[:, None], mhat, all_tasks].mean(axis=1)
            if snap_idx < len(snap_rounds) and t == snap_rounds[snap_idx]:
                snapshots[:, snap_idx] = gates_sig
                snap_idx += 1
        bar.update(len(draws))
    bar.close()

    return SimulationResult(
        config=cfg, F=F.T.copy(), G=G.T.copy(), G_pool=G_pool.T.copy(), err_new=err_new.T.copy(),
        experts=experts.T.copy(), tasks=tasks_hist.T.copy(), T2=T2, pool=pool,
        snapshot_rounds=np.asarray(snap_rounds), gate_snapshots=snapshots, final_w=w, final_theta=theta,
        weights=weights, wall_time=time.perf_counter() - start,
    )
