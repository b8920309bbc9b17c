"""The tables and texts a result of the deep-network chapter
(:mod:`moecl_lib.claims.dnn_moe_vs_single`) shows the reader: means ± s.e. over seeds
per learner, final accuracy per task, errors at checkpoints, routing, the termination
sensitivity per router learning rate, and their CSV columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from moecl_lib.claims.dnn_common import (
    LEARNER_VIEW_TITLE,
    Data,
    add_seed_columns,
    ms_text,
    seed_cell,
)
from moecl_lib.claims.estimators import seed_mean_se
from moecl_lib.deep.moe import DeepMoEConfig
from moecl_lib.deep.study import Results
from moecl_lib.figures.tables import text_table

ROUTING = ("switches", "purity")
"""Routing statistics (not defined for the single network)."""
#: Statistics of the termination-sensitivity table.
SENSITIVITY_STATS = (
    "ACC",
    "F_T",
    "ACC_router",
    "F_T_router",
    "final_acc_router",
    "switches",
)


class ResultTables:
    """Tables and texts of :class:`moecl_lib.claims.dnn_moe_vs_single.Result` (a base
    class of it; the attributes below are the Result's fields)."""

    params: Any
    data: Data
    base: DeepMoEConfig
    names: dict[str, str]
    results: Results
    stats: dict[str, dict[str, np.ndarray]]
    sweep: dict[float, dict[str, dict[str, np.ndarray]]]
    configs: dict[str, Any]

    @property
    def T1(self) -> int:
        """``T1`` of the ``n_experts`` MoE."""
        return self.base.T1_value

    def cell(self, key: str, stat: str, digits: int = 1) -> str:
        """``mean ± se`` of a learner's statistic, ``—`` where it is not defined (single
        network's router)."""
        if key == "single" and stat in ROUTING + ("T2", "load_entropy"):
            return "—"
        return seed_cell(self.stats[key][stat], digits)

    def summary_table(self) -> str:
        """The learners' means over seeds (learner view, router view, routing after
        ``T1``)."""
        blocks = [
            (LEARNER_VIEW_TITLE, ["ACC", "BWT", "forgetting", "F_T", "G_T"], 1),
            (
                "router view (each arrival evaluated by the expert the router picks "
                "now), %; the single network has one view",
                ["ACC_router", "F_T_router", "G_T_router", "final_acc_router"],
                1,
            ),
            (
                f"routing after T1 = {self.T1} (not defined for the single network)",
                ["switches", "purity", "load_entropy", "T2"],
                2,
            ),
        ]
        out = []
        for title, keys, digits in blocks:
            rows = [
                [self.names[k]] + [self.cell(k, s, digits) for s in keys]
                for k in self.names
            ]
            out += [title + ":", text_table(["learner"] + keys, rows)]
        return "\n".join(out)

    def final_accuracy_text(self) -> str:
        lines = ["final accuracy per task (router view, %), mean over seeds:"]
        for name in self.names.values():
            acc = np.mean([r.acc_routed[-1] for r in self.results[name]], axis=0)
            per_task = "  ".join(
                f"{tn}: {a:.1f}" for tn, a in zip(self.data.task_names, acc)
            )
            lines.append(f"  {name:28s} {per_task}")
        return "\n".join(lines)

    def checkpoints_text(self) -> str:
        T = self.params.n_rounds
        cps = sorted({max(2, T // 4), T // 2, T})
        lines = []
        for view in ("learner", "router"):
            lines.append(f"{view} view: mean F_t / G_t (%) at rounds {cps}")
            for name, runs in self.results.items():
                fg = [r.curves(view) for r in runs]
                F = np.array([f for f, _ in fg])
                G = np.array([g for _, g in fg])
                lines.append(
                    f"  {name:28s} F: "
                    + " ".join(f"{F[:, c - 1].mean():6.1f}" for c in cps)
                    + "   G: "
                    + " ".join(f"{G[:, c - 1].mean():6.1f}" for c in cps)
                )
        return "\n".join(lines)

    def routing_text(self) -> str:
        lines = []
        for key in ("moe", "never", "few"):
            name = self.names[key]
            runs = self.results[name]
            after = (
                self.T1
                if key != "few"
                else self.base.replace(n_experts=self.params.n_experts_few).T1_value
            )
            loads = np.mean([r.loads() for r in runs], axis=0)
            rm = sum(r.routing_matrix(after) for r in runs)
            lines.append(
                f"{name}: mean loads {np.round(loads, 2).tolist()}; routing matrix "
                f"after T1 = {after} (rows = experts, cols = tasks, summed over "
                "seeds):"
            )
            lines.append(str(rm))
        return "\n".join(lines)

    def by_eta(self) -> dict[float, dict[str, Mapping[str, np.ndarray]]]:
        """Per-seed statistics of both ``n_experts`` MoEs per router learning rate
        (the chapter's ``eta`` first, then ``eta_sweep``)."""
        return {
            self.params.eta: {k: self.stats[k] for k in ("moe", "never")},
            **self.sweep,
        }

    def sensitivity_table(self) -> str:
        """Termination vs no termination at every router learning rate (the chapter's
        ``eta`` first)."""
        if not self.sweep:
            return "eta_sweep is empty (quick profile): sensitivity table skipped"
        keys = list(SENSITIVITY_STATS)
        rows = []
        for eta, st in self.by_eta().items():
            for k in ("moe", "never"):
                rows.append(
                    [
                        f"eta={eta:g}, "
                        f"{'termination' if k == 'moe' else 'no termination'}"
                    ]
                    + [ms_text(st[k][s]) for s in keys]
                )
        return text_table(["learner"] + keys, rows)

    def csv_summary(self) -> dict[str, list[Any]]:
        """Per learner: mean and s.e. of every statistic (NaN where not defined)."""
        keys = [k for k in self.stats["moe"] if k != "wall_time"]
        out: dict[str, list[Any]] = {"learner": list(self.names.values())}
        for s in keys:
            undefined = ROUTING + ("T2", "load_entropy")
            add_seed_columns(
                out,
                s,
                (
                    (
                        seed_mean_se(self.stats[k][s])
                        if not (k == "single" and s in undefined)
                        else (math.nan, math.nan)
                    )
                    for k in self.names
                ),
            )
        return out

    def sensitivity_csv(self) -> dict[str, list[Any]]:
        """Columns of the sensitivity table (empty without ``eta_sweep``)."""
        if not self.sweep:
            return {}
        keys = SENSITIVITY_STATS
        cols: dict[str, list[Any]] = {"eta": [], "termination": []}
        for s in keys:
            cols[s], cols[s + "_se"] = [], []
        for eta, st in self.by_eta().items():
            for k in ("moe", "never"):
                cols["eta"].append(eta)
                cols["termination"].append("gap" if k == "moe" else "never")
                for s in keys:
                    m, e = seed_mean_se(st[k][s])
                    cols[s].append(m)
                    cols[s + "_se"].append(e)
        return cols

    def config_text(self) -> str:
        return "\n".join(f"{name}: {cfg}" for name, cfg in self.configs.items())

    def wall_text(self) -> str:
        return "mean wall time per run: " + ", ".join(
            f"{name}: {np.mean([r.wall_time for r in runs]):.1f} s"
            for name, runs in self.results.items()
        )
