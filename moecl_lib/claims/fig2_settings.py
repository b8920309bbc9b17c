"""The simulated settings of the Figure 2 chapter
(:mod:`moecl_lib.claims.fig2_dynamics`): parameters, one setting's members (``M`` and
termination rule) with the arrays its readings use and the single expert's theory, and
the chapter's :class:`Result`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moecl_lib import figures as plotting
from moecl_lib.analysis.calibration import setting_config, setting_T1_per_expert
from moecl_lib.analysis.sweeps import FamilyRun, run_family
from moecl_lib.claims.curve_stats import configs_text
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory.exact import single_expert_exact, unit_signal_directions

CHAPTER = "fig2_dynamics"

FloatArray = NDArray[np.floating]
Key = tuple[int, str]


@dataclass(frozen=True)
class Params:
    """The notebook's parameters (defaults = quick profile)."""

    experts: tuple[int, ...] = (1, 5, 10, 20)
    T: int = 1500
    n_runs: int = 256
    recalled_runs: int = 64
    n_theory_pools: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "experts", tuple(int(m) for m in self.experts))
        if self.experts[0] != 1 or len(self.experts) < 3:
            raise ValueError(
                f"experts={self.experts} must start with 1 and hold at least two MoE "
                "sizes"
            )


@dataclass
class SettingRun:
    """The curves of one setting: members keyed by ``(M, termination)``
    (``(1, "never")`` = single expert)."""

    setting: str
    tag: str
    members: dict[Key, FamilyRun]
    theory: dict[str, Any]
    N: int
    runs: int


@dataclass
class Result(ChapterResult):
    """One chapter run (:func:`moecl_lib.claims.fig2_dynamics.run`): per-setting runs,
    quantities, checks, configurations."""

    chapter = CHAPTER

    params: Params
    settings: dict[str, SettingRun]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    texts: dict[str, str]
    wall_time_s: float

    def config_text(self) -> str:
        return configs_text(self.configs)

    def table(self, setting: str) -> str:
        """G_t at a few rounds and F_T per member (for the reader; not checked)."""
        sr = self.settings[setting]
        T = self.params.T
        check_t = sorted({t for t in (100, T // 4, T // 2, T) if t <= T})
        rows = []
        for (M, term), fr in sr.members.items():
            row: dict[str, Any] = {
                "M": M,
                "termination": "-" if M == 1 else term,
                "T1": fr.config.T1_value if M > 1 else 0,
            }
            row.update({f"G@{t}": fr.G_mean[t - 1] for t in check_t})
            row["F@T"] = fr.F_mean[-1]
            rows.append(row)
        head = f"{setting} (model gap Delta = {sr.theory['model_gap']:.3f})"
        return head + "\n" + plotting.table(rows, digits=3)


def simulate_setting(
    setting: str, p: Params, runs: int
) -> tuple[SettingRun, dict[Key, dict[str, FloatArray]]]:
    """Every member of one setting (``runs`` runs each) and the arrays the readings
    use per member; the single expert also gets the exact and isotropic theory."""
    base = setting_config(
        setting, p.experts[-1], T=p.T, n_runs=runs, seed=p.seed, T1=None
    )
    per_expert = setting_T1_per_expert(setting)
    N = base.n_tasks
    members: dict[Key, FamilyRun] = {}
    arrays: dict[Key, dict[str, FloatArray]] = {}
    keys: list[Key] = [(1, "never")] + [
        (M, t) for M in p.experts[1:] for t in ("gap", "never")
    ]
    th: dict[str, Any] = {}
    for M, term in keys:
        fam = run_family(
            base,
            [{"n_experts": M, "termination": term}],
            keep_results=True,
            T1_per_expert=per_expert,
            progress=False,
        )
        fr = fam.runs[0]
        res = fr.result
        assert res is not None
        q4 = p.T // 4
        arr = {
            "G_T": res.G[:, -1].copy(),
            "F_T": res.F[:, -1].copy(),
            "Gpool_T": res.G_pool[:, -1].copy(),
            "G_q3": res.G[:, 2 * q4 : 3 * q4].mean(1),
            "G_q4": res.G[:, 3 * q4 :].mean(1),
        }
        if M >= N and term == "gap":
            arr["G"] = res.G.copy()
            arr["G_pool"] = res.G_pool.copy()
        if M == 1:
            arr["Delta"] = theory.pool_moments(res.pool.W)[1]
            k = min(p.n_theory_pools, runs)
            vhat = unit_signal_directions(res.pool)
            exact = single_expert_exact(
                res.pool.W[:k], None if vhat is None else vhat[:k], base.s, p.T
            )
            wbar2, gap = theory.pool_moments(res.pool.W)
            t = np.arange(1, p.T + 1)
            with warnings.catch_warnings():  # F is undefined (NaN) at t = 1
                warnings.simplefilter("ignore", RuntimeWarning)
                F_exact = np.nanmean(exact.F, axis=0)
            th = {
                "G_exact": exact.G.mean(axis=0),
                "F_exact": F_exact,
                "G_iso": theory.single_expert_G(t, base.r, wbar2.mean(), gap.mean()),
                "F_iso": theory.single_expert_F(t, base.r, wbar2.mean(), gap.mean()),
                "model_gap": float(gap.mean()),
                "model_gap_pools": gap,
                "G_T_exact_pools": exact.G[:, -1],
                "exact_pools": k,
                "G_T_sim_pools": res.G[:k, -1].copy(),
            }
        fr.result = None
        members[(M, term)] = fr
        arrays[(M, term)] = arr
    return SettingRun(setting, "", members, th, N, runs), arrays
