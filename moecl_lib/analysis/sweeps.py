"""Families of simulations: a grid of configuration overrides, each member simulated
(batched over runs) and summarised by :func:`moecl_lib.analysis.routing.specialisation`.

Used by the calibration of the named settings (:mod:`moecl_lib.analysis.calibration`)
and by chapters that scan a parameter (:mod:`moecl_lib.claims.fig2_dynamics`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.analysis.routing import Specialisation, specialisation
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import SimulationResult, simulate

FloatArray = NDArray[np.floating]


@dataclass
class FamilyRun:
    """One member of a family: its grid labels, config, curves and diagnostics.

    Attributes:
        labels: the grid values that define this member (e.g.
            ``{"n_experts": 10, "termination": "gap"}``).
        config: the full configuration simulated.
        F_mean, F_se, G_mean, G_se: mean and standard error over runs of ``F_t`` and
            ``G_t``, shape (T,).
        spec: :class:`Specialisation` diagnostics.
        wall_time: seconds spent simulating it.
        result: the full :class:`SimulationResult` when ``keep_results=True``, else
            None.
    """

    labels: dict[str, Any]
    config: ExperimentConfig
    F_mean: FloatArray
    F_se: FloatArray
    G_mean: FloatArray
    G_se: FloatArray
    spec: Specialisation
    wall_time: float
    result: SimulationResult | None = None

    def row(self) -> dict[str, Any]:
        """Tidy summary row: labels, then the specialisation summary and the wall
        time."""
        return {**self.labels, **self.spec.summary(), "wall_s": self.wall_time}


@dataclass
class Family:
    """Results of :func:`run_family` in grid order."""

    runs: list[FamilyRun] = field(default_factory=list)
    wall_time: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One tidy summary row per member."""
        return [fr.row() for fr in self.runs]

    def get(self, **labels: Any) -> FamilyRun:
        """The unique member whose labels include ``labels`` (KeyError otherwise)."""
        hits = [
            fr
            for fr in self.runs
            if all(fr.labels.get(k) == v for k, v in labels.items())
        ]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} members match {labels}")
        return hits[0]

    def columns(self, keys: Sequence[str] | None = None) -> dict[str, list[Any]]:
        """Rows transposed to columns (for :func:`moecl_lib.figures.io.save_csv`)."""
        rows = self.rows()
        keys = list(rows[0]) if keys is None else list(keys)
        return {k: [r.get(k) for r in rows] for k in keys}


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Cartesian product of named value lists, as a list of label dicts (in the given
    axis order)."""
    names = list(axes)
    values = [list(v) for v in axes.values()]
    return [dict(zip(names, combo)) for combo in product(*values)]


#: Config fields that only act through the router (irrelevant for a single expert,
#: ``M = 1``).
ROUTER_ONLY: tuple[str, ...] = (
    "eta",
    "alpha",
    "lam",
    "gamma",
    "T1",
    "termination",
    "aux_grad",
    "lb_loss",
    "locality",
    "route_noise",
    "snapshot_every",
)


def _member_config(
    base: ExperimentConfig,
    labels: Mapping[str, Any],
    T1_per_expert: float | None,
) -> ExperimentConfig:
    """``base`` with a member's overrides (and ``T1 = ceil(T1_per_expert * M)``)."""
    changes = dict(labels)
    M = int(changes.get("n_experts", base.n_experts))
    if T1_per_expert is not None and "T1" not in changes:
        changes["T1"] = int(math.ceil(T1_per_expert * M))
    if M == 1:
        changes["termination"] = "never"  # no router: every rule gives the same run
    return base.replace(**changes)


def config_key(cfg: ExperimentConfig) -> tuple[tuple[str, Any], ...]:
    """Hashable identity of a simulation; a single expert ignores the router knobs."""
    key_items = cfg.to_dict()
    if cfg.n_experts == 1:
        # router-only knobs do not influence a single expert (checked in tests)
        for name in ROUTER_ONLY:
            key_items.pop(name, None)  # options at their default are not listed
    return tuple(sorted(key_items.items()))


def run_family(
    base: ExperimentConfig,
    members: Sequence[Mapping[str, Any]],
    *,
    T1_per_expert: float | None = None,
    window: int | None = None,
    keep_results: bool = False,
    progress: bool = True,
    cache: dict[Any, FamilyRun] | None = None,
) -> Family:
    """Simulate every member of a family (each batched over ``base.n_runs`` runs) and
    summarise it.

    Args:
        base: configuration shared by all members.
        members: label dicts of config overrides, e.g.
            ``grid(n_experts=[1, 10], termination=["gap", "never"])``. Members with
            ``n_experts = 1`` that differ only in router knobs (:data:`ROUTER_ONLY`) are
            simulated once and re-used (a single expert has no router).
        T1_per_expert: if given (and a member does not set ``T1``),
            ``T1 = ceil(T1_per_expert * M)`` (``T1 ∝ M``, SPEC §4.7) instead of the
            config's default formula.
        window: window length of :func:`specialisation`.
        keep_results: keep every full :class:`SimulationResult` (memory ~ 40 R T bytes
            each).
        progress: tqdm bar over members.
        cache: optional dict shared between calls: a member whose configuration (and
            ``window``) was already simulated in an earlier call with the same dict is
            re-used instead of simulated again.
    """
    fam = Family()
    start = time.perf_counter()
    cache = {} if cache is None else cache
    for labels in tqdm(list(members), disable=not progress, desc="family", leave=False):
        cfg = _member_config(base, labels, T1_per_expert)
        key = (config_key(cfg), window, keep_results)
        if key in cache:
            prev = cache[key]
            fam.runs.append(
                FamilyRun(
                    labels=dict(labels),
                    config=cfg,
                    F_mean=prev.F_mean,
                    F_se=prev.F_se,
                    G_mean=prev.G_mean,
                    G_se=prev.G_se,
                    spec=prev.spec,
                    wall_time=0.0,
                    result=prev.result,
                )
            )
            continue
        res = simulate(cfg)
        Fm, Fs = mean_se(res.F)
        Gm, Gs = mean_se(res.G)
        fr = FamilyRun(
            labels=dict(labels),
            config=cfg,
            F_mean=Fm,
            F_se=Fs,
            G_mean=Gm,
            G_se=Gs,
            spec=specialisation(res, window=window),
            wall_time=res.wall_time,
            result=res if keep_results else None,
        )
        cache[key] = fr
        fam.runs.append(fr)
    fam.wall_time = time.perf_counter() - start
    return fam
