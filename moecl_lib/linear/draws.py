"""Random draws of the linear engine: every random number of a block of rounds.

:func:`draw_rounds` is the single source of randomness after the task pool, consumed
round by round in the order of the original per-round engine (so a seed gives the same
draws as before the optimisation, and the same draws as the naive reference of
:mod:`moecl_lib.tools.bench`). Arrays have leading axes ``(B, R)`` (rounds of the block,
runs); draws are float64 whatever ``cfg.dtype``. :func:`block_length` fixes how many
rounds the engine draws at once; the numbers do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.routing import shape_route_noise
from moecl_lib.linear.streams import RunStreams
from moecl_lib.linear.tasks import TaskPool

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass(frozen=True)
class RoundDraws:
    """Every random number of ``B`` consecutive rounds for all ``R`` runs.

    Leading axes ``(B, R)``.

    Attributes:
        tasks: arriving task ``n_t``, (B, R) int.
        noise: i.i.d. ``N(0, sigma_t^2)`` entries of ``X_t`` (float64; the signal
            column is overwritten when the inputs are built), (B, R, d, s).
        beta: signal strength ``beta_t``, (B, R); ``None`` when ``signal="none"``.
        pos: column of ``X_t`` holding the signal, (B, R); ``None`` when
            ``signal="none"``.
        route_noise: routing noise ``Unif[0, lambda]``, (B, R, M); ``None`` when
            ``M = 1``.
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
    """Draw the random inputs of ``n_rounds`` consecutive rounds (all runs), round by
    round.

    The generator is consumed in exactly the order of the original per-round engine
    (for each round: task indices, Gaussian columns, [uniform signal strengths], signal
    positions, [routing noise]), so a seed gives the same stream whatever the block
    length. Draws are float64 whatever ``cfg.dtype`` (a float32 run sees the rounded
    float64 draws, which is what makes the float32/float64 comparison meaningful). The
    routing noise is drawn as ``Unif[0, lambda]`` and shaped to ``cfg.route_noise``
    afterwards (:func:`_shape_route`): every law consumes the same draws.

    ``out``: buffers from :func:`empty_draws` with room for at least ``n_rounds``
    rounds, filled in place (the result holds views of their first ``n_rounds``
    rounds); saves allocating and page-faulting fresh arrays for every block. The
    numbers do not depend on it.
    """
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
    return _draw_shared(cfg, rng, out, B)


def _draw_shared(
    cfg: ExperimentConfig, rng: np.random.Generator, out: RoundDraws, B: int
) -> RoundDraws:
    """:func:`draw_rounds` from one shared generator, round by round, into ``out``."""
    R, N, M, s = cfg.n_runs, cfg.n_tasks, cfg.n_experts, cfg.s
    tasks, noise = out.tasks[:B], out.noise[:B]
    beta = out.beta[:B] if out.beta is not None else None
    pos = out.pos[:B] if out.pos is not None else None
    route = out.route_noise[:B] if out.route_noise is not None else None
    uniform_beta = beta is not None and cfg.beta_dist == "uniform"
    if beta is not None and not uniform_beta:
        beta[...] = cfg.beta
    for b in range(B):
        tasks[b] = rng.integers(N, size=R)
        # == rng.normal(0, sigma_t) / sigma_t, bit for bit
        rng.standard_normal(out=noise[b])
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
    """Uninitialised buffers for :func:`draw_rounds` (``beta``/``pos`` None without a
    signal, ``route_noise`` None for M = 1)."""
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
    """Feature matrices ``X_t`` (Definition 1) of a block of draws, (B, R, d, s) in
    ``cfg.dtype``.

    The Gaussian columns are ``draws.noise``; column ``pos`` is ``beta_t v_{n_t}``
    (unless ``signal="none"``). Labels are noise-free, ``y_t = X_t^T w_{n_t}``. (The
    engine builds the same numbers in its own layout.)
    """
    X = draws.noise.astype(np.dtype(cfg.dtype), copy=True)
    if draws.pos is not None and draws.beta is not None:
        B, R = draws.tasks.shape
        bb, rr = np.meshgrid(np.arange(B), np.arange(R), indexing="ij")
        X[bb, rr, :, draws.pos] = draws.beta[..., None] * pool.V[rr, draws.tasks]
    return X


def block_length(cfg: ExperimentConfig) -> int:
    """Rounds drawn and pre-processed at once: about 2**18 entries of ``X`` per block
    (memory-bounded); 2**21 with per-run streams, whose cost is per block and run
    (their numbers do not depend on it)."""
    per_round = cfg.n_runs * cfg.d * cfg.s
    budget = 1 << (21 if cfg.streams == "per_run" else 18)
    return int(max(1, min(cfg.T, 256, budget // per_round)))
