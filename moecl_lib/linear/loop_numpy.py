"""Round loop of the engine in numpy, vectorised over runs.

Every state array keeps the run axis LAST and contiguous (``w``, ``theta``: (M, d, R);
``D``, ``C``: (M, N, R)), so each operation is a stream over runs; per-round outputs
are written as rows of (T, R) arrays and transposed at the end. The recursion and its
order of operations are those of the compiled kernel (:mod:`moecl_lib.linear.kernel`),
on the same draws. Outputs are those of :func:`moecl_lib.linear.engine.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import draws as _draws
from moecl_lib.linear.bases import _block_bases
from moecl_lib.linear.draws import draw_rounds
from moecl_lib.linear.results import curve_buffers
from moecl_lib.linear.routing import (
    argmax_first,
    aux_scale,
    balance_signal,
    coefficients_runs_last,
    gap_passes,
    locality_weight,
    route,
    softmax,
)
from moecl_lib.linear.streams import RunStreams
from moecl_lib.linear.tasks import TaskPool, mean_signal_strength

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass
class _LoopState:
    """Runs-last state of the numpy loop and its output buffers.

    ``D[m, n, r] = ||w^(m) - w_n||^2``; ``C[m, n, r]`` = arrivals of task n learned by
    expert m; ``P[m, r] = sum_n C[m, n, r] D[m, n, r]`` (recomputed for the one changed
    expert per round: no drift); ``S`` = sum of err_new over past arrivals;
    ``gates[m, n, r] = theta^(m) . signal_in_n``; ``gp_index`` = flat index of
    ``D[mhat(n), n, r]`` (``mhat = 0`` while ``theta = 0``). The ``*_flat`` arrays are
    flat views of the state arrays; curves are (T, R). ``runs``, ``d_offsets`` and
    ``n_offsets`` are the index helpers ``arange(R)``, ``arange(d) * R`` (d, 1) and
    ``arange(N) * R`` (N, 1).
    """

    W: FloatArray
    signal_in: FloatArray
    w: FloatArray
    theta: FloatArray
    counts: FloatArray
    active: NDArray[np.bool_]
    n_active: int
    T2: IntArray
    D: FloatArray
    C: FloatArray
    P: FloatArray
    S: FloatArray
    pi_sum: FloatArray
    gates: FloatArray
    gp_index: IntArray
    curves: tuple[np.ndarray, ...]
    weights: FloatArray | None
    snapshots: FloatArray
    runs: IntArray
    d_offsets: IntArray
    n_offsets: IntArray
    snap_idx: int = 0

    def __post_init__(self) -> None:
        self.w_flat = self.w.reshape(-1)
        self.D_flat = self.D.reshape(-1)
        self.C_flat = self.C.reshape(-1)
        self.P_flat = self.P.reshape(-1)
        self.counts_flat = self.counts.reshape(-1)


def _initial_state(
    cfg: ExperimentConfig,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
) -> _LoopState:
    """All experts and router parameters zero, no arrival yet."""
    dtype = np.dtype(cfg.dtype)
    R, M, N, d, T = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T
    runs = np.arange(R)
    W = np.ascontiguousarray(pool.W.transpose(1, 2, 0), dtype=dtype)  # (N, d, R)
    signal_in = np.ascontiguousarray(
        (mean_signal_strength(cfg) * pool.V).transpose(1, 2, 0), dtype=dtype
    )  # noise-free router input, (N, d, R)
    routed = M > 1
    n_offsets = (np.arange(N) * R)[:, None]  # (N, 1)
    return _LoopState(
        W=W,
        signal_in=signal_in,
        w=np.zeros((M, d, R), dtype=dtype),
        theta=np.zeros((M, d, R), dtype=dtype),
        counts=np.zeros((M, R), dtype=dtype),
        active=np.full(R, routed),
        n_active=R if routed else 0,
        T2=np.full(R, -1, dtype=np.int64),
        D=np.repeat(np.einsum("ndr,ndr->nr", W, W)[None], M, axis=0),
        C=np.zeros((M, N, R), dtype=dtype),
        P=np.zeros((M, R), dtype=dtype),
        S=np.zeros(R, dtype=dtype),
        pi_sum=np.zeros((M, R), dtype=dtype),  # router probabilities so far
        gates=np.zeros((M, N, R), dtype=dtype),
        gp_index=n_offsets + runs,
        curves=curve_buffers((T, R), dtype, np.int32),
        weights=np.empty((R, T, M, d), dtype=dtype) if record_weights else None,
        snapshots=np.empty((R, len(snap_rounds), N, M), dtype=dtype),
        runs=runs,
        d_offsets=(np.arange(d) * R)[:, None],
        n_offsets=n_offsets,
    )


def numpy_loop(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
    progress: bool,
) -> dict[str, np.ndarray | None]:
    """Round loop of :func:`~moecl_lib.linear.engine.simulate` in numpy, vectorised
    over runs (runs-last state)."""
    dtype = np.dtype(cfg.dtype)
    R, M, T = cfg.n_runs, cfg.n_experts, cfg.T
    runs = np.arange(R)
    routed = M > 1
    st = _initial_state(cfg, pool, snap_rounds, record_weights)
    block = _draws.block_length(cfg)
    bar = tqdm(total=T, disable=not progress, desc=f"M={M} rounds", leave=False)
    t = 0
    while t < T:
        draws = draw_rounds(cfg, rng, min(block, T - t))
        B = len(draws)
        QT, xbar = _block_bases(
            cfg, pool, draws, dtype, routed
        )  # (s, d, B, R), (d, B, R)
        Wn = np.ascontiguousarray(
            pool.W[runs, draws.tasks].transpose(2, 0, 1), dtype=dtype
        )  # (d, B, R)
        xs = (
            np.einsum("ndr,dbr->nbr", st.signal_in, xbar) if routed else None
        )  # signal_in . xbar, (N, B, R)
        route_noise = (
            np.ascontiguousarray(draws.route_noise.transpose(0, 2, 1), dtype=dtype)
            if routed
            else None
        )  # (B, M, R)
        for b in range(B):
            t += 1
            _one_round(
                cfg,
                st,
                t,
                draws.tasks[b],
                QT[:, :, b],
                Wn[:, b],
                xbar[:, b] if routed else None,
                xs[:, b] if routed else None,
                route_noise[b] if routed else None,
            )
            if st.snap_idx < len(snap_rounds) and t == snap_rounds[st.snap_idx]:
                st.snapshots[:, st.snap_idx] = st.gates.transpose(2, 1, 0)
                st.snap_idx += 1
        bar.update(B)
    bar.close()
    return _outputs(st)


def _one_round(
    cfg: ExperimentConfig,
    st: _LoopState,
    t: int,
    n: IntArray,
    Qb: FloatArray,
    Wn_b: FloatArray,
    xb: FloatArray | None,
    xs_b: FloatArray | None,
    noise_b: FloatArray | None,
) -> None:
    """Round ``t`` of every run: route, update the chosen expert, record the metrics,
    then one router step; ``n`` (R,) arriving tasks, ``Qb`` (s, d, R) their bases,
    ``Wn_b`` (d, R) their parameters, ``xb`` (d, R), ``xs_b`` (N, R), ``noise_b``
    (M, R) the router's inputs (None for M = 1)."""
    R, d = cfg.n_runs, cfg.d
    runs = st.runs
    if xb is not None:
        h = np.einsum("mdr,dr->mr", st.theta, xb)  # (M, R)
        m = route(h, noise_b)
    else:
        h = None
        m = np.zeros(R, dtype=np.intp)
    # expert update, Eq. (4) with noise-free labels: w <- w + Q Q^T (w_n - w)
    w_index = m * (d * R) + runs + st.d_offsets  # (d, R) flat index of w[m, :, r]
    w_old = st.w_flat[w_index]
    coef = np.einsum("sdr,dr->sr", Qb, Wn_b - w_old)
    delta = np.einsum("sr,sdr->dr", coef, Qb)
    w_new = w_old + delta
    st.w_flat[w_index] = w_new
    _record_metrics(cfg, st, t, n, m, w_new)
    if st.n_active:
        _router_step(cfg, st, t, h, m, delta, xb, xs_b)
    N = cfg.n_tasks
    G_pool = st.curves[2]
    np.multiply(st.D_flat[st.gp_index].sum(axis=0), 1.0 / N, out=G_pool[t - 1])


def _record_metrics(
    cfg: ExperimentConfig,
    st: _LoopState,
    t: int,
    n: IntArray,
    m: IntArray,
    w_new: FloatArray,
) -> None:
    """Incremental ``F_t``, ``G_t`` and the bookkeeping of round ``t``: only row ``m``
    of ``D`` changes (expert ``m`` now has parameters ``w_new`` (d, R))."""
    R, N = cfg.n_runs, cfg.n_tasks
    runs, n_offsets = st.runs, st.n_offsets
    F, G, _, err_new, experts, tasks_hist = st.curves
    diff = w_new - st.W  # (N, d, R)
    Dm = np.einsum("ndr,ndr->nr", diff, diff)  # (N, R)
    row_index = m * (N * R) + runs  # flat index of [m, 0, r]
    st.D_flat[row_index + n_offsets] = Dm
    Cm = st.C_flat[row_index + n_offsets]  # counts before this arrival
    p_index = m * R + runs
    st.P_flat[p_index] = np.einsum("nr,nr->r", Cm, Dm)
    total = st.P.sum(axis=0)
    if t >= 2:
        F[t - 1] = (total - st.S) / (t - 1)
    e_new = Dm[n, runs]
    st.C_flat[row_index + n * R] += 1
    st.P_flat[p_index] += e_new
    st.S += e_new
    G[t - 1] = (total + e_new) / t
    err_new[t - 1] = e_new
    experts[t - 1] = m
    tasks_hist[t - 1] = n
    st.counts_flat[p_index] += 1
    if st.weights is not None:
        st.weights[:, t - 1] = st.w.transpose(2, 0, 1)


def _terminate(
    cfg: ExperimentConfig, st: _LoopState, t: int, h: FloatArray, m: IntArray
) -> None:
    """Termination rule of round ``t``: freeze the routers that stop now
    (``T2 = t``)."""
    R = cfg.n_runs
    runs = st.runs
    gamma, T1 = cfg.gamma_value, cfg.T1_value
    lam = float(cfg.lam)
    active = st.active
    if cfg.termination == "gap" and t > T1:
        if 2 * st.n_active > R:
            stop = active & gap_passes(h, h[m, runs], lam, gamma, axis=0)
        else:  # few active runs: test only those
            idx = np.flatnonzero(active)
            ha = h[:, idx]
            h_win = ha[m[idx], np.arange(idx.size)]
            stop = np.zeros(R, dtype=bool)
            stop[idx] = gap_passes(ha, h_win, lam, gamma, axis=0)
    elif cfg.termination == "freeze_at_T1" and t > T1:
        stop = active.copy()
    else:
        stop = None
    if stop is not None and stop.any():
        st.T2[stop] = t
        active &= ~stop
        st.n_active = int(active.sum())


def _router_step(
    cfg: ExperimentConfig,
    st: _LoopState,
    t: int,
    h: FloatArray,
    m: IntArray,
    delta: FloatArray,
    xb: FloatArray,
    xs_b: FloatArray,
) -> None:
    """Termination test, then one GD step of the routers still active, with the gates
    on the task signals updated in O(M N)."""
    _terminate(cfg, st, t, h, m)
    if not st.n_active:
        return
    R, M, N = cfg.n_runs, cfg.n_experts, cfg.n_tasks
    runs, n_offsets = st.runs, st.n_offsets
    active, entropy = st.active, cfg.lb_loss == "entropy"
    # all runs at once (frozen ones get c = 0: theta - 0 * x == theta exactly) while
    # most are active; otherwise only the active ones (fancy indexing costs O(active))
    full = 2 * st.n_active > R
    sel = slice(None) if full else np.flatnonzero(active)
    hs, ms, xbs, xss = h[:, sel], m[sel], xb[:, sel], xs_b[:, sel]
    pi = softmax(hs, axis=0)
    delta_s = delta[:, sel]
    dn = np.sqrt(np.einsum("dr,dr->r", delta_s, delta_s))
    dn = locality_weight(dn, cfg.locality)
    f = st.counts[:, sel] / t
    if entropy:
        st.pi_sum[:, sel] += pi
    pbar = st.pi_sum[:, sel] / t if entropy else None
    g = balance_signal(f, ms, pbar, cfg.lb_loss)
    scale = aux_scale(cfg.alpha, M, t, cfg.aux_grad, cfg.lb_loss)
    c = coefficients_runs_last(dn, pi, ms, g, scale)
    c *= float(cfg.eta)
    if full:
        if st.n_active < R:
            c[:, ~active] = 0.0
        st.theta -= c[:, None, :] * xbs[None]
        # theta . signal_in, updated in O(M N)
        st.gates -= c[:, None, :] * xss[None]
        st.gp_index = argmax_first(st.gates) * (N * R) + n_offsets + runs
    else:
        st.theta[:, :, sel] -= c[:, None, :] * xbs[None]
        gs = st.gates[:, :, sel] - c[:, None, :] * xss[None]
        st.gates[:, :, sel] = gs
        st.gp_index[:, sel] = argmax_first(gs) * (N * R) + n_offsets + sel


def _outputs(st: _LoopState) -> dict[str, np.ndarray | None]:
    """The result fields of :func:`numpy_loop`, runs first."""
    F, G, G_pool, err_new, experts, tasks_hist = st.curves
    return dict(
        F=F.T.copy(),
        G=G.T.copy(),
        G_pool=G_pool.T.copy(),
        err_new=err_new.T.copy(),
        experts=experts.T.copy(),
        tasks=tasks_hist.T.copy(),
        T2=st.T2,
        gate_snapshots=st.snapshots,
        final_w=np.ascontiguousarray(st.w.transpose(2, 0, 1)),
        final_theta=np.ascontiguousarray(st.theta.transpose(2, 0, 1)),
        weights=st.weights,
    )
