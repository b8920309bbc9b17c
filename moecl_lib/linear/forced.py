"""Monte-Carlo of the linear MoE under a forced (specialised) routing, with the real
data.

The reference simulation for the formulas of :mod:`moecl_lib.theory.moe`: the routing
never looks at the data (rounds ``1..t0`` to a uniform expert, later rounds to a uniform
expert of the set of the task's cluster). Metric conventions are those of
:mod:`moecl_lib.linear.engine` (arrays (R, T), index ``t - 1`` after round t).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.linear.experts import LinearExperts
from moecl_lib.linear.results import RunCurves
from moecl_lib.linear.tasks import TaskPool, make_task_pool, sample_rounds, sample_tasks
from moecl_lib.theory.moe import balanced_expert_sets

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass
class OracleSimulation(RunCurves):
    """Monte-Carlo of :func:`simulate_specialised` (same metric conventions as the
    engine; arrays (R, T)).

    Attributes:
        F, G, G_pool: metrics; ``G_pool`` averages, for each task, the error of every
            expert of its set.
        err_new: error of each arrival right after learning.
        experts, tasks: realised routing.
        expert_cluster: cluster (task group) served by each expert after ``t0``, (M,).
        task_group: group of each task used by the routing, (N,).
        t0: round after which the routing is specialised.
        pool: the task pool.
        w_t0, counts_t0, self_sum_t0: state after round ``t0`` (expert parameters
            (R, M, d), arrivals per (expert, task) (R, M, N), summed errors right
            after learning (R,)).
        wall_time: seconds.
    """

    expert_cluster: IntArray
    task_group: IntArray
    t0: int
    pool: TaskPool
    w_t0: FloatArray
    counts_t0: FloatArray
    self_sum_t0: FloatArray
    wall_time: float


def simulate_specialised(
    cfg: ExperimentConfig,
    *,
    t0: int = 0,
    expert_cluster: ArrayLike | None = None,
    task_group: ArrayLike | None = None,
    progress: bool = False,
    rng: np.random.Generator | None = None,
) -> OracleSimulation:
    """Monte-Carlo of the MoE under a forced routing (no router): the reference
    simulation for the formulas here.

    Rounds ``1..t0``: each round goes to a uniformly random expert (an unspecialised
    "exploration" phase); rounds ``> t0``: to a uniform expert of the set of the task's
    cluster (``expert_cluster``, default :func:`balanced_expert_sets`). The routing
    never looks at the data. Pool, tasks and round data come from the library's
    Definition-1 generator (:mod:`moecl_lib.linear.tasks`) with ``cfg``
    (``cfg.n_experts`` = M, clusters from ``cfg.n_clusters``); router parameters of
    ``cfg`` are ignored.

    ``task_group`` (N,) groups the tasks that share an expert set (default: the pool's
    clusters). With fewer experts than tasks and unclustered tasks, e.g.
    ``cluster_assignment(N, M)`` lets each expert serve a block of tasks.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed) if rng is None else rng
    R, M, N, T = cfg.n_runs, cfg.n_experts, cfg.n_tasks, cfg.T
    if not 0 <= t0 <= T:
        raise ConfigError(f"t0={t0} must lie in [0, T={T}]")
    pool = make_task_pool(cfg, rng)
    cl, ec, table, sizes, member_mask = _routing_tables(
        M, N, pool, task_group, expert_cluster
    )
    bank = LinearExperts(pool.W, M)
    out = {k: np.empty((R, T)) for k in ("G", "G_pool", "err_new")}
    F = np.full((R, T), np.nan)
    experts = np.empty((R, T), dtype=np.int32)
    tasks = np.empty((R, T), dtype=np.int32)
    w_t0, C_t0, S_t0 = bank.w.copy(), bank.C.copy(), bank.S.copy()
    for t in tqdm(
        range(1, T + 1), disable=not progress, desc="forced routing", leave=False
    ):
        n = sample_tasks(cfg, rng)
        X, y = sample_rounds(cfg, pool, n, rng)
        if t <= t0:
            m = rng.integers(M, size=R)
        else:
            k = cl[n]
            m = table[k, (rng.random(R) * sizes[k]).astype(int)]
        step = bank.learn(m, n, X, y)
        F[:, t - 1] = step.F
        out["G"][:, t - 1] = step.G
        out["err_new"][:, t - 1] = step.err_new
        out["G_pool"][:, t - 1] = np.einsum("rmn,nm->r", bank.D, member_mask) / N
        experts[:, t - 1] = m
        tasks[:, t - 1] = n
        if t == t0:
            w_t0, C_t0, S_t0 = bank.w.copy(), bank.C.copy(), bank.S.copy()
    return OracleSimulation(
        F=F,
        G=out["G"],
        G_pool=out["G_pool"],
        err_new=out["err_new"],
        experts=experts,
        tasks=tasks,
        expert_cluster=ec,
        task_group=cl,
        t0=t0,
        pool=pool,
        w_t0=w_t0,
        counts_t0=C_t0,
        self_sum_t0=S_t0,
        wall_time=time.perf_counter() - start,
    )


def _routing_tables(
    M: int,
    N: int,
    pool: TaskPool,
    task_group: ArrayLike | None,
    expert_cluster: ArrayLike | None,
) -> tuple[IntArray, IntArray, IntArray, IntArray, FloatArray]:
    """Validated routing of :func:`simulate_specialised`: task groups ``cl`` (N,),
    expert sets ``ec`` (M,), the members of each group's set padded with -1 (K, max
    size), the set sizes (K,) and the weights ``1/|set|`` of each task's experts
    (N, M)."""
    cl = pool.cluster_of if task_group is None else np.asarray(task_group, dtype=int)
    if cl.shape != (N,):
        raise ConfigError(f"task_group must have shape (N={N},), got {cl.shape}")
    ec = (
        balanced_expert_sets(M, cl)
        if expert_cluster is None
        else np.asarray(expert_cluster, dtype=int)
    )
    if ec.shape != (M,):
        raise ConfigError(f"expert_cluster must have shape (M={M},), got {ec.shape}")
    members = [np.flatnonzero(ec == k) for k in range(int(cl.max()) + 1)]
    if any(len(mb) == 0 for mb in members):
        raise ConfigError("every cluster needs at least one expert")
    sizes = np.array([len(mb) for mb in members])
    table = np.full((len(members), sizes.max()), -1)
    for k, mb in enumerate(members):
        table[k, : len(mb)] = mb
    member_mask = (ec[None, :] == cl[:, None]).astype(float)  # (N, M)
    member_mask /= member_mask.sum(1, keepdims=True)
    return cl, ec, table, sizes, member_mask
