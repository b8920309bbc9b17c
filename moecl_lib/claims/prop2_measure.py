"""What the Proposition 2 chapter (:mod:`moecl_lib.claims.prop2_no_termination`)
measures in one setting: its parameters, the simulated variants (with and without
termination, with and without the load-balancing loss, the single expert) and their
routing diagnostics (purity, churn, gate gaps of the sets learned by ``T1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moecl_lib.analysis.routing import (
    expert_sets,
    gate_gaps,
    primary_task_changes,
    purity_over_time,
    result_routing_matrix,
    routing_purity,
    windowed_routing_matrices,
)
from moecl_lib.analysis.sweeps import FamilyRun, run_family
from moecl_lib.claims.prop_settings import SettingParams, setting_base
from moecl_lib.linear.engine import SimulationResult

#: Variants simulated per setting: name -> config overrides (each with ``gap`` and
#: ``never``).
VARIANTS: dict[str, dict[str, Any]] = {"base": {}, "alpha0": {"alpha": 0.0}}
#: Extra control of the calibrated setting only: the literal decaying aux gradient.
DECAY_VARIANT: dict[str, Any] = {"aux_grad": "decay"}


@dataclass(frozen=True)
class Params(SettingParams):
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    parameter of the computation and stays out)."""


def shuffled_purity(
    res: SimulationResult, window: int, n_last: int, seed: int
) -> np.ndarray:
    """Per-run purity of the last ``n_last`` windows with the task labels shuffled
    inside each window (the purity random routing would give with the same expert loads
    and task counts), shape (R,)."""
    cfg = res.config
    rng = np.random.default_rng(seed)
    nw = cfg.T // window
    lo = (nw - n_last) * window
    experts = res.experts[:, lo : nw * window]
    tasks = res.tasks[:, lo : nw * window].reshape(cfg.n_runs, n_last, window).copy()
    tasks = rng.permuted(tasks, axis=2).reshape(cfg.n_runs, n_last * window)
    rms, _ = windowed_routing_matrices(
        experts, tasks, cfg.n_experts, cfg.n_tasks, window
    )
    R, w, M, N = rms.shape
    return routing_purity(rms.reshape(R * w, M, N)).reshape(R, w).mean(axis=1)


@dataclass
class SettingData:
    """Everything measured in one setting (per-run arrays of shape (R,), curves for the
    figures)."""

    setting: str
    T1: int
    lam: float
    runs: dict[str, dict[str, FamilyRun]]  # variant -> termination -> member
    single: FamilyRun
    purity: dict[str, np.ndarray]  # termination -> (R, n_windows) purity per window
    churn: dict[str, np.ndarray]  # termination -> (R, n_windows - 1)
    window_ends: np.ndarray
    churn_ends: np.ndarray
    gaps: dict[
        str, dict[str, np.ndarray]
    ]  # termination -> within/across/spread -> (R, S)
    snapshot_rounds: np.ndarray
    i_T1: int  # snapshot index of "at T1"


def _task_mean_gaps(res: SimulationResult, sets: np.ndarray) -> dict[str, np.ndarray]:
    within, across, spread = gate_gaps(res.gate_snapshots, sets).task_mean()
    return {"within": within, "across": across, "spread": spread}


def nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN (NaN for an all-NaN row, without a warning)."""
    cnt = np.sum(~np.isnan(x), axis=1)
    tot = np.nansum(x, axis=1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def measure_setting(setting: str, p: Params) -> SettingData:
    """Simulate one setting (all variants, both terminations, single expert) and its
    routing diagnostics."""
    base = setting_base(setting, p)
    variants = dict(VARIANTS)
    if setting == "calibrated":
        variants["decay"] = DECAY_VARIANT
    runs: dict[str, dict[str, FamilyRun]] = {}
    for var, over in variants.items():
        fam = run_family(
            base,
            [dict(over, termination=t) for t in ("gap", "never")],
            keep_results=True,
            window=p.window,
            progress=False,
        )
        runs[var] = {fr.labels["termination"]: fr for fr in fam.runs}
    single = run_family(
        base, [dict(n_experts=1)], window=p.window, progress=False
    ).runs[0]
    gap_res = runs["base"]["gap"].result
    assert gap_res is not None
    T1 = runs["base"]["gap"].spec.T1
    sets = expert_sets(
        result_routing_matrix(gap_res, after=T1, until=min(T1 + p.window, p.T))
    )
    purity, churn, gaps = {}, {}, {}
    ends = ends_ch = np.zeros(0, dtype=int)
    for term, fr in runs["base"].items():
        res = fr.result
        assert res is not None
        N = res.config.n_tasks
        purity[term], ends = purity_over_time(
            res.experts, res.tasks, p.n_experts, N, p.window
        )
        churn[term], ends_ch = primary_task_changes(
            res.experts, res.tasks, p.n_experts, N, p.window
        )
        gaps[term] = _task_mean_gaps(res, sets)
    sr = gap_res.snapshot_rounds
    return SettingData(
        setting=setting,
        T1=T1,
        lam=base.lam,
        runs=runs,
        single=single,
        purity=purity,
        churn=churn,
        window_ends=ends,
        churn_ends=ends_ch,
        gaps=gaps,
        snapshot_rounds=sr,
        i_T1=int(min(np.searchsorted(sr, T1), sr.size - 1)),
    )
