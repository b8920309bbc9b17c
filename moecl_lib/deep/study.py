"""Multi-seed experiments with deep continual learners: paired runs, summary tables,
figures.

Every learner of a comparison sees the SAME stream for a given seed (same task sequence
and batches), so differences between learners are paired. Summary statistics are
``mean`` and ``se`` (standard error over seeds,
:func:`moecl_lib.analysis.metrics.mean_se`). Views (see :mod:`moecl_lib.deep.learners`):
``"learner"`` evaluates each arrival with the expert that learned it (SPEC A8 default);
``"router"`` with the learner's current routing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.metrics import load_entropy, mean_se
from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import (
    RoundLearner,
    StreamResult,
    TaskData,
    View,
    run_stream,
    sample_stream,
)
from moecl_lib.figures.style import band
from moecl_lib.figures.tables import text_table

Results = dict[str, list[StreamResult]]


MapFn = Callable[[Callable[..., Any], Sequence[tuple[Any, ...]]], list[Any]]
"""``map_fn(fn, calls) -> [fn(*call) for call in calls]``, possibly elsewhere (for
example :func:`moecl_lib.sweep.tasks.map_calls` on a Dask cluster)."""


def seed_runs(
    tasks: Sequence[TaskData],
    factories: Mapping[str, Callable[[int], RoundLearner]],
    seed: int,
    n_rounds: int,
    batch_size: int,
    max_test: int | None = None,
) -> dict[str, StreamResult]:
    """Every learner on the stream of one seed (``{name: StreamResult}``). Depends on
    nothing but its arguments, so it may run in any process."""
    stream = sample_stream(tasks, n_rounds, batch_size, np.random.default_rng(seed))
    return {
        name: run_stream(make(int(seed)), tasks, stream, max_test=max_test)
        for name, make in factories.items()
    }


def run_paired(
    tasks: Sequence[TaskData],
    factories: Mapping[str, Callable[[int], RoundLearner]],
    seeds: Sequence[int],
    n_rounds: int,
    batch_size: int,
    *,
    max_test: int | None = None,
    progress: bool = True,
    map_fn: MapFn | None = None,
) -> Results:
    """Run every learner ``factories[name](seed)`` on the stream of every seed.

    The stream of seed ``s`` is
    ``sample_stream(tasks, n_rounds, batch_size, numpy.random.default_rng(s))``. Returns
    ``{name: [StreamResult per seed]}`` in the order of ``seeds``. ``map_fn``: runs the
    seeds (:func:`seed_runs`, one call per seed) elsewhere; the results are the same.
    """
    from tqdm.auto import tqdm

    if len(seeds) == 0 or len(factories) == 0:
        raise ConfigError("seeds and factories must be non-empty")
    calls = [(tasks, factories, int(s), n_rounds, batch_size, max_test) for s in seeds]
    if map_fn is not None:
        per_seed = map_fn(seed_runs, calls)
    else:
        per_seed = []
        for call in tqdm(calls, desc="seeds", disable=not progress):
            per_seed.append(seed_runs(*call))
    return {name: [r[name] for r in per_seed] for name in factories}


def _ms(values: Sequence[float]) -> tuple[float, float]:
    m, s = mean_se(np.asarray(values, dtype=float)[:, None])
    return float(m[0]), float(s[0])


def run_stats(res: StreamResult, after: int | None = None) -> dict[str, float]:
    """Per-run scalars: community metrics in both views, routing stability and load
    statistics.

    ``after``: rounds ``t > after`` count for purity and switches (default: the second
        half, ``T // 2``).
    ``route_switches``: changes of the noise-free routed expert of any task between
        consecutive rounds.
    """
    after = res.T // 2 if after is None else after
    ml, mr = res.metrics("learner"), res.metrics("router")
    loads = res.loads()
    return {
        "ACC": ml["ACC"],
        "BWT": ml["BWT"],
        "forgetting": ml["forgetting"],
        "F_T": ml["F_T"],
        "G_T": ml["G_T"],
        "ACC_router": mr["ACC"],
        "F_T_router": mr["F_T"],
        "G_T_router": mr["G_T"],
        "final_acc_router": float(res.acc_routed[-1].mean()),
        "purity": res.routing_purity(after),
        "switches": float(res.route_switches(after)),
        "load_entropy": float(load_entropy(loads)),
        "T2": float(res.info.get("T2", -1)),
        "wall_time": res.wall_time,
    }


def summarise(
    results: Results, keys: Sequence[str] | None = None, after: int | None = None
) -> list[dict[str, Any]]:
    """One row per learner: ``<key>`` (mean over seeds) and ``<key>_se`` for every stat
    of :func:`run_stats`."""
    rows = []
    for name, runs in results.items():
        stats = [run_stats(r, after) for r in runs]
        ks = list(stats[0]) if keys is None else list(keys)
        row: dict[str, Any] = {"learner": name, "seeds": len(runs)}
        for k in ks:
            row[k], row[k + "_se"] = _ms([s[k] for s in stats])
        rows.append(row)
    return rows


def format_rows(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], digits: int = 1
) -> str:
    """Fixed-width text table ``key = mean +- se`` (rounded to ``digits``) for printing
    in notebooks."""
    head = ["learner"] + list(keys)
    cells = [
        [str(r["learner"])]
        + [f"{r[k]:.{digits}f} +- {r[k + '_se']:.{digits}f}" for k in keys]
        for r in rows
    ]
    return text_table(head, cells)


def curves(
    results: Results, view: View = "learner"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (F, G)}`` with ``F, G`` of shape (seeds, T) in error % (paper analogues,
    SPEC §5.3)."""
    out = {}
    for name, runs in results.items():
        fg = [r.curves(view) for r in runs]
        out[name] = (np.array([f for f, _ in fg]), np.array([g for _, g in fg]))
    return out


# ------------------------------------------------------------------------------ figures
def plot_curves(
    results: Results, view: View = "learner", title: str | None = None
) -> Figure:
    """Two panels: ``F_t`` and ``G_t`` (error %) vs round, mean +- 1 s.e. over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, (F, G) in curves(results, view).items():
        t = np.arange(1, F.shape[1] + 1)
        for ax, Y in zip(axes, (F, G)):
            m, se = mean_se(Y)
            band(
                ax,
                t[1:] if Y is F else t,
                m[1:] if Y is F else m,
                se[1:] if Y is F else se,
                label=name,
            )
    axes[0].set(xlabel="round t", ylabel="forgetting $F_t$ (error %)")
    axes[1].set(xlabel="round t", ylabel="generalisation $G_t$ (error %)")
    axes[0].axhline(0, color="k", lw=0.6)
    axes[1].legend(fontsize=8)
    fig.suptitle(
        title or f"paper metrics on test error ({view} view), mean ± 1 s.e.",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_accuracy_matrices(
    results: Mapping[str, StreamResult], task_names: Sequence[str]
) -> Figure:
    """Heat-maps of the pool-indexed accuracy (router view) ``acc_routed[t, n]``: rows =
    after round t."""
    names = list(results)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.8), sharey=True, squeeze=False
    )
    im = None
    for ax, name in zip(axes[0], names):
        res = results[name]
        im = ax.imshow(
            res.acc_routed,
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=100,
            interpolation="nearest",
        )
        ax.set_xticks(
            range(len(task_names)), task_names, rotation=30, ha="right", fontsize=8
        )
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("after round t")
    fig.colorbar(im, ax=axes[0].tolist(), label="test accuracy (%)", shrink=0.9)
    return fig


def plot_arrival_matrix(res: StreamResult, view: View = "learner") -> Figure:
    """Heat-map of the arrival-indexed accuracy matrix ``A[t, tau]`` (community
    convention)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    im = ax.imshow(
        res.accuracy_matrix(view),
        cmap="viridis",
        vmin=0,
        vmax=100,
        interpolation="nearest",
    )
    ax.set(
        xlabel="arrival tau",
        ylabel="after round t",
        title=f"{res.name}: A[t, tau] ({view} view)",
    )
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    return fig


def plot_loads_and_routing(results: Mapping[str, StreamResult]) -> Figure:
    """Per learner: expert chosen at every round (colour = task, marker size = 1) and
    its expert loads."""
    names = [n for n in results if results[n].acc_expert.shape[1] > 1]
    fig, axes = plt.subplots(
        2, max(len(names), 1), figsize=(3.6 * max(len(names), 1), 5.2), squeeze=False
    )
    for j, name in enumerate(names):
        res = results[name]
        t = np.arange(1, res.T + 1)
        ax = axes[0][j]
        for n in range(res.n_tasks):
            sel = res.task_ids == n
            ax.scatter(t[sel], res.experts[sel], s=12, label=f"task {n}")
        T2 = res.info.get("T2", -1)
        if T2 and T2 > 0:
            ax.axvline(T2, color="k", ls="--", lw=0.8, label="router frozen")
        ax.set(title=name, xlabel="round t", ylabel="expert $m_t$")
        ax.set_yticks(range(res.acc_expert.shape[1]))
        ax.legend(fontsize=7)
        axes[1][j].bar(range(res.acc_expert.shape[1]), res.loads())
        axes[1][j].set(xlabel="expert", ylabel="load (fraction of rounds)")
    fig.tight_layout()
    return fig
