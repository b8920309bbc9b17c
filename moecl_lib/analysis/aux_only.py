"""Emulation (NOT the engine): Algorithm 1 with the locality gradient switched off after
a given round.

The engine (:mod:`moecl_lib.linear.engine`) has no switch for the locality term, and its
numerical behaviour is left unchanged. This module re-runs Algorithm 1 one run at a
time, on the engine's own random draws (:func:`moecl_lib.linear.engine.draw_rounds`,
same task pool and streams) and with the engine's routing rules
(:mod:`moecl_lib.linear.routing`), with one addition: after round ``locality_until`` the
router coefficient keeps only the load-balancing term (``||Delta_t||`` set to 0 in the
router step). With ``locality_until=None`` it is Algorithm 1 itself, and its routing
equals the engine's run for run (``tests/test_specialisation_boundary.py``). Only gates
and routing are recorded (no error metrics).

Gate values are ``g[r, k, n, m] = theta^(m) . (E[beta] v_n)`` after round ``rounds[k]``
(as the engine's snapshots); the *gate spread* of task ``n`` is ``max_m g - min_m g``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.linear.engine import draw_rounds
from moecl_lib.linear.routing import aux_scale, coefficients_runs_last, route, softmax
from moecl_lib.linear.streams import make_streams, task_pool
from moecl_lib.linear.tasks import mean_signal_strength


@dataclass(frozen=True)
class AuxOnlyRuns:
    """Routing and gate snapshots of the emulation: ``experts``, ``tasks`` (R, T);
    ``rounds`` (S,); ``gates`` (R, S, N, M)."""

    experts: NDArray[np.integer]
    tasks: NDArray[np.integer]
    rounds: NDArray[np.integer]
    gates: NDArray[np.floating]

    def spread(self) -> NDArray[np.floating]:
        """Gate spread ``max_m g - min_m g`` averaged over tasks, per run and snapshot,
        (R, S)."""
        g = self.gates
        return (g.max(axis=3) - g.min(axis=3)).mean(axis=2)


def simulate_aux_only(
    cfg: ExperimentConfig, locality_until: int | None, every: int = 50
) -> AuxOnlyRuns:
    """Algorithm 1 with termination ``never`` and the locality term dropped after
    ``locality_until``."""
    if cfg.termination != "never" or cfg.n_experts < 2:
        raise ConfigError(
            "simulate_aux_only needs termination='never' and n_experts >= 2"
        )
    if cfg.lb_loss != "paper" or cfg.locality != "l2":
        raise ConfigError("simulate_aux_only emulates lb_loss='paper', locality='l2'")
    rng = make_streams(cfg)
    pool = task_pool(cfg, rng)
    draws = draw_rounds(cfg, rng, cfg.T)
    M, N, d, T, R = cfg.n_experts, cfg.n_tasks, cfg.d, cfg.T, cfg.n_runs
    rounds = np.arange(every, T + 1, every)
    experts = np.zeros((R, T), dtype=np.int64)
    gates = np.zeros((R, rounds.size, N, M))
    stop = T if locality_until is None else int(locality_until)
    for r in range(R):
        W, V = np.asarray(pool.W[r], float), np.asarray(pool.V[r], float)
        signal_in = mean_signal_strength(cfg) * V
        w, theta, counts = np.zeros((M, d)), np.zeros((M, d)), np.zeros(M)
        k = 0
        for t in range(1, T + 1):
            n = int(draws.tasks[t - 1, r])
            X = draws.noise[t - 1, r].copy()
            if draws.pos is not None and draws.beta is not None:
                X[:, draws.pos[t - 1, r]] = draws.beta[t - 1, r] * V[n]
            xbar = X.sum(axis=1)
            h = theta @ xbar
            m = int(route(h, draws.route_noise[t - 1, r]))
            delta = X @ np.linalg.solve(X.T @ X, X.T @ W[n] - X.T @ w[m])
            w[m] += delta
            counts[m] += 1
            experts[r, t - 1] = m
            dn = np.linalg.norm(delta) if t <= stop else 0.0
            scale = aux_scale(cfg.alpha, M, t, cfg.aux_grad)
            c = coefficients_runs_last(
                np.array([dn]),
                softmax(h)[:, None],
                np.array([m]),
                (counts / t)[:, None],
                scale,
            )[:, 0]
            theta = theta - cfg.eta * np.outer(c, xbar)
            if k < rounds.size and t == rounds[k]:
                gates[r, k] = signal_in @ theta.T
                k += 1
    return AuxOnlyRuns(
        experts, np.asarray(draws.tasks).T.astype(np.int64), rounds, gates
    )
