"""Batched simulation of Algorithm 1 (linear MoE for continual learning) over R independent runs.

Conventions (SPEC §3-§5): gate ``h_m = theta_m^T xbar_t`` with ``xbar_t = X_t 1`` (sum of the round's
samples); noisy top-1 routing ``argmax_m h_m + Unif[0, lambda]``; the selected expert moves to the
minimum-change interpolator (Eq. 4: the orthogonal projection of ``w_{n_t} - w`` onto ``span(X_t)``, computed
from an orthonormal basis, never an inverse); the router takes one GD step on locality + load-balancing loss
(explicit gradient of SPEC §4.5) unless frozen by the termination rule.

Metrics are exact and incremental, O(N d + M) per round and run: with ``D[m, n] = ||w^(m) - w_n||^2`` and
``C[m, n]`` the number of past arrivals of task n learned by expert m,
``G_t = sum(C_t * D_t) / t`` and ``F_t = (sum(C_{t-1} * D_t) - sum_{tau<t} E_tau(tau)) / (t - 1)``; only row
``m_t`` of ``D`` changes in round t, and the per-expert sums ``sum_n C[m, n] D[m, n]`` are recomputed for that
row only (no drift).

Random numbers: :func:`draw_rounds` is the single source of randomness after the task pool, consumed round by
round in the order of the original per-round engine (so a seed gives the same draws as before the
optimisation, and the same draws as the naive reference of :mod:`moecl_lib.tools.bench`). Speed notes and measured
numbers: ``book/performance.md`` and ``moecl bench``.

Two implementations of the round loop, chosen by ``cfg.backend``: the compiled kernel of
:mod:`moecl_lib.linear.kernel` (default when numba imports; one run at a time, the next block's draws made in a worker
thread) and the numpy loop below (vectorised over runs). They compute the same recursion in the same order of
operations on the same draws (tested equal to 1e-11; expert parameters and F/G bit for bit in practice).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.results import RunCurves, curve_buffers
from moecl_lib.linear.routing import (
    LB_CODES,
    argmax_first,
    aux_scale,
    balance_signal,
    coefficients_runs_last,
    gap_passes,
    locality_weight,
    route,
    shape_route_noise,
    softmax,
)
from moecl_lib.linear.streams import RunStreams, make_streams, task_pool
from moecl_lib.linear.tasks import TaskPool, mean_signal_strength

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]


# ----------------------------------------------------------------------------------------------
# Result container
# ----------------------------------------------------------------------------------------------
@dataclass
class SimulationResult(RunCurves):
    """Output of :func:`simulate`. Index ``t - 1`` of a round axis holds the value after round t.

    Attributes (besides the :class:`~moecl_lib.linear.results.RunCurves` fields ``F, G, G_pool, err_new,
    experts, tasks``; ``G_pool`` uses the noise-free router choice on the mean signal ``E[beta] v_n``):
        config: the configuration that produced it.
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
# Random draws (one function for the batched engine and the per-run reference of moecl_lib.tools.bench)
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


def draw_rounds(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    n_rounds: int,
    *,
    out: RoundDraws | None = None,
) -> RoundDraws:
    """Draw the random inputs of ``n_rounds`` consecutive rounds (all runs), round by round.

    The generator is consumed in exactly the order of the original per-round engine (for each round: task
    indices, Gaussian columns, [uniform signal strengths], signal positions, [routing noise]), so a seed gives
    the same stream whatever the block length. Draws are float64 whatever ``cfg.dtype`` (a float32 run sees
    the rounded float64 draws, which is what makes the float32/float64 comparison meaningful). The routing
    noise is drawn as ``Unif[0, lambda]`` and shaped to ``cfg.route_noise`` afterwards (:func:`_shape_route`):
    every law consumes the same draws.

    ``out``: buffers from :func:`empty_draws` with room for at least ``n_rounds`` rounds, filled in place (the
    result holds views of their first ``n_rounds`` rounds); saves allocating and page-faulting fresh arrays for
    every block. The numbers do not depend on it.
    """
    R, N, M, s = cfg.n_runs, cfg.n_tasks, cfg.n_experts, cfg.s
    B = int(n_rounds)
    if out is None:
        out = empty_draws(cfg, B)
    elif len(out) < B:
        raise ValueError(f"out holds {len(out)} rounds, {B} requested")
    if isinstance(rng, RunStreams):  # per-run streams (moecl_lib.linear.streams)
        rng.fill(cfg, out, B)
        _shape_route(cfg, out.route_noise, B)
        return RoundDraws(
            tasks=out.tasks[:B],
            noise=out.noise[:B],
            beta=out.beta[:B] if out.beta is not None else None,
            pos=out.pos[:B] if out.pos is not None else None,
            route_noise=out.route_noise[:B] if out.route_noise is not None else None,
        )
    tasks, noise = out.tasks[:B], out.noise[:B]
    beta = out.beta[:B] if out.beta is not None else None
    pos = out.pos[:B] if out.pos is not None else None
    route = out.route_noise[:B] if out.route_noise is not None else None
    uniform_beta = beta is not None and cfg.beta_dist == "uniform"
    if beta is not None and not uniform_beta:
        beta[...] = cfg.beta
    for b in range(B):
        tasks[b] = rng.integers(N, size=R)
        rng.standard_normal(
            out=noise[b]
        )  # == rng.normal(0, sigma_t) / sigma_t, bit for bit
        if pos is not None:
            if uniform_beta:
                beta[b] = cfg.beta * (1.0 - rng.random(R))  # Unif(0, beta]
            pos[b] = rng.integers(s, size=R)
        if route is not None:
            route[b] = rng.uniform(0.0, cfg.lam, size=(R, M))
    noise *= cfg.sigma_t
    _shape_route(cfg, out.route_noise, B)
    return RoundDraws(tasks=tasks, noise=noise, beta=beta, pos=pos, route_noise=route)


def _shape_route(cfg: ExperimentConfig, route: FloatArray | None, B: int) -> None:
    """Turn the ``Unif[0, lambda]`` routing noise of the first ``B`` rounds into the law
    ``cfg.route_noise`` in place (:func:`~moecl_lib.linear.routing.shape_route_noise`);
    the default law leaves the draws untouched."""
    if route is not None and cfg.route_noise != "uniform":
        route[:B] = shape_route_noise(route[:B], cfg.lam, cfg.route_noise)


def empty_draws(cfg: ExperimentConfig, n_rounds: int) -> RoundDraws:
    """Uninitialised buffers for :func:`draw_rounds` (``beta``/``pos`` None without a signal, ``route_noise``
    None for M = 1)."""
    R, M, d, s, B = cfg.n_runs, cfg.n_experts, cfg.d, cfg.s, int(n_rounds)
    has_signal = cfg.signal != "none"
    return RoundDraws(
        tasks=np.empty((B, R), dtype=np.int64),
        noise=np.empty((B, R, d, s)),
        beta=np.empty((B, R)) if has_signal else None,
        pos=np.empty((B, R), dtype=np.int64) if has_signal else None,
        route_noise=np.empty((B, R, M)) if M > 1 else None,
    )


def round_inputs(
    cfg: ExperimentConfig, pool: TaskPool, draws: RoundDraws
) -> FloatArray:
    """Feature matrices ``X_t`` (Definition 1) of a block of draws, (B, R, d, s) in ``cfg.dtype``.

    The Gaussian columns are ``draws.noise``; column ``pos`` is ``beta_t v_{n_t}`` (unless ``signal="none"``).
    Labels are noise-free, ``y_t = X_t^T w_{n_t}``. (The engine builds the same numbers in its own layout.)
    """
    X = draws.noise.astype(np.dtype(cfg.dtype), copy=True)
    if draws.pos is not None and draws.beta is not None:
        B, R = draws.tasks.shape
        bb, rr = np.meshgrid(np.arange(B), np.arange(R), indexing="ij")
        X[bb, rr, :, draws.pos] = draws.beta[..., None] * pool.V[rr, draws.tasks]
    return X


def _block_bases(
    cfg: ExperimentConfig,
    pool: TaskPool,
    draws: RoundDraws,
    dtype: np.dtype,
    need_xbar: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """State-independent work of a block: ``Q_t^T`` (s, d, B, R) and ``xbar_t = X_t 1`` (d, B, R).

    Small matrices (``s * d <= _TORCH_QR_MIN_SIZE``, e.g. Figure 2): ``X^T`` is laid out runs-last and
    orthonormalised by the vectorised Gram-Schmidt :func:`orthonormal_rows`. Large ones (e.g. d=200, s=20):
    Cholesky-QR with torch's batched BLAS/LAPACK in the runs-first layout, transposed once at the end.
    """
    B, R = draws.tasks.shape
    d, s, K = cfg.d, cfg.s, B * R
    has_signal = draws.pos is not None and draws.beta is not None
    if has_signal:
        vals = (
            draws.beta[..., None] * pool.V[np.arange(R), draws.tasks]
        )  # (B, R, d) signal rows
    if s * d <= _TORCH_QR_MIN_SIZE:
        XT = np.ascontiguousarray(
            draws.noise.transpose(3, 2, 0, 1), dtype=dtype
        )  # (s, d, B, R)
        if has_signal:
            index = (
                draws.pos.reshape(-1) * (d * K)
                + np.arange(K)
                + (np.arange(d) * K)[:, None]
            )  # (d, K)
            XT.reshape(-1)[index] = vals.reshape(K, d).T
        xbar = XT.sum(axis=0) if need_xbar else None
        return orthonormal_rows(XT, overwrite=True), xbar
    import torch

    Xa = np.ascontiguousarray(draws.noise.swapaxes(-1, -2), dtype=dtype).reshape(
        K, s, d
    )  # (K, s, d)
    if has_signal:
        Xa[np.arange(K), draws.pos.reshape(-1)] = vals.reshape(K, d)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic, and fair on a shared machine
    try:
        Xt = torch.from_numpy(Xa)
        L = torch.linalg.cholesky(Xt @ Xt.transpose(1, 2))
        Qa = torch.linalg.solve_triangular(L, Xt, upper=False).numpy()
    finally:
        torch.set_num_threads(threads)
    QT = np.ascontiguousarray(Qa.reshape(B, R, s, d).transpose(2, 3, 0, 1))
    xbar = (
        np.ascontiguousarray(Xa.sum(axis=1).reshape(B, R, d).transpose(2, 0, 1))
        if need_xbar
        else None
    )
    return QT, xbar


_TORCH_QR_MIN_SIZE = 400
"""Above this ``s * d`` the block bases are computed by Cholesky-QR in torch (see :func:`_block_bases`)."""


def orthonormal_rows(XT: FloatArray, overwrite: bool = False) -> FloatArray:
    """Orthonormal basis of the row span of each ``X^T`` in a batch laid out as (s, d, ...), ``s <= d``.

    Modified Gram-Schmidt vectorised over the trailing batch axes (which should be contiguous): rows are
    normalised one at a time and removed from the rows after them. ``Q Q^T`` is the orthogonal projector onto
    ``span(X)``, the operator of the min-norm update (Eq. 4); MGS loses orthogonality only like
    ``cond(X) * eps`` (the normal equations of the original engine: ``cond(X)^2 * eps``). Looping LAPACK
    over millions of tiny matrices is several times slower. Returns ``Q^T`` in the layout of ``XT`` (computed
    in place when ``overwrite`` and ``XT`` is contiguous).
    """
    s, d = XT.shape[:2]
    V = XT.reshape(s, d, -1)  # (s, d, K)
    if not (overwrite and np.shares_memory(V, XT)):
        V = V.copy()
    for j in range(s):
        V[j] /= np.sqrt(np.einsum("dk,dk->k", V[j], V[j]))
        if j + 1 < s:
            coef = np.einsum("dk,idk->ik", V[j], V[j + 1 :])  # (s-j-1, K)
            V[j + 1 :] -= coef[:, None, :] * V[j][None]
    return V.reshape(XT.shape)


def block_length(cfg: ExperimentConfig) -> int:
    """Rounds drawn and pre-processed at once: about 2**18 entries of ``X`` per block (memory-bounded);
    2**21 with per-run streams, whose cost is per block and run (their numbers do not depend on it)."""
    per_round = cfg.n_runs * cfg.d * cfg.s
    budget = 1 << (21 if cfg.streams == "per_run" else 18)
    return int(max(1, min(cfg.T, 256, budget // per_round)))


# ----------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------
def simulate(
    cfg: ExperimentConfig,
    *,
    progress: bool = False,
    record_weights: bool = False,
    rng: np.random.Generator | RunStreams | None = None,
    prefetch: bool = True,
) -> SimulationResult:
    """Run Algorithm 1 for ``cfg.n_runs`` independent runs at once (``n_experts = 1``: single expert).

    Implementation (exact; see the module docstring and ``book/performance.md``): every state array keeps the
    run axis LAST and contiguous (``w``, ``theta``: (M, d, R); ``D``, ``C``: (M, N, R)), so each operation is a
    stream over runs. The random draws and everything that does not depend on the state (``X_t``, an
    orthonormal basis ``Q_t`` of ``span(X_t)``, ``xbar_t``) are computed for a block of rounds at once; a
    round then costs O(M d + d s + N d + M N) per run. The expert update is the projection
    ``w <- w + Q_t Q_t^T (w_{n_t} - w)``, which equals Eq. (4) because labels are noise-free. Router work is
    restricted to the runs whose router is still active.

    Args:
        cfg: validated configuration.
        progress: show a tqdm progress bar over rounds.
        record_weights: also return every expert's parameters after every round (memory R*T*M*d).
        rng: random source; defaults to :func:`~moecl_lib.linear.streams.make_streams` of ``cfg``
            (``cfg.streams``: one shared generator, or per-run streams).
        prefetch: numba backend: draw the next block in a second thread (one core per
            simulation with False, as in a grid's worker); the numbers do not change.

    ``cfg.backend`` picks the implementation of the round loop: the compiled kernel of
    :mod:`moecl_lib.linear.kernel` (``"numba"``; ``"auto"`` when numba imports) or the numpy loop described above.
    Both consume the same draws.
    """
    start = time.perf_counter()
    rng = make_streams(cfg) if rng is None else rng
    pool = task_pool(cfg, rng)
    snap_every = cfg.snapshot_every
    snap_rounds = [t for t in range(1, cfg.T + 1) if snap_every and t % snap_every == 0]
    if not snap_rounds or snap_rounds[-1] != cfg.T:
        snap_rounds.append(cfg.T)
    loop = _numba_loop if resolve_backend(cfg.backend) == "numba" else _numpy_loop
    if loop is _numba_loop:
        out = loop(cfg, rng, pool, snap_rounds, record_weights, progress, prefetch)
    else:
        out = loop(cfg, rng, pool, snap_rounds, record_weights, progress)
    return SimulationResult(
        config=cfg,
        pool=pool,
        snapshot_rounds=np.asarray(snap_rounds),
        wall_time=time.perf_counter() - start,
        **out,
    )


def resolve_backend(backend: str) -> str:
    """``"numba"`` or ``"numpy"`` for a ``cfg.backend`` value (``"auto"``: numba when it can be imported)."""
    from moecl_lib.linear import kernel as kernels

    if backend == "auto":
        return "numba" if kernels.AVAILABLE else "numpy"
    if backend == "numba" and not kernels.AVAILABLE:
        raise ImportError(
            f"backend='numba' needs numba ({kernels.IMPORT_ERROR}); use backend='numpy'"
        )
    return backend


def _numba_loop(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
    progress: bool,
    prefetch: bool = True,
) -> dict[str, np.ndarray | None]:
    """Round loop of :func:`simulate` in the compiled kernel (runs-first state, one kernel call per block)."""
    from moecl_lib.linear.kernel import (
        TERMINATION_CODES,
        BlockDraws,
        KernelKnobs,
        KernelOutputs,
        KernelState,
        PoolArrays,
        run_block,
    )

    dtype = np.dtype(cfg.dtype)
    R, M, N, d, T = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T
    W = np.ascontiguousarray(pool.W, dtype=dtype)  # (R, N, d)
    V = np.ascontiguousarray(pool.V, dtype=np.float64)
    signal_in = np.ascontiguousarray(mean_signal_strength(cfg) * pool.V, dtype=dtype)
    w = np.zeros((R, M, d), dtype=dtype)
    theta = np.zeros((R, M, d), dtype=dtype)
    counts = np.zeros((R, M), dtype=dtype)
    D = np.repeat(np.einsum("rnd,rnd->rn", W, W)[:, None], M, axis=1)  # (R, M, N)
    C = np.zeros((R, M, N), dtype=dtype)
    P = np.zeros((R, M), dtype=dtype)
    S = np.zeros(R, dtype=dtype)
    has_signal, routed = (
        cfg.signal != "none",
        M > 1,
    )  # empty_draws leaves beta/pos, route_noise None otherwise
    active = np.full(R, routed)
    T2 = np.full(R, -1, dtype=np.int64)
    gates = np.zeros((R, M, N), dtype=dtype)
    gp = np.zeros((R, N), dtype=np.int64)
    F, G, G_pool, err_new, experts, tasks_hist = curve_buffers((R, T), dtype, np.int32)
    weights = np.empty((R, T, M, d) if record_weights else (1, 1, 1, 1), dtype=dtype)
    snap_slot = np.full(T + 1, -1, dtype=np.int64)
    snap_slot[snap_rounds] = np.arange(len(snap_rounds))
    snapshots = np.empty((R, len(snap_rounds), N, M), dtype=dtype)
    no_float, no_int = np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int64)
    no_route = np.zeros((1, 1, 1))
    term = TERMINATION_CODES[cfg.termination]

    pool_arrays = PoolArrays(W, V, signal_in)
    pi_sum = np.zeros((R, M), dtype=dtype)
    state = KernelState(w, theta, counts, D, C, P, S, active, T2, gates, gp, pi_sum)
    outputs = KernelOutputs(
        F, G, G_pool, err_new, experts, tasks_hist, weights, snap_slot, snapshots
    )
    knobs = KernelKnobs(
        float(cfg.lam),
        float(cfg.eta),
        float(cfg.alpha),
        float(cfg.gamma_value),
        int(cfg.T1_value),
        term,
        cfg.aux_grad == "decay",
        has_signal,
        record_weights,
        LB_CODES[cfg.lb_loss],
        cfg.locality == "l2sq",
    )
    block = block_length(cfg)
    sizes = [min(block, T - t0) for t0 in range(0, T, block)]
    bar = tqdm(total=T, disable=not progress, desc=f"M={M} rounds", leave=False)
    t = 0
    # The draws of block i + 1 are made in a worker thread, into buffer set (i + 1) % 2, while the kernel (which
    # releases the GIL) runs block i from set i % 2: the generator is still consumed block after block in order.
    buffers = [empty_draws(cfg, sizes[0]) for _ in range(min(2, len(sizes)))]
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(draw_rounds, cfg, rng, sizes[0], out=buffers[0])
        for i in range(len(sizes)):
            draws = pending.result()
            if prefetch and i + 1 < len(sizes):
                pending = worker.submit(
                    draw_rounds, cfg, rng, sizes[i + 1], out=buffers[(i + 1) % 2]
                )
            run_block(
                t,
                BlockDraws(
                    draws.tasks,
                    draws.noise,
                    draws.beta if has_signal else no_float,
                    draws.pos if has_signal else no_int,
                    draws.route_noise if routed else no_route,
                ),
                pool_arrays,
                state,
                outputs,
                knobs,
            )
            if not prefetch and i + 1 < len(sizes):
                pending = worker.submit(
                    draw_rounds, cfg, rng, sizes[i + 1], out=buffers[(i + 1) % 2]
                )
            t += len(draws)
            bar.update(len(draws))
    bar.close()
    return dict(
        F=F,
        G=G,
        G_pool=G_pool,
        err_new=err_new,
        experts=experts,
        tasks=tasks_hist,
        T2=T2,
        gate_snapshots=snapshots,
        final_w=w,
        final_theta=theta,
        weights=weights if record_weights else None,
    )


def _numpy_loop(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
    progress: bool,
) -> dict[str, np.ndarray | None]:
    """Round loop of :func:`simulate` in numpy, vectorised over runs (runs-last state, see :func:`simulate`)."""
    dtype = np.dtype(cfg.dtype)
    R, M, N, d, T = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T
    runs = np.arange(R)
    W = np.ascontiguousarray(pool.W.transpose(1, 2, 0), dtype=dtype)  # (N, d, R)
    signal_in = np.ascontiguousarray(
        (mean_signal_strength(cfg) * pool.V).transpose(1, 2, 0), dtype=dtype
    )  # noise-free router input, (N, d, R)
    gamma, T1 = cfg.gamma_value, cfg.T1_value
    lam, eta = float(cfg.lam), float(cfg.eta)
    routed = M > 1

    w = np.zeros((M, d, R), dtype=dtype)
    theta = np.zeros((M, d, R), dtype=dtype)
    counts = np.zeros((M, R), dtype=dtype)
    active = np.full(R, routed)
    n_active = R if routed else 0
    T2 = np.full(R, -1, dtype=np.int64)
    # D[m, n, r] = ||w^(m) - w_n||^2 ; C[m, n, r] = arrivals of task n learned by expert m;
    # P[m, r] = sum_n C[m, n, r] D[m, n, r] (recomputed for the one changed expert per round: no drift)
    D = np.repeat(np.einsum("ndr,ndr->nr", W, W)[None], M, axis=0)
    C = np.zeros((M, N, R), dtype=dtype)
    P = np.zeros((M, R), dtype=dtype)
    S = np.zeros(R, dtype=dtype)  # sum of err_new over past arrivals
    entropy = cfg.lb_loss == "entropy"
    pi_sum = np.zeros((M, R), dtype=dtype)  # router probabilities so far (entropy)
    w_flat, D_flat, C_flat, P_flat, counts_flat = (
        w.reshape(-1),
        D.reshape(-1),
        C.reshape(-1),
        P.reshape(-1),
        counts.reshape(-1),
    )
    d_offsets = (np.arange(d) * R)[:, None]  # (d, 1)
    n_offsets = (np.arange(N) * R)[:, None]  # (N, 1)
    zeros_r = np.zeros(R, dtype=np.intp)

    # per-round outputs are written as rows of (T, R) arrays and transposed at the end
    F, G, G_pool, err_new, experts, tasks_hist = curve_buffers((T, R), dtype, np.int32)
    weights = np.empty((R, T, M, d), dtype=dtype) if record_weights else None
    snapshots = np.empty((R, len(snap_rounds), N, M), dtype=dtype)
    snap_idx = 0
    gates = np.zeros((M, N, R), dtype=dtype)  # theta^(m) . signal_in_n
    gp_index = (
        n_offsets + runs
    )  # flat index of D[mhat(n), n, r] (mhat = 0 while theta = 0)

    block = block_length(cfg)
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
            np.einsum("ndr,dbr->nbr", signal_in, xbar) if routed else None
        )  # signal_in . xbar, (N, B, R)
        route_noise = (
            np.ascontiguousarray(draws.route_noise.transpose(0, 2, 1), dtype=dtype)
            if routed
            else None
        )  # (B, M, R)
        for b in range(B):
            t += 1
            n = draws.tasks[b]
            if routed:
                xb = xbar[:, b]  # (d, R)
                h = np.einsum("mdr,dr->mr", theta, xb)  # (M, R)
                m = route(h, route_noise[b])
            else:
                m = zeros_r
            # expert update, Eq. (4) with noise-free labels: w <- w + Q Q^T (w_n - w)
            w_index = m * (d * R) + runs + d_offsets  # (d, R) flat index of w[m, :, r]
            w_old = w_flat[w_index]
            Qb = QT[:, :, b]  # (s, d, R)
            coef = np.einsum("sdr,dr->sr", Qb, Wn[:, b] - w_old)
            delta = np.einsum("sr,sdr->dr", coef, Qb)
            w_new = w_old + delta
            w_flat[w_index] = w_new
            # metrics, incremental: only row m of D changes
            diff = w_new - W  # (N, d, R)
            Dm = np.einsum("ndr,ndr->nr", diff, diff)  # (N, R)
            row_index = m * (N * R) + runs  # flat index of [m, 0, r]
            D_flat[row_index + n_offsets] = Dm
            Cm = C_flat[row_index + n_offsets]  # counts before this arrival
            p_index = m * R + runs
            P_flat[p_index] = np.einsum("nr,nr->r", Cm, Dm)
            total = P.sum(axis=0)
            if t >= 2:
                F[t - 1] = (total - S) / (t - 1)
            e_new = Dm[n, runs]
            C_flat[row_index + n * R] += 1
            P_flat[p_index] += e_new
            S += e_new
            G[t - 1] = (total + e_new) / t
            err_new[t - 1] = e_new
            experts[t - 1] = m
            tasks_hist[t - 1] = n
            counts_flat[p_index] += 1
            if weights is not None:
                weights[:, t - 1] = w.transpose(2, 0, 1)
            # router (only the runs whose router is still active)
            if n_active:
                if cfg.termination == "gap" and t > T1:
                    if 2 * n_active > R:
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
                    T2[stop] = t
                    active &= ~stop
                    n_active = int(active.sum())
                if n_active:
                    # all runs at once (frozen ones get c = 0: theta - 0 * x == theta exactly) while most are
                    # active; otherwise only the active ones (fancy indexing costs O(active))
                    full = 2 * n_active > R
                    sel = slice(None) if full else np.flatnonzero(active)
                    hs, ms, xbs, xss = h[:, sel], m[sel], xb[:, sel], xs[:, b, sel]
                    pi = softmax(hs, axis=0)
                    delta_s = delta[:, sel]
                    dn = np.sqrt(np.einsum("dr,dr->r", delta_s, delta_s))
                    dn = locality_weight(dn, cfg.locality)
                    f = counts[:, sel] / t
                    if entropy:
                        pi_sum[:, sel] += pi
                    pbar = pi_sum[:, sel] / t if entropy else None
                    g = balance_signal(f, ms, pbar, cfg.lb_loss)
                    scale = aux_scale(cfg.alpha, M, t, cfg.aux_grad, cfg.lb_loss)
                    c = coefficients_runs_last(dn, pi, ms, g, scale)
                    c *= eta
                    if full:
                        if n_active < R:
                            c[:, ~active] = 0.0
                        theta -= c[:, None, :] * xbs[None]
                        gates -= (
                            c[:, None, :] * xss[None]
                        )  # theta . signal_in, updated in O(M N)
                        gp_index = argmax_first(gates) * (N * R) + n_offsets + runs
                    else:
                        theta[:, :, sel] -= c[:, None, :] * xbs[None]
                        gs = gates[:, :, sel] - c[:, None, :] * xss[None]
                        gates[:, :, sel] = gs
                        gp_index[:, sel] = argmax_first(gs) * (N * R) + n_offsets + sel
            np.multiply(D_flat[gp_index].sum(axis=0), 1.0 / N, out=G_pool[t - 1])
            if snap_idx < len(snap_rounds) and t == snap_rounds[snap_idx]:
                snapshots[:, snap_idx] = gates.transpose(2, 1, 0)
                snap_idx += 1
        bar.update(B)
    bar.close()

    return dict(
        F=F.T.copy(),
        G=G.T.copy(),
        G_pool=G_pool.T.copy(),
        err_new=err_new.T.copy(),
        experts=experts.T.copy(),
        tasks=tasks_hist.T.copy(),
        T2=T2,
        gate_snapshots=snapshots,
        final_w=np.ascontiguousarray(w.transpose(2, 0, 1)),
        final_theta=np.ascontiguousarray(theta.transpose(2, 0, 1)),
        weights=weights,
    )
