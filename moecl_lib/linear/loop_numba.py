"""Round loop of the engine in the compiled kernel (:mod:`moecl_lib.linear.kernel`).

State is runs-first (``w``, ``theta``: (R, M, d); ``D``, ``C``: (R, M, N)); the kernel
runs one block of rounds per call, one run at a time, on the draws of
:func:`~moecl_lib.linear.draws.draw_rounds`, while a worker thread draws the next block.
Outputs are those of :func:`moecl_lib.linear.engine.simulate` (curves (R, T)).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import draws as _draws
from moecl_lib.linear.draws import draw_rounds, empty_draws
from moecl_lib.linear.results import curve_buffers
from moecl_lib.linear.routing import LB_CODES
from moecl_lib.linear.streams import RunStreams
from moecl_lib.linear.tasks import TaskPool, mean_signal_strength


def numba_loop(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
    progress: bool,
    prefetch: bool = True,
) -> dict[str, np.ndarray | None]:
    """Round loop of :func:`~moecl_lib.linear.engine.simulate` in the compiled kernel
    (runs-first state, one kernel call per block)."""
    args, out = _kernel_arrays(cfg, pool, snap_rounds, record_weights)
    _run_blocks(cfg, rng, args, progress, prefetch)
    if not record_weights:
        out["weights"] = None
    return out


def _kernel_arrays(
    cfg: ExperimentConfig,
    pool: TaskPool,
    snap_rounds: list[int],
    record_weights: bool,
) -> tuple[tuple[Any, ...], dict[str, np.ndarray | None]]:
    """Initial kernel state and output buffers.

    Returns ``(pool_arrays, state, outputs, knobs)`` for
    :func:`~moecl_lib.linear.kernel.run_block` and the result dictionary of
    :func:`numba_loop`, whose arrays the kernel fills in place.
    """
    from moecl_lib.linear.kernel import (
        TERMINATION_CODES,
        KernelKnobs,
        KernelOutputs,
        KernelState,
        PoolArrays,
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
    # empty_draws leaves beta/pos, route_noise None otherwise
    has_signal, routed = cfg.signal != "none", M > 1
    active = np.full(R, routed)
    T2 = np.full(R, -1, dtype=np.int64)
    gates = np.zeros((R, M, N), dtype=dtype)
    gp = np.zeros((R, N), dtype=np.int64)
    F, G, G_pool, err_new, experts, tasks_hist = curve_buffers((R, T), dtype, np.int32)
    weights = np.empty((R, T, M, d) if record_weights else (1, 1, 1, 1), dtype=dtype)
    snap_slot = np.full(T + 1, -1, dtype=np.int64)
    snap_slot[snap_rounds] = np.arange(len(snap_rounds))
    snapshots = np.empty((R, len(snap_rounds), N, M), dtype=dtype)
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
    out = dict(
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
        weights=weights,
    )
    return (pool_arrays, state, outputs, knobs), out


def _run_blocks(
    cfg: ExperimentConfig,
    rng: np.random.Generator | RunStreams,
    args: tuple[Any, ...],
    progress: bool,
    prefetch: bool,
) -> None:
    """Draw the rounds block by block and run the kernel on each, in order.

    The draws of block i + 1 are made in a worker thread, into buffer set
    (i + 1) % 2, while the kernel (which releases the GIL) runs block i from set
    i % 2: the generator is still consumed block after block in order. Without
    ``prefetch`` the next block is drawn after the kernel returns (same numbers).
    """
    from moecl_lib.linear.kernel import BlockDraws, run_block

    M, T = cfg.n_experts, cfg.T
    has_signal, routed = cfg.signal != "none", M > 1
    no_float, no_int = np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int64)
    no_route = np.zeros((1, 1, 1))
    block = _draws.block_length(cfg)
    sizes = [min(block, T - t0) for t0 in range(0, T, block)]
    bar = tqdm(total=T, disable=not progress, desc=f"M={M} rounds", leave=False)
    t = 0
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
                *args,
            )
            if not prefetch and i + 1 < len(sizes):
                pending = worker.submit(
                    draw_rounds, cfg, rng, sizes[i + 1], out=buffers[(i + 1) % 2]
                )
            t += len(draws)
            bar.update(len(draws))
    bar.close()
