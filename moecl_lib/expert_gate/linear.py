"""Expert Gate's router on the paper's linear synthetic stream, on the SAME streams as
``engine.simulate``.

Why a separate simulator: :func:`moecl_lib.linear.engine.simulate` hard-wires the
paper's trained linear router. Here the experts, the data and the metrics are identical
(Definition-1 rounds from :mod:`moecl_lib.linear.tasks`, Eq. (4) minimum-change expert
update, arrival-averaged ``F_t``/``G_t`` and pool-averaged ``G_pool``, SPEC §5.1), only
the routing differs. The random numbers come from the engine's own
:func:`moecl_lib.linear.engine.draw_rounds` (pool, then per round: task draw, round
data, and the ``Unif[0, lambda]`` routing noise, drawn and unused here), so for the same
``ExperimentConfig`` every router sees the same task sequence and the same ``X_t``
(``tests/test_expert_gate.py`` checks this against the engine, and checks that replaying
the engine's routing decisions reproduces its ``F``, ``G`` and ``G_pool`` exactly).

Routers (``router=``):

* ``"expert_gate"`` (ours, adapted from Expert Gate): one linear "autoencoder" per
  expert on the router input ``xbar_t = X_t 1`` (the summed round input, as the paper's
  router). A linear autoencoder with code size ``c`` is optimally the PCA of its data,
  so expert ``k`` keeps the running mean ``mu_k`` and scatter matrix of the ``xbar``
  routed to it and reconstructs ``xbar`` by ``mu_k + U_k U_k^T (xbar - mu_k)`` with
  ``U_k`` its top-``c`` principal directions. Default ``c = 0`` (nearest running mean):
  in Definition 1 the within-task variation of ``xbar`` is isotropic noise (``beta``
  constant), so extra principal directions only fit noise, and a gate that merged two
  tasks early would align its first direction with their difference and keep absorbing
  both (measured in the chapter). No sigmoid: the model is linear. Reconstruction error
  ``err_k = ||xbar - recon_k||^2``. The round goes to ``k* = argmin_k err_k`` (the hard
  Expert Gate decision) unless it is NEW: ``err_{k*} > novelty_ratio * ref_t`` where
  ``ref_t = (s - 1) * (d - c) / d * median_i ||X_{t,i}||^2`` estimates, from the round's
  own columns, the error a same-task gate would make (the energy of the summed Gaussian
  columns left after projection). A new task gets a fresh gate and a new expert
  initialised from the most related expert (``init="related"``: Expert Gate; the most
  related expert is the one with the lowest error, since relatedness decreases with
  ``Err_a``) or from zero (``init="zero"``, as the paper's experts), as long as fewer
  than ``max_experts`` (default ``M``) exist. LwF does not apply: the expert update is
  the closed-form interpolation of Eq. (4), which leaves no freedom for a distillation
  term.
* ``"oracle"``: the task identity is used (:func:`oracle_assignment`): with ``M >= N``
  task ``n`` always goes to expert ``n``; with ``M < N`` the experts are split evenly
  over the task clusters and the tasks of a cluster share its experts round-robin (the
  best a router can do, as in Theorem 2's setting).
* ``"replay"``: the expert sequence ``experts`` (R, T) given by the caller (e.g.
  ``engine.simulate``'s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from moecl_lib.analysis.routing import routing_matrix
from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.linear.engine import draw_rounds, round_inputs
from moecl_lib.linear.experts import LinearExperts
from moecl_lib.linear.results import RunCurves, curve_buffers
from moecl_lib.linear.streams import make_streams, task_pool
from moecl_lib.linear.tasks import TaskPool, mean_signal_strength

_BLOCK = 64  # rounds drawn at once (the draws do not depend on the block length)

Router = Literal["expert_gate", "oracle", "replay"]
ROUTERS: tuple[str, ...] = ("expert_gate", "oracle", "replay")
Init = Literal["related", "zero"]
FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass
class GateSimulationResult(RunCurves):
    """Output of :func:`simulate_gate`; round axes hold the value after round ``t`` at
    index ``t - 1``.

    Attributes:
        config: the engine configuration (streams, experts, metrics).
        router: which router produced the run.
        F, G, G_pool, err_new: as :class:`moecl_lib.linear.engine.SimulationResult`
            (SPEC §5.1), (R, T).
        experts: expert used at each round, (R, T); tasks: arriving task, (R, T).
        n_experts: experts created after each round, (R, T) (constant M for
            oracle/replay).
        new_task: whether the round created an expert, (R, T) bool (Expert Gate only).
        final_w: expert parameters after round T, (R, M_max, d).
        gate_params: scalars stored by the gate per run after round T (means, scatters),
            (R,).
        wall_time: seconds.
    """

    config: ExperimentConfig
    router: str
    n_experts: IntArray
    new_task: NDArray[np.bool_]
    final_w: FloatArray
    pool: TaskPool
    gate_params: IntArray
    wall_time: float = 0.0
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rounds(self) -> IntArray:
        """Round numbers 1..T."""
        return np.arange(1, self.config.T + 1)


def _gate_basis(scatter: FloatArray | None, c: int) -> FloatArray | None:
    """Top-``c`` principal directions of every gate's scatter matrix, (R, M, d, c) (None
    when c = 0)."""
    if c == 0 or scatter is None:
        return None
    _, vecs = np.linalg.eigh(scatter)  # ascending eigenvalues
    return vecs[..., -c:]


def _pca_errors(
    xbar: FloatArray,
    count: FloatArray,
    mu: FloatArray,
    U: FloatArray | None,
    alive: NDArray[np.bool_],
) -> FloatArray:
    """Reconstruction error ``||xbar - mu_k - U_k U_k^T (xbar - mu_k)||^2`` of every
    gate, (R, M); inf if not alive.

    Principal directions are used only for gates that have seen >= 2 rounds (a single
    point has no spread).
    """
    diff = xbar[:, None, :] - mu  # (R, M, d)
    err = (diff**2).sum(-1)
    if U is not None:
        proj = np.einsum("rmdc,rmd->rmc", U, diff)
        usable = (count >= 2)[..., None]
        err = err - np.where(usable, proj**2, 0.0).sum(-1)
    return np.where(alive, np.maximum(err, 0.0), np.inf)


def oracle_assignment(cluster_of: IntArray, n_experts: int) -> IntArray:
    """Expert of every task for the oracle router, shape (N,) (see the module
    docstring).

    ``M >= N``: task ``n`` -> expert ``n``. ``K <= M < N``: cluster ``k`` owns experts
    ``[k * M // K, (k + 1) * M // K)`` and its j-th task uses the ``j mod size``-th of
    them. ``M < K``: ``n mod M``.
    """
    cluster_of = np.asarray(cluster_of)
    N, M = cluster_of.shape[0], int(n_experts)
    if M >= N:
        return np.arange(N)
    K = int(cluster_of.max()) + 1
    if M < K:
        return np.arange(N) % M
    out = np.empty(N, dtype=np.int64)
    for k in range(K):
        lo, hi = k * M // K, (k + 1) * M // K
        members = np.flatnonzero(cluster_of == k)
        out[members] = lo + np.arange(members.size) % (hi - lo)
    return out


def simulate_gate(
    cfg: ExperimentConfig,
    router: Router = "expert_gate",
    *,
    code_size: int = 0,
    novelty_ratio: float = 3.0,
    init: Init = "related",
    max_experts: int | None = None,
    experts: IntArray | None = None,
    progress: bool = False,
) -> GateSimulationResult:
    """Play ``cfg``'s streams (identical to ``engine.simulate(cfg)``'s) with another
    router.

    Args:
        cfg: engine configuration; ``cfg.n_experts`` is M (capacity of the oracle/replay
            routers and the default cap of Expert Gate).
        router: ``"expert_gate"``, ``"oracle"`` or ``"replay"`` (see the module
            docstring).
        code_size: c, principal directions per Expert-Gate gate (default 0 = nearest
            running mean); < d.
        novelty_ratio: Expert Gate novelty threshold on ``err / ref_t`` (> 1).
        init: initialisation of a new Expert-Gate expert: ``"related"`` (copy of the
            most related expert) or ``"zero"``.
        max_experts: cap on Expert-Gate experts (default ``cfg.n_experts``).
        experts: (R, T) expert indices in ``[0, M)`` for ``router="replay"``.
        progress: tqdm bar over rounds.
    """
    Mx, experts = _check_gate_args(
        cfg, router, code_size, novelty_ratio, init, max_experts, experts
    )
    R, d = cfg.n_runs, cfg.d
    start = time.perf_counter()
    rng = make_streams(cfg)
    dtype = np.dtype(cfg.dtype)
    pool = task_pool(cfg, rng)
    bank = LinearExperts(pool.W, Mx, dtype=dtype)
    gate = _LinearGates(R, Mx, d, dtype, code_size, novelty_ratio, init)
    hist = _play(cfg, rng, pool, bank, gate, router, experts, progress)
    if router == "expert_gate":
        per_gate = d + (d * d if code_size > 0 else 0) + 1  # mean, scatter, count
        gate_params = gate.n_created * per_gate
    else:
        gate_params = np.zeros(R, dtype=np.int64)
    return GateSimulationResult(
        config=cfg,
        router=router,
        **hist,
        final_w=bank.w,
        pool=pool,
        gate_params=np.asarray(gate_params),
        wall_time=time.perf_counter() - start,
    )


def _play(
    cfg: ExperimentConfig,
    rng: Any,
    pool: TaskPool,
    bank: LinearExperts,
    gate: _LinearGates,
    router: str,
    experts: IntArray | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """The rounds of :func:`simulate_gate`: route, update the chosen experts, record.

    Returns the per-round histories (R, T): ``F``, ``G``, ``G_pool``, ``err_new``,
    ``experts``, ``tasks``, ``n_experts`` and ``new_task``.
    """
    R, M, N, T, s = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.T, cfg.s
    runs = np.arange(R)
    W = pool.W
    signal_in = mean_signal_strength(cfg) * pool.V  # (R, N, d)
    oracle_map = oracle_assignment(pool.cluster_of, M)
    F, G, G_pool, err_new, exp_hist, task_hist = curve_buffers(
        (R, T), np.dtype(cfg.dtype)
    )
    ncr_hist = np.empty((R, T), dtype=np.int64)
    new_hist = np.zeros((R, T), dtype=bool)

    draws = None
    for t in tqdm(
        range(1, T + 1), disable=not progress, desc=f"{router} rounds", leave=False
    ):
        b = (t - 1) % _BLOCK
        if b == 0:
            # the engine's draws (routing noise included, unused here), so the streams
            # are identical
            draws = draw_rounds(cfg, rng, min(_BLOCK, T - t + 1))
            X_block = round_inputs(cfg, pool, draws)  # (B, R, d, s)
        n = draws.tasks[b]  # type: ignore[union-attr]
        X = X_block[b]
        y = np.einsum("rds,rd->rs", X, W[runs, n])
        xbar = X.sum(axis=2)
        if router == "oracle":
            m = oracle_map[n]
        elif router == "replay":
            m = experts[:, t - 1].astype(np.int64)  # type: ignore[index]
        else:
            m, new_hist[:, t - 1] = gate.route(xbar, X, bank, s)
        # expert update, Eq. (4), and the incremental metrics (moecl_lib.linear.experts,
        # shared with theory_moe)
        step = bank.learn(m, n, X, y)
        F[:, t - 1] = step.F
        G[:, t - 1] = step.G
        err_new[:, t - 1] = step.err_new
        exp_hist[:, t - 1] = m
        task_hist[:, t - 1] = n
        # pool-averaged error with the router's noise-free choice on the mean signal of
        # each task
        if router == "oracle":
            mhat = np.broadcast_to(oracle_map, (R, N))
        elif router == "replay":
            mhat = None
        else:
            mhat = gate.pool_choice(signal_in)
        if mhat is not None:
            G_pool[:, t - 1] = bank.pool_error(mhat)
        else:
            G_pool[:, t - 1] = np.nan
        ncr_hist[:, t - 1] = gate.n_created if router == "expert_gate" else M
    return {
        "F": F,
        "G": G,
        "G_pool": G_pool,
        "err_new": err_new,
        "experts": exp_hist,
        "tasks": task_hist,
        "n_experts": ncr_hist,
        "new_task": new_hist,
    }


def _check_gate_args(
    cfg: ExperimentConfig,
    router: str,
    code_size: int,
    novelty_ratio: float,
    init: str,
    max_experts: int | None,
    experts: IntArray | None,
) -> tuple[int, IntArray | None]:
    """Checked arguments of :func:`simulate_gate`: ``(Mx, experts)``, with ``Mx`` the
    number of expert slots (the Expert-Gate cap, else ``M``)."""
    if router not in ROUTERS:
        raise ConfigError(f"router={router!r} must be one of {list(ROUTERS)}")
    if init not in ("related", "zero"):
        raise ConfigError(f"init={init!r} must be 'related' or 'zero'")
    if (
        isinstance(code_size, bool)
        or not isinstance(code_size, (int, np.integer))
        or not 0 <= code_size < cfg.d
    ):
        raise ConfigError(
            f"code_size={code_size!r} must be an integer in [0, d-1] = [0, {cfg.d - 1}]"
        )
    if (
        not isinstance(novelty_ratio, (int, float))
        or not np.isfinite(novelty_ratio)
        or novelty_ratio <= 1
    ):
        raise ConfigError(
            f"novelty_ratio={novelty_ratio!r} must be a finite number > 1"
        )
    R, M, T = cfg.n_runs, cfg.n_experts, cfg.T
    cap = M if max_experts is None else max_experts
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise ConfigError(
            f"max_experts={max_experts!r} must be an integer >= 1 or None"
        )
    Mx = int(cap) if router == "expert_gate" else M
    if router == "replay":
        if experts is None:
            raise ConfigError("router='replay' needs experts=(R, T) expert indices")
        experts = np.asarray(experts)
        if experts.shape != (R, T) or (experts < 0).any() or (experts >= M).any():
            raise ConfigError(
                f"experts must have shape ({R}, {T}) with values in [0, {M - 1}]"
            )
    return Mx, experts


class _LinearGates:
    """Expert Gate's linear gates of every run: per expert slot the count, running mean
    ``mu`` (R, Mx, d) and, with ``code_size > 0``, scatter matrix of the router inputs
    routed to it; ``n_created`` (R,) experts exist per run."""

    def __init__(
        self,
        R: int,
        Mx: int,
        d: int,
        dtype: np.dtype,
        code_size: int,
        novelty_ratio: float,
        init: str,
    ) -> None:
        self.count = np.zeros((R, Mx), dtype=dtype)
        self.mu = np.zeros((R, Mx, d), dtype=dtype)
        self.scatter = np.zeros((R, Mx, d, d), dtype=dtype) if code_size > 0 else None
        self.n_created = np.zeros(R, dtype=np.int64)
        self.U = None  # principal directions of the gates, refreshed after each update
        self.Mx, self.d, self.code_size = Mx, d, code_size
        self.novelty_ratio, self.init = novelty_ratio, init

    def _alive(self) -> NDArray[np.bool_]:
        return np.arange(self.Mx)[None, :] < self.n_created[:, None]

    def route(
        self, xbar: FloatArray, X: FloatArray, bank: LinearExperts, s: int
    ) -> tuple[IntArray, NDArray[np.bool_]]:
        """Expert of every run for the round's router input ``xbar`` (R, d): the gate
        with the lowest error, or a new expert (initialised per ``init``) when even that
        error is novel. Updates the chosen gate; returns ``(experts, novel)``."""
        runs = np.arange(len(xbar))
        d = self.d
        err = _pca_errors(xbar, self.count, self.mu, self.U, self._alive())
        best = np.argmin(err, axis=1)
        best_err = err[runs, best]
        ref = (s - 1) * (d - self.code_size) / d * np.median((X**2).sum(axis=1), axis=1)
        novel = (self.n_created == 0) | (
            (best_err > self.novelty_ratio * ref) & (self.n_created < self.Mx)
        )
        m = np.where(novel, self.n_created, best)
        nr = runs[novel]
        if nr.size:
            src = best[novel]
            has_src = self.n_created[novel] > 0
            if self.init == "related":
                bank.set_experts(
                    nr,
                    self.n_created[novel],
                    np.where(has_src[:, None], bank.w[nr, src], 0.0),
                )
            self.n_created[novel] += 1
        # gate update of the chosen expert (running mean + scatter, Welford)
        cnt = self.count[runs, m] + 1.0
        delta_mu = xbar - self.mu[runs, m]
        self.mu[runs, m] += delta_mu / cnt[:, None]
        if self.scatter is not None:
            self.scatter[runs, m] += np.einsum(
                "ri,rj->rij", delta_mu, xbar - self.mu[runs, m]
            )
        self.count[runs, m] = cnt
        self.U = _gate_basis(self.scatter, self.code_size)
        return m, novel

    def pool_choice(self, signal_in: FloatArray) -> IntArray:
        """Noise-free choice (R, N) of every run's gate on each task's mean signal
        ``signal_in`` (R, N, d)."""
        alive = self._alive()
        errs = np.stack(
            [
                _pca_errors(signal_in[:, j], self.count, self.mu, self.U, alive)
                for j in range(signal_in.shape[1])
            ],
            axis=1,
        )  # (R, N, Mx)
        return np.argmin(errs, axis=2)


def routing_accuracy(
    experts: IntArray, tasks: IntArray, n_experts: int, n_tasks: int, window: int = 1
) -> FloatArray:
    """Fraction of rounds routed to an expert that belongs to the arriving task, per
    window of rounds.

    An expert "belongs" to the task that it learned most often over the WHOLE run (its
    majority task, so a task may own several experts: the paper's expert sets). A round
    counts as correctly routed when its expert's majority task is the arriving task.
    Unlike windowed purity (:func:`moecl_lib.analysis.routing.purity_over_time`),
    ownership is fixed by the whole run, so early random routing is scored against the
    final specialisation. Input (R, T) arrays; output (R, ceil(T / window)).
    """
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window={window!r} must be an integer >= 1")
    rm = routing_matrix(experts, tasks, n_experts, n_tasks)  # (R, M, N)
    owner = rm.argmax(axis=2)  # (R, M)
    e = np.asarray(experts)
    n = np.asarray(tasks)
    R, T = e.shape
    ok = (owner[np.arange(R)[:, None], e] == n).astype(float)
    nb = -(-T // window)
    okp = np.concatenate([ok, np.full((R, nb * window - T), np.nan)], axis=1)
    return np.nanmean(okp.reshape(R, nb, window), axis=2)


def merged_task_pairs(
    experts: IntArray, tasks: IntArray, n_experts: int, n_tasks: int, after: int = 0
) -> FloatArray:
    """Per run, fraction of pairs of seen tasks whose majority experts coincide (rounds
    ``t > after``).

    A merged pair shares one expert, which then alternates between two ground truths:
    forgetting.
    """
    rm = routing_matrix(experts, tasks, n_experts, n_tasks, after=after)  # (R, M, N)
    seen = rm.sum(axis=1) > 0  # (R, N)
    major = rm.argmax(axis=1)  # (R, N) majority expert of each task
    out = np.zeros(rm.shape[0])
    for r in range(rm.shape[0]):
        idx = np.flatnonzero(seen[r])
        if idx.size >= 2:
            mj = major[r, idx]
            out[r] = (mj[:, None] == mj[None, :])[np.triu_indices(idx.size, 1)].mean()
    return out
