"""What the two deep-network chapters (:mod:`moecl_lib.claims.dnn_moe_vs_single`,
:mod:`moecl_lib.claims.dnn_expert_sweep`) share: the tasks, a learner per seed, the
per-seed statistics and their tolerance floors, and the mean ± s.e. over seeds for
tables and CSV columns.

Conventions: metrics in % on held-out test images
(:class:`moecl_lib.deep.learners.StreamResult`); one value per seed, a mean over seeds
with its s.e. (:func:`moecl_lib.claims.estimators.seed_mean_se`; NaN seeds left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from moecl_lib.claims.estimators import seed_mean_se
from moecl_lib.deep.datasets import (
    ImageDataset,
    load_fashion_mnist,
    load_mnist,
    load_sklearn_digits,
    one_vs_rest_tasks,
    standardise,
)
from moecl_lib.deep.learners import StreamResult, TaskData
from moecl_lib.deep.moe import DeepMoE, DeepMoEConfig, single_network
from moecl_lib.deep.study import MapFn, run_stats
from moecl_lib.sweep.tasks import INLINE, map_calls

LEARNER_VIEW_TITLE = (
    "learner view (each arrival evaluated by the expert that learned it), %"
)
"""Title of the learner-view block of a chapter's summary table."""

#: Absolute tolerance floors of the recorded estimates, by statistic (percentage points;
#: switches and T2: rounds; purity: share). Measured: the quick profile (seeds 0-11)
#: re-run under the CPU-kernel variants ``ATEN_CPU_CAPABILITY=default`` (+ OpenBLAS
#: Haswell, numba generic, numpy without AVX-512) and ``ATEN_CPU_CAPABILITY=avx2`` (+
#: OpenBLAS Sandybridge) reproduces most runs bit for bit; the runs that diverge move a
#: per-seed accuracy or forgetting by up to 2.8 points and the mean over any 5
#: consecutive seeds by up to 0.56 points, hence 1.2 points (about twice that).
#: Integer-valued statistics (switches, T2) moved by at most one round in one seed (0.2
#: on a 5-seed mean): floor 0.4; purity did not move: floor 0.02 (one round in one
#: seed). Where the s.e. is larger, ``Z_TOLERANCE`` s.e. dominate (rule.py).
PERCENT_FLOOR = 1.2
FLOORS: dict[str, float] = {
    "ACC": PERCENT_FLOOR,
    "F_T": PERCENT_FLOOR,
    "G_T": PERCENT_FLOOR,
    "forgetting": PERCENT_FLOOR,
    "F_T_router": PERCENT_FLOOR,
    "G_T_router": PERCENT_FLOOR,
    "final_acc_router": PERCENT_FLOOR,
    "switches": 0.4,
    "purity": 0.02,
    "T2": 0.4,
}


# --------------------------------------------------------------------------------- data


LOADERS: dict[str, Callable[[str | None], ImageDataset]] = {
    "digits": lambda _dir: load_sklearn_digits(),
    "fashion_mnist": lambda _dir: load_fashion_mnist(),
    "mnist": lambda folder: load_mnist(folder or ""),
}


@dataclass(frozen=True)
class Data:
    """The tasks of a chapter and the data set they come from."""

    raw: ImageDataset
    tasks: list[TaskData]

    @property
    def label(self) -> str:
        sub = self.raw.substitute_for
        return self.raw.name + (f" (substitute for {sub})" if sub else "")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def describe(self) -> str:
        return (
            f"data: {self.label}; image shape {tuple(self.raw.image_shape)}; tasks: "
            f"{self.task_names}\ntraining images per task: "
            f"{[t.x_train.shape[0] for t in self.tasks]}; test images per task: "
            f"{[t.x_test.shape[0] for t in self.tasks]}"
        )


def load_tasks(
    dataset: str, data_dir: str | None, positives: Sequence[int], max_test: int
) -> Data:
    """One-vs-rest tasks of ``dataset`` (``"digits"``, ``"fashion_mnist"`` or
    ``"mnist"`` from ``data_dir``), inputs standardised with the pooled mean image
    (``standardise(raw, "pixel")``), balanced test sets of ``max_test`` images drawn
    with ``numpy.random.default_rng(0)`` (the same for every seed)."""
    if dataset not in LOADERS:
        raise ValueError(f"dataset={dataset!r} must be one of {list(LOADERS)}")
    raw = LOADERS[dataset](data_dir)
    ds = standardise(raw, "pixel")
    tasks = one_vs_rest_tasks(
        ds, list(positives), np.random.default_rng(0), max_test=max_test
    )
    return Data(raw, tasks)


# ---------------------------------------------------------------------------- per seed


def per_seed(runs: Sequence[StreamResult], after: int) -> dict[str, np.ndarray]:
    """``run_stats`` of each run (routing statistics over rounds ``> after``), as arrays
    over seeds; ``T2`` is NaN for a run whose router was never frozen."""
    stats = [run_stats(r, after) for r in runs]
    out = {k: np.array([s[k] for s in stats], dtype=float) for k in stats[0]}
    out["T2"] = np.where(
        out["T2"] < 0, np.nan, out["T2"]
    )  # -1 = never frozen: not a round
    return out


def learner_factory(cfg: DeepMoEConfig, name: str) -> Callable[[int], DeepMoE]:
    """A learner per seed: the single network for ``n_experts == 1``, else the MoE."""
    if cfg.n_experts == 1:
        return lambda s: single_network(cfg.replace(seed=s), name=name)
    return lambda s: DeepMoE(cfg.replace(seed=s), name=name)


def seed_cell(x: np.ndarray, digits: int = 1) -> str:
    """``mean ± se`` over seeds for a table; NaN seeds (e.g. ``T2`` of a router never
    frozen) are left out and counted: ``never`` when no seed has a value, ``… (k of n)``
    when only ``k`` of ``n`` have one."""
    x = np.asarray(x, float)
    ok = x[~np.isnan(x)]
    if ok.size == 0:
        return "never"
    m, se = seed_mean_se(ok)
    text = f"{m:.{digits}f} ± {se:.{digits}f}"
    return text if ok.size == x.size else f"{text} ({ok.size} of {x.size})"


def ms_text(x: np.ndarray, digits: int = 1) -> str:
    """``mean ± se`` over seeds."""
    m, se = seed_mean_se(x)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def add_seed_columns(
    cols: dict[str, list[Any]], key: str, pairs: Iterable[tuple[float, float]]
) -> None:
    """CSV columns ``key`` and ``key_se`` from ``(mean, se)`` pairs, one per row."""
    ms = list(pairs)
    cols[key] = [m for m, _ in ms]
    cols[key + "_se"] = [e for _, e in ms]


def seed_mapper(scheduler: str | None, progress: bool) -> MapFn | None:
    """How the seeds run: ``None`` (in this process) for ``"inline"``, else
    :func:`moecl_lib.sweep.tasks.map_calls` on ``scheduler``."""
    if scheduler == INLINE:
        return None
    return partial(map_calls, scheduler=scheduler, progress=progress, desc="seeds")
