"""Batched simulation of Algorithm 1 (linear MoE for continual learning) over R
independent runs.

Conventions (SPEC §3-§5): gate ``h_m = theta_m^T xbar_t`` with ``xbar_t = X_t 1`` (sum
of the round's samples); noisy top-1 routing ``argmax_m h_m + Unif[0, lambda]``; the
selected expert moves to the minimum-change interpolator (Eq. 4: the orthogonal
projection of ``w_{n_t} - w`` onto ``span(X_t)``, computed from an orthonormal basis,
never an inverse); the router takes one GD step on locality + load-balancing loss
(explicit gradient of SPEC §4.5) unless frozen by the termination rule.

Metrics are exact and incremental, O(N d + M) per round and run: with
``D[m, n] = ||w^(m) - w_n||^2`` and ``C[m, n]`` the number of past arrivals of task n
learned by expert m, ``G_t = sum(C_t * D_t) / t`` and
``F_t = (sum(C_{t-1} * D_t) - sum_{tau<t} E_tau(tau)) / (t - 1)``; only row ``m_t`` of
``D`` changes in round t, and the per-expert sums ``sum_n C[m, n] D[m, n]`` are
recomputed for that row only (no drift).

Random numbers: :func:`~moecl_lib.linear.draws.draw_rounds` is the single source of
randomness after the task pool (see :mod:`moecl_lib.linear.draws`). Speed notes and
measured numbers: ``book/performance.md`` and ``moecl bench``.

Two implementations of the round loop, chosen by ``cfg.backend``: the compiled kernel
of :mod:`moecl_lib.linear.kernel` driven by :mod:`moecl_lib.linear.loop_numba` (default
when numba imports; one run at a time, the next block's draws made in a worker thread)
and the numpy loop of :mod:`moecl_lib.linear.loop_numpy` (vectorised over runs). They
compute the same recursion in the same order of operations on the same draws (tested
equal to 1e-11; expert parameters and F/G bit for bit in practice).

This module keeps the public names of the draws and block bases importable
(``RoundDraws``, ``draw_rounds``, ``empty_draws``, ``round_inputs``, ``block_length``,
``orthonormal_rows``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.bases import _TORCH_QR_MIN_SIZE, _block_bases, orthonormal_rows
from moecl_lib.linear.draws import (
    RoundDraws,
    block_length,
    draw_rounds,
    empty_draws,
    round_inputs,
)
from moecl_lib.linear.loop_numba import numba_loop as _numba_loop
from moecl_lib.linear.loop_numpy import numpy_loop as _numpy_loop
from moecl_lib.linear.results import RunCurves
from moecl_lib.linear.streams import RunStreams, make_streams, task_pool
from moecl_lib.linear.tasks import TaskPool

__all__ = [
    "RoundDraws",
    "SimulationResult",
    "_TORCH_QR_MIN_SIZE",
    "_block_bases",
    "_numba_loop",
    "_numpy_loop",
    "block_length",
    "draw_rounds",
    "empty_draws",
    "make_streams",
    "orthonormal_rows",
    "resolve_backend",
    "round_inputs",
    "simulate",
]

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]


@dataclass
class SimulationResult(RunCurves):
    """Output of :func:`simulate`. Index ``t - 1`` of a round axis holds the value after
    round t.

    Attributes (besides the :class:`~moecl_lib.linear.results.RunCurves` fields
    ``F, G, G_pool, err_new, experts, tasks``; ``G_pool`` uses the noise-free router
    choice on the mean signal ``E[beta] v_n``):
        config: the configuration that produced it.
        T2: round at which the router was frozen (-1 if never), (R,).
        pool: the task pool.
        snapshot_rounds: rounds at which gates on the task signals were recorded.
        gate_snapshots: ``theta^(m) . (E[beta] v_n)`` after those rounds, (R, S, N, M).
        final_w: expert parameters after round T, (R, M, d).
        final_theta: router parameters after round T, (R, M, d).
        weights: optional per-round expert parameters (R, T, M, d)
            (``record_weights=True``).
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


def simulate(
    cfg: ExperimentConfig,
    *,
    progress: bool = False,
    record_weights: bool = False,
    rng: np.random.Generator | RunStreams | None = None,
    prefetch: bool = True,
) -> SimulationResult:
    """Run Algorithm 1 for ``cfg.n_runs`` independent runs at once (``n_experts = 1``:
    single expert).

    Implementation (exact; see the module docstring and ``book/performance.md``): the
    random draws and everything that does not depend on the state (``X_t``, an
    orthonormal basis ``Q_t`` of ``span(X_t)``, ``xbar_t``) are computed for a block of
    rounds at once; a round then costs O(M d + d s + N d + M N) per run. The expert
    update is the projection ``w <- w + Q_t Q_t^T (w_{n_t} - w)``, which equals Eq. (4)
    because labels are noise-free. Router work is restricted to the runs whose router
    is still active.

    Args:
        cfg: validated configuration.
        progress: show a tqdm progress bar over rounds.
        record_weights: also return every expert's parameters after every round
            (memory R*T*M*d).
        rng: random source; defaults to :func:`~moecl_lib.linear.streams.make_streams`
            of ``cfg`` (``cfg.streams``: one shared generator, or per-run streams).
        prefetch: numba backend: draw the next block in a second thread (one core per
            simulation with False, as in a grid's worker); the numbers do not change.

    ``cfg.backend`` picks the implementation of the round loop: the compiled kernel of
    :mod:`moecl_lib.linear.kernel` (``"numba"``; ``"auto"`` when numba imports) or the
    numpy loop of :mod:`moecl_lib.linear.loop_numpy` (every state array with the run
    axis last and contiguous). Both consume the same draws.
    """
    start = time.perf_counter()
    rng = make_streams(cfg) if rng is None else rng
    pool = task_pool(cfg, rng)
    snap_every = cfg.snapshot_every
    snap_rounds = [t for t in range(1, cfg.T + 1) if snap_every and t % snap_every == 0]
    if not snap_rounds or snap_rounds[-1] != cfg.T:
        snap_rounds.append(cfg.T)
    if resolve_backend(cfg.backend) == "numba":
        out = _numba_loop(
            cfg, rng, pool, snap_rounds, record_weights, progress, prefetch
        )
    else:
        out = _numpy_loop(cfg, rng, pool, snap_rounds, record_weights, progress)
    return SimulationResult(
        config=cfg,
        pool=pool,
        snapshot_rounds=np.asarray(snap_rounds),
        wall_time=time.perf_counter() - start,
        **out,
    )


def resolve_backend(backend: str) -> str:
    """``"numba"`` or ``"numpy"`` for a ``cfg.backend`` value (``"auto"``: numba when
    it can be imported)."""
    from moecl_lib.linear import kernel as kernels

    if backend == "auto":
        return "numba" if kernels.AVAILABLE else "numpy"
    if backend == "numba" and not kernels.AVAILABLE:
        raise ImportError(
            f"backend='numba' needs numba ({kernels.IMPORT_ERROR}); use backend='numpy'"
        )
    return backend
