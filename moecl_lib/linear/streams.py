"""Random streams of the linear simulations: one family of streams per run (default),
or one generator shared by the batch.

``cfg.streams = "per_run"`` (default): run ``i = cfg.first_run + r`` draws from its own
streams, children of ``SeedSequence(seed, spawn_key=(i,))``: a numpy ``PCG64`` generator
for its task pool, and compiled xoshiro256** streams (:mod:`moecl_lib.linear.rng`) for
its task indices, Gaussian columns, signal strengths, signal positions and routing
noise. Each kind of draw is consumed in round order from its own stream, and integers
are derived from doubles (``floor(N u)``), so a run's numbers depend only on
(configuration, seed, run index): not on the batch size, the block length, or the
process. A shared pool (``shared_pool=True``) comes from the root ``SeedSequence(seed)``
itself.

``cfg.streams = "shared"``: one ``numpy.random.Generator(PCG64(seed))`` drives the task
pool and every round of the whole batch, consumed round by round
(:func:`moecl_lib.linear.engine.draw_rounds`); run r's numbers then depend on how many
runs are drawn together. This was the default before per-run streams; it is kept so
that older results can be re-created.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.rng import WORDS, fill_rounds, seed_states
from moecl_lib.linear.tasks import TaskPool, make_task_pool

KINDS = ("pool", "tasks", "noise", "beta", "pos", "route")
"""The streams of one run, in spawn order."""


class RunStreams:
    """Per-run generators of ``cfg.n_runs`` runs starting at global run index
    ``cfg.first_run``."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.seed = cfg.seed
        self.first_run = cfg.first_run
        children = [
            np.random.SeedSequence(cfg.seed, spawn_key=(cfg.first_run + r,)).spawn(
                len(KINDS)
            )
            for r in range(cfg.n_runs)
        ]
        self.pool_rngs = [np.random.Generator(np.random.PCG64(c[0])) for c in children]
        states = seed_states([ss for c in children for ss in c[1:]])
        self.states = states.reshape(cfg.n_runs, len(KINDS) - 1, WORDS)

    def pool(self, cfg: ExperimentConfig) -> TaskPool:
        """The task pool: each run's own (drawn as a one-run batch from its pool
        stream), or one shared pool from the root seed sequence."""
        one = dataclasses.replace(cfg, n_runs=1, first_run=0, streams="shared")
        if cfg.shared_pool:
            p = make_task_pool(
                one, np.random.default_rng(np.random.SeedSequence(cfg.seed))
            )
            W, V = p.W[:1], p.V[:1]
            W = np.broadcast_to(W, (cfg.n_runs,) + W.shape[1:])
            V = np.broadcast_to(V, (cfg.n_runs,) + V.shape[1:])
            return TaskPool(
                W=np.ascontiguousarray(W),
                V=np.ascontiguousarray(V),
                cluster_of=p.cluster_of,
            )
        one = dataclasses.replace(one, shared_pool=False)
        pools = [make_task_pool(one, g) for g in self.pool_rngs]
        return TaskPool(
            W=np.ascontiguousarray(np.concatenate([p.W for p in pools])),
            V=np.ascontiguousarray(np.concatenate([p.V for p in pools])),
            cluster_of=pools[0].cluster_of,
        )

    def fill(self, cfg: ExperimentConfig, out: Any, n_rounds: int) -> None:
        """Fill the first ``n_rounds`` rounds of ``out`` (an engine ``RoundDraws``) in
        compiled code (:func:`moecl_lib.linear.rng.fill_rounds`); the Gaussian columns
        come out scaled by ``sigma_t``, and a constant signal strength is set here."""
        uniform_beta = out.beta is not None and cfg.beta_dist == "uniform"
        empty_f, empty_i = np.empty((0, 0)), np.empty((0, 0), dtype=np.int64)
        fill_rounds(
            self.states,
            int(n_rounds),
            cfg.n_tasks,
            cfg.s,
            float(cfg.lam),
            float(cfg.sigma_t),
            float(cfg.beta),
            uniform_beta,
            out.tasks,
            out.noise,
            out.beta if out.beta is not None else empty_f,
            out.pos if out.pos is not None else empty_i,
            out.route_noise if out.route_noise is not None else np.empty((0, 0, 0)),
        )
        if out.beta is not None and not uniform_beta:
            out.beta[:n_rounds] = cfg.beta


def task_pool(cfg: ExperimentConfig, rng: np.random.Generator | RunStreams) -> TaskPool:
    """The task pool drawn from ``rng`` (a shared generator or :class:`RunStreams`)."""
    if isinstance(rng, RunStreams):
        return rng.pool(cfg)
    return make_task_pool(cfg, rng)


def make_streams(cfg: ExperimentConfig) -> np.random.Generator | RunStreams:
    """The random source of a simulation of ``cfg``: a shared generator or
    :class:`RunStreams`."""
    if cfg.streams == "per_run":
        return RunStreams(cfg)
    return np.random.default_rng(cfg.seed)
