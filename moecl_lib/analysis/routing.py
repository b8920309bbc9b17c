"""Routing and specialisation diagnostics of the linear MoE (SPEC §5.2, Propositions
1-3), batched over runs.

Conventions used throughout (all are this project's choices, SPEC tag [C]):

* **Rounds** are 1-based; a round axis of length ``T`` stores round ``t`` at index
  ``t - 1`` (as in :class:`moecl_lib.linear.engine.SimulationResult`). A **window**
  ``(after, until)`` selects the rounds ``after < t <= until``; ``after`` and ``until``
  may be scalars or per-run arrays of shape (R,) (e.g. ``after = T2``); ``until=None``
  means ``T``.
* **Routing matrix** ``Rm[r, m, n]`` = number of rounds of the window in which run ``r``
  routed task ``n`` to expert ``m``.
* **Routing purity** ``sum_m max_n Rm[m, n] / sum_{m,n} Rm[m, n]`` (SPEC §5.2): 1 when
  every expert receives a single task, about ``1/N`` (plus a small-count bias) for
  random routing. NaN for an empty window.
* **Expert sets** are defined from a routing matrix: expert ``m`` belongs to the set
  ``M_n`` of its *primary task* ``n = argmax_n' Rm[m, n']`` (ties: lowest index); an
  expert with no rounds in the window belongs to no set (label ``-1``). The sets are
  therefore disjoint by construction; whether an expert also serves other tasks is what
  the purity measures.
* **Load entropy** uses natural logarithms; the *normalised* entropy divides by
  ``log M`` (1 = balanced). It is computed by
  :func:`moecl_lib.analysis.metrics.load_entropy` (any leading shape).
* **Gate gaps** are computed on the engine's gate snapshots
  ``g[r, s, n, m] = theta^(m) . (E[beta] v_n)`` (the noise-free gate of expert ``m`` on
  task ``n``'s signal after snapshot round ``s``), for fixed expert sets: *within-set
  gap* of task ``n``: ``max_{m, m' in M_n} |g[n, m] - g[n, m']|`` (0 for a single-expert
  set); *across-set margin* of task ``n``:
  ``min_{m in M_n} g[n, m] - max_{m' not in M_n} g[n, m']`` (signed; > 0 means every
  member of the set beats every outsider on task ``n``; NaN if the set is empty or holds
  all experts); *gate spread*: ``max_m g[n, m] - min_m g[n, m]`` over all experts.
  Task-level values are averaged over the tasks with a non-empty set (``nanmean``).
* Summary statistics over runs are mean and standard error (``ddof = 1``), as
  :func:`moecl_lib.analysis.metrics.mean_se`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moecl_lib.analysis.metrics import load_entropy, mean_se
from moecl_lib.config import ConfigError
from moecl_lib.linear.engine import SimulationResult

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]
Bound = int | ArrayLike | None


# --------------------------------------------------------------------------------------
# Windows and routing matrices
# --------------------------------------------------------------------------------------
def _as_2d_int(x: ArrayLike, name: str) -> IntArray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (R, T) or (T,), got {np.shape(x)}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def window_mask(
    n_runs: int, T: int, after: Bound = 0, until: Bound = None
) -> BoolArray:
    """Boolean mask (R, T) of the rounds ``after < t <= until`` (per-run bounds allowed;
    ``None`` = T).

    A negative per-run ``after`` (e.g. ``T2 = -1`` for a run that never terminated)
    selects nothing for that run, so statistics of such runs are NaN rather than
    silently taken over the whole horizon.
    """
    t = np.arange(1, T + 1)[None, :]
    lo = np.broadcast_to(np.asarray(0 if after is None else after), (n_runs,))[:, None]
    hi = np.broadcast_to(np.asarray(T if until is None else until), (n_runs,))[:, None]
    return (t > lo) & (t <= hi) & (lo >= 0)


def routing_matrix(
    experts: ArrayLike,
    tasks: ArrayLike,
    n_experts: int,
    n_tasks: int,
    *,
    after: Bound = 0,
    until: Bound = None,
) -> IntArray:
    """Counts ``Rm[r, m, n]`` of rounds ``after < t <= until`` routed from task ``n`` to
    expert ``m``.

    Args:
        experts: selected expert per round, shape (R, T) (or (T,) for one run).
        tasks: arriving task per round, same shape.
        n_experts: M. n_tasks: N.
        after, until: window bounds (scalars or per-run arrays), see module docstring.

    Returns:
        integer array (R, M, N).
    """
    e = _as_2d_int(experts, "experts")
    n = _as_2d_int(tasks, "tasks")
    if e.shape != n.shape:
        raise ValueError(
            f"experts {e.shape} and tasks {n.shape} must have the same shape"
        )
    if e.size and (e.min() < 0 or e.max() >= n_experts):
        raise ValueError(f"expert indices must lie in [0, {n_experts - 1}]")
    if n.size and (n.min() < 0 or n.max() >= n_tasks):
        raise ValueError(f"task indices must lie in [0, {n_tasks - 1}]")
    R, T = e.shape
    mask = window_mask(R, T, after, until)
    flat = (np.arange(R)[:, None] * n_experts + e) * n_tasks + n
    counts = np.bincount(flat[mask], minlength=R * n_experts * n_tasks)
    return counts.reshape(R, n_experts, n_tasks)


def result_routing_matrix(
    res: SimulationResult, *, after: Bound = 0, until: Bound = None
) -> IntArray:
    """:func:`routing_matrix` of a simulation result."""
    cfg = res.config
    return routing_matrix(
        res.experts, res.tasks, cfg.n_experts, cfg.n_tasks, after=after, until=until
    )


def routing_purity(rm: ArrayLike) -> FloatArray:
    """Purity ``sum_m max_n Rm[m, n] / sum Rm`` per run, shape (R,) (NaN for an empty
    window)."""
    rm = np.asarray(rm, dtype=float)
    if rm.ndim == 2:
        rm = rm[None]
    total = rm.sum(axis=(1, 2))
    top = rm.max(axis=2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, top / np.where(total > 0, total, 1.0), np.nan)


def purity_over_time(
    experts: ArrayLike, tasks: ArrayLike, n_experts: int, n_tasks: int, window: int
) -> tuple[FloatArray, IntArray]:
    """Routing purity in consecutive windows of ``window`` rounds.

    Returns:
        ``(purity, ends)``: purity (R, n_windows) and the last round of each window (a
        trailing partial window is dropped). Small windows bias purity upwards (few
        rounds per expert); compare settings at equal window length.
    """
    rms, ends = windowed_routing_matrices(experts, tasks, n_experts, n_tasks, window)
    R, nw, M, N = rms.shape
    return routing_purity(rms.reshape(R * nw, M, N)).reshape(R, nw), ends


def _n_windows(T: int, window: int) -> int:
    """Number of complete windows of ``window`` rounds in ``T`` rounds (a trailing
    partial window is dropped)."""
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window={window!r} must be an integer >= 1")
    if window > T:
        raise ValueError(f"window={window} is longer than the horizon T={T}")
    return T // window


def windowed_routing_matrices(
    experts: ArrayLike, tasks: ArrayLike, n_experts: int, n_tasks: int, window: int
) -> tuple[IntArray, IntArray]:
    """Routing matrices of consecutive windows of ``window`` rounds:
    ``(rms (R, n_windows, M, N), ends)``."""
    e = _as_2d_int(experts, "experts")
    n = _as_2d_int(tasks, "tasks")
    if e.shape != n.shape:
        raise ValueError(
            f"experts {e.shape} and tasks {n.shape} must have the same shape"
        )
    R, T = e.shape
    nw = _n_windows(T, window)
    widx = np.arange(nw * window) // window
    flat = (
        (np.arange(R)[:, None] * nw + widx[None, :]) * n_experts + e[:, : nw * window]
    ) * n_tasks + n[:, : nw * window]
    rms = np.bincount(flat.ravel(), minlength=R * nw * n_experts * n_tasks)
    return rms.reshape(R, nw, n_experts, n_tasks), window * np.arange(1, nw + 1)


def primary_task_changes(
    experts: ArrayLike, tasks: ArrayLike, n_experts: int, n_tasks: int, window: int
) -> tuple[FloatArray, IntArray]:
    """Churn of the expert sets: fraction of experts whose primary task changed since
    the previous window.

    Only experts active (>= 1 round) in both consecutive windows count; NaN where there
    is none.

    Returns:
        ``(changes, ends)``: shape (R, n_windows - 1) and the last round of the later
        window of each pair.
    """
    rms, ends = windowed_routing_matrices(experts, tasks, n_experts, n_tasks, window)
    R, nw, M, N = rms.shape
    sets = expert_sets(rms.reshape(R * nw, M, N)).reshape(R, nw, M)
    both = (sets[:, 1:] >= 0) & (sets[:, :-1] >= 0)
    changed = (sets[:, 1:] != sets[:, :-1]) & both
    cnt = both.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(cnt > 0, changed.sum(axis=2) / np.maximum(cnt, 1), np.nan)
    return frac, ends[1:]


def expert_sets(rm: ArrayLike) -> IntArray:
    """Primary task of every expert, shape (R, M); ``-1`` for an expert with no rounds
    in the window.

    Expert ``m`` is put in the set ``M_n`` with ``n = argmax_n' Rm[m, n']`` (lowest
    index on ties).
    """
    rm = np.asarray(rm)
    if rm.ndim == 2:
        rm = rm[None]
    primary = rm.argmax(axis=2)
    return np.where(rm.sum(axis=2) > 0, primary, -1)


def set_sizes(sets: ArrayLike, n_tasks: int) -> IntArray:
    """``|M_n|`` per run and task, shape (R, N)."""
    sets = np.atleast_2d(np.asarray(sets))
    return (sets[:, :, None] == np.arange(n_tasks)[None, None, :]).sum(axis=1)


def coverage(sets: ArrayLike, n_tasks: int) -> FloatArray:
    """Fraction of tasks whose expert set is non-empty, shape (R,)."""
    return (set_sizes(sets, n_tasks) > 0).mean(axis=1)


def within_set_uniformity(rm: ArrayLike, sets: ArrayLike) -> FloatArray:
    """How uniformly each task is spread over its own expert set (Prop. 3), shape (R,).

    For task ``n`` with ``|M_n| >= 2``: normalised entropy ``H(p) / log |M_n|`` of
    ``p_m ∝ Rm[m, n]``, ``m in M_n`` (1 = uniform, 0 = one member takes everything).
    Averaged over such tasks; NaN if no task has a set of two or more experts or its set
    received no rounds. Finite counts bias the entropy downwards (about
    ``(|M_n| - 1) / (2 n_rounds)`` nats).
    """
    rm = np.asarray(rm, dtype=float)
    if rm.ndim == 2:
        rm = rm[None]
    sets = np.atleast_2d(np.asarray(sets))
    R, M, N = rm.shape
    out = np.full(R, np.nan)
    for r in range(R):
        vals = []
        for n in range(N):
            members = np.flatnonzero(sets[r] == n)
            if members.size < 2:
                continue
            c = rm[r, members, n]
            if c.sum() <= 0:
                continue
            p = c / c.sum()
            nz = p[p > 0]
            vals.append(float(-(nz * np.log(nz)).sum() / math.log(members.size)))
        if vals:
            out[r] = float(np.mean(vals))
    return out


def expert_task_distance(
    w: ArrayLike, W: ArrayLike, sets: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """How close each expert's model is to its own task's ground truth, relative to the
    other tasks.

    Args:
        w: expert parameters, shape (R, M, d) (e.g. ``SimulationResult.final_w``).
        W: ground truths, shape (R, N, d).
        sets: primary task of each expert, shape (R, M) (``-1`` = idle expert, ignored).

    Returns:
        ``(own, other)``, each shape (R,): mean over non-idle experts of
        ``||w^(m) - w_{n(m)}||^2`` (own task) and of
        ``min_{n' != n(m)} ||w^(m) - w_{n'}||^2`` (nearest other task). NaN for a run
        without active experts.
    """
    w = np.asarray(w, dtype=float)
    W = np.asarray(W, dtype=float)
    sets = np.atleast_2d(np.asarray(sets))
    dist = ((w[:, :, None, :] - W[:, None, :, :]) ** 2).sum(-1)  # (R, M, N)
    R, M, N = dist.shape
    active = sets >= 0
    own = np.take_along_axis(dist, np.where(active, sets, 0)[:, :, None], axis=2)[
        :, :, 0
    ]
    others = np.where(
        np.arange(N)[None, None, :] == np.where(active, sets, -1)[:, :, None],
        np.inf,
        dist,
    )
    other = others.min(axis=2)
    with np.errstate(invalid="ignore"):
        cnt = active.sum(axis=1)
        own_m = np.where(
            cnt > 0, np.where(active, own, 0).sum(1) / np.maximum(cnt, 1), np.nan
        )
        other_m = np.where(
            cnt > 0, np.where(active, other, 0).sum(1) / np.maximum(cnt, 1), np.nan
        )
    return own_m, other_m


# --------------------------------------------------------------------------------------
# Loads over time
# --------------------------------------------------------------------------------------
def expert_loads(
    experts: ArrayLike, n_experts: int, window: int
) -> tuple[FloatArray, IntArray]:
    """Fraction of rounds routed to each expert in consecutive windows of ``window``
    rounds.

    Returns:
        ``(loads, ends)``: loads of shape (R, n_windows, M) (rows sum to 1) and the last
        round of each window (n_windows,). A trailing partial window is dropped.
    """
    e = _as_2d_int(experts, "experts")
    R, T = e.shape
    nw = _n_windows(T, window)
    e = e[:, : nw * window].reshape(R, nw, window)
    onehot = (e[..., None] == np.arange(n_experts)).sum(axis=2)
    return onehot / window, window * np.arange(1, nw + 1)


# --------------------------------------------------------------------------------------
# Gate gaps
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateGaps:
    """Gate gaps per run, snapshot and task (see module docstring); shapes (R, S, N).

    Attributes:
        within: within-set gap (0 for singleton sets, NaN for empty sets).
        across: signed across-set margin (NaN for empty sets or sets holding every
            expert).
        spread: max - min gate over all experts (defined for every task).
    """

    within: FloatArray
    across: FloatArray
    spread: FloatArray

    def task_mean(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(within, across, spread)`` averaged over tasks with a defined value, each
        (R, S)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (
                np.nanmean(self.within, axis=2),
                np.nanmean(self.across, axis=2),
                np.nanmean(self.spread, axis=2),
            )


def gate_gaps(gate_snapshots: ArrayLike, sets: ArrayLike) -> GateGaps:
    """Within-set, across-set and overall gate gaps for fixed expert sets.

    Args:
        gate_snapshots: ``g[r, s, n, m]``, shape (R, S, N, M) (or (S, N, M) for one
            run).
        sets: primary task of each expert, shape (R, M) (or (M,)), from
            :func:`expert_sets`.
    """
    g = np.asarray(gate_snapshots, dtype=float)
    if g.ndim == 3:
        g = g[None]
    sets = np.atleast_2d(np.asarray(sets))
    R, S, N, M = g.shape
    if sets.shape != (R, M):
        raise ValueError(f"sets must have shape ({R}, {M}), got {sets.shape}")
    member = sets[:, :, None] == np.arange(N)[None, None, :]  # (R, M, N)
    member = np.transpose(member, (0, 2, 1))[:, None, :, :]  # (R, 1, N, M)
    inf = np.inf
    in_max = np.where(member, g, -inf).max(axis=3)
    in_min = np.where(member, g, inf).min(axis=3)
    out_max = np.where(~member, g, -inf).max(axis=3)
    has_in = np.broadcast_to(member.any(axis=3), (R, S, N))
    has_out = np.broadcast_to((~member).any(axis=3), (R, S, N))
    with np.errstate(invalid="ignore"):
        within = np.where(has_in, in_max - in_min, np.nan)
        across = np.where(has_in & has_out, in_min - out_max, np.nan)
    spread = g.max(axis=3) - g.min(axis=3)
    return GateGaps(within=within, across=across, spread=spread)


# --------------------------------------------------------------------------------------
# Termination
# --------------------------------------------------------------------------------------
def termination_stats(T2: ArrayLike, T1: int) -> dict[str, float]:
    """Empirical termination round ``T2`` (``-1`` = never frozen) against ``T1``.

    Returns ``frac_terminated``, ``T2_median`` / ``T2_mean`` over terminated runs (NaN
    if none), ``T2_over_T1_median`` and ``T2_minus_T1_median``.
    """
    T2 = np.asarray(T2)
    done = T2 >= 0
    if not done.any():
        return {
            "frac_terminated": 0.0,
            "T2_median": math.nan,
            "T2_mean": math.nan,
            "T2_over_T1_median": math.nan,
            "T2_minus_T1_median": math.nan,
        }
    t2 = T2[done].astype(float)
    return {
        "frac_terminated": float(done.mean()),
        "T2_median": float(np.median(t2)),
        "T2_mean": float(t2.mean()),
        "T2_over_T1_median": float(np.median(t2) / T1) if T1 > 0 else math.nan,
        "T2_minus_T1_median": float(np.median(t2) - T1),
    }


# --------------------------------------------------------------------------------------
# Specialisation summary of one result
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Specialisation:
    """Per-run specialisation diagnostics of one simulation (arrays of shape (R,)).

    Windows (``W = window`` rounds): *early* ``(T1, T1 + W]`` (Prop. 1: right after
    ``T1``); *late* ``(T - W, T]`` (end of the horizon; Prop. 2); *post* ``(T2, T]`` for
    runs whose router was frozen (NaN for the others; Prop. 3). Expert sets for
    ``coverage`` and ``uniformity`` come from the post-``T2`` routing when the run was
    frozen, else from the late window.
    """

    T1: int
    window: int
    purity_early: FloatArray
    purity_late: FloatArray
    purity_post: FloatArray
    coverage: FloatArray
    uniformity: FloatArray
    load_entropy_late: FloatArray
    T2: IntArray
    G_T: FloatArray
    F_T: FloatArray
    G_early: FloatArray

    def summary(self) -> dict[str, float]:
        """Means over runs (``nanmean``) of every per-run diagnostic, plus termination
        statistics."""
        import warnings

        out: dict[str, float] = {"T1": float(self.T1)}
        for name in (
            "purity_early",
            "purity_late",
            "purity_post",
            "coverage",
            "uniformity",
            "load_entropy_late",
            "G_early",
            "G_T",
            "F_T",
        ):
            x = getattr(self, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                m, se = mean_se(x)
            out[name] = float(m)
            out[name + "_se"] = float(se)
        out.update(termination_stats(self.T2, self.T1))
        return out


def specialisation(
    res: SimulationResult, *, window: int | None = None
) -> Specialisation:
    """Compute :class:`Specialisation` diagnostics of a result (single-expert results
    give trivial values).

    Args:
        res: simulation result.
        window: window length in rounds; default ``max(200, 20 M)`` capped at ``T // 4``
            (at least 1).
    """
    cfg = res.config
    T, M, N = cfg.T, cfg.n_experts, cfg.n_tasks
    T1 = min(cfg.T1_value, T)
    W = window if window is not None else max(1, min(max(200, 20 * M), T // 4))
    if W < 1:
        raise ConfigError(f"window={W} must be >= 1")
    rm_early = result_routing_matrix(res, after=T1, until=min(T1 + W, T))
    rm_late = result_routing_matrix(res, after=T - W)
    rm_post = result_routing_matrix(res, after=res.T2)
    frozen = res.T2 >= 0
    rm_sets = np.where(frozen[:, None, None], rm_post, rm_late)
    sets = expert_sets(rm_sets)
    loads_late = rm_late.sum(axis=2)
    return Specialisation(
        T1=T1,
        window=W,
        purity_early=routing_purity(rm_early),
        purity_late=routing_purity(rm_late),
        purity_post=routing_purity(rm_post),
        coverage=coverage(sets, N),
        uniformity=within_set_uniformity(rm_sets, sets),
        load_entropy_late=load_entropy(loads_late, normalised=True)
        if M > 1
        else np.full(cfg.n_runs, np.nan),
        T2=res.T2,
        G_T=res.G[:, -1],
        F_T=res.F[:, -1],
        G_early=res.G[:, min(T1 + W, T) - 1],
    )
