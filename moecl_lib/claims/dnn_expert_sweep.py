"""Deep networks, number of experts (claim ``dnn_more_experts``): more experts need more
rounds and do not improve the performance at a fixed horizon.

**What the paper states** (abstract [V], SPEC §6.8 items 4-5): adding experts requires
more rounds before convergence and may not improve the learning performance at a given
horizon. In the theory the router needs ``T1 ∝ M`` rounds to specialise, and after
specialisation each expert trains in only about ``1/M`` of the rounds.

**What this module runs** (our protocol [C], as in
:mod:`moecl_lib.claims.dnn_moe_vs_single`): the same ``N = 3`` one-vs-rest tasks, CNN
experts, router and metrics; the number of experts ``M`` varies over ``experts`` at a
fixed horizon ``T = n_rounds``; every MoE uses the ``gap`` termination rule with
``T1 = t1_per_expert * M``; ``M = 1`` is the single network. All learners of a seed see
the same stream.

**Convergence round** (our definition). Per seed, ``t_conv`` is the first round from
which the router-view test accuracy (mean over tasks) stays at or above
``acc_threshold`` until ``T``; a run that is below the threshold at ``T`` is censored at
``T + 1`` (it needs more than ``T`` rounds). ``T2 = T1 + 1`` grows with ``M`` by
construction (``T1 ∝ M``), so it is not evidence; ``t_conv`` is.

**Readings** (each must clear its threshold by 2 standard errors,
:mod:`moecl_lib.claims.rule`, with the small-sample s.e. of
:func:`moecl_lib.claims.estimators.small_sample_se`; over the MoEs with ``M >= N``,
where the theory's "more experts" statement applies: with ``M < N`` an expert must serve
conflicting tasks and the accuracy has a floor, which is a different effect):

1. ``trend`` (more experts need more rounds): the least-squares slope of ``t_conv`` on
   ``M`` over ``M >= N``, computed per seed (censored runs at ``T + 1``, a lower bound),
   mean over seeds ``>= 0``. The same trend reading as the linear chapter
   ``sweep_experts`` (slope of the convergence round on ``M``, not reached = ``T + 1``,
   no monotonicity reading: a non-monotone sweep shows up as a small or negative slope).
   The per-seed Spearman rank correlation and the steps between consecutive ``M`` are
   recorded as quantities.
2. ``no_gain``: at the horizon the largest ``M`` is not better: learner-view
   ``G_T(M_max) - G_T(M*) >= 0``, with ``M*`` the ``M >= N`` below ``M_max`` with the
   lowest mean ``G_T`` (paired over seeds).

**Conventions.** Metrics in % on held-out test images, means over seeds with their s.e.
(see :mod:`moecl_lib.claims.dnn_moe_vs_single`); estimates carry the measured tolerance
floors of :data:`moecl_lib.claims.dnn_moe_vs_single.FLOORS` (``t_conv``:
:data:`T_CONV_FLOOR` rounds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.claims.curve_stats import spearman
from moecl_lib.claims.dnn_common import (
    FLOORS,
    LEARNER_VIEW_TITLE,
    Data,
    add_seed_columns,
    learner_factory,
    load_tasks,
    per_seed,
    seed_cell,
    seed_mapper,
)
from moecl_lib.claims.estimators import seed_mean_se, small_sample_se
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate, fmt_number
from moecl_lib.deep.learners import StreamResult
from moecl_lib.deep.moe import DeepMoEConfig, set_determinism
from moecl_lib.deep.study import MapFn, Results, run_paired
from moecl_lib.figures.tables import text_table
from moecl_lib.sweep.tasks import shared_scheduler

CHAPTER = "dnn_expert_sweep"
#: Tolerance floors of the convergence-round quantities (see FLOORS for the
#: measurement): the per-seed t_conv did not move under the CPU-kernel variants; the
#: floors allow one seed of five to move by 5 rounds (t_conv: 1 round; slope over M: 0.2
#: rounds per expert) or its rank correlation by 1 (0.2).
T_CONV_FLOOR = 1.0
SLOPE_FLOOR = 0.2
RANK_FLOOR = 0.2
STATS = ("ACC", "F_T", "G_T", "forgetting", "F_T_router", "final_acc_router")


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    computation parameter)."""

    dataset: str = "digits"
    data_dir: str | None = None
    positives: tuple[int, ...] = (1, 4, 7)
    experts: tuple[int, ...] = (1, 2, 4, 8)
    n_rounds: int = 40
    batch_size: int = 50
    max_test: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    eta: float = 1.0
    alpha: float = 0.3
    lam: float = 0.3
    t1_per_expert: int = 5
    lr: float = 0.1
    epochs: int = 3
    acc_threshold: float = 85.0

    def __post_init__(self) -> None:
        for name in ("positives", "experts", "seeds"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))


# --------------------------------------------------------------------------- estimators


def convergence_round(acc: np.ndarray, threshold: float) -> float:
    """First round (1-based) from which ``acc`` (per round) stays ``>= threshold`` to
    the end; ``T + 1`` if ``acc[T] < threshold`` (censored: not converged within the
    horizon)."""
    ok = np.asarray(acc) >= threshold
    T = ok.shape[0]
    if not ok[-1]:
        return float(T + 1)
    bad = np.flatnonzero(~ok)
    return float(bad[-1] + 2) if bad.size else 1.0


def router_curve(run: StreamResult) -> np.ndarray:
    """Router-view test accuracy after each round, mean over tasks, (T,)."""
    return run.acc_routed.mean(axis=1)


# ------------------------------------------------------------------------------- result


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: runs, per-seed statistics, quantities, claim checks and
    configurations."""

    chapter = CHAPTER

    params: Params
    data: Data
    base: DeepMoEConfig
    results: Results  # "M=<M>" -> runs (one per seed)
    stats: dict[
        int, dict[str, np.ndarray]
    ]  # M -> statistic -> per-seed values (incl. "t_conv")
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    @property
    def N(self) -> int:
        return len(self.data.tasks)

    def T1(self, M: int) -> int:
        return self.base.replace(n_experts=M).T1_value if M > 1 else 0

    def table(self) -> str:
        """Means ± s.e. over seeds per ``M`` (T1, T2 and routing not shown for
        ``M = 1``)."""
        out = []
        blocks = [
            (LEARNER_VIEW_TITLE, ["ACC", "F_T", "G_T", "forgetting"], 1),
            (
                "router view (the router's current choice), %; M = 1 has one view",
                ["ACC_router", "F_T_router", "final_acc_router"],
                1,
            ),
            ("routing (M >= 2)", ["T2", "purity", "load_entropy"], 2),
            (
                "convergence round (router-view accuracy stays >= "
                f"{self.params.acc_threshold:g} %; T + 1 = "
                f"{self.params.n_rounds + 1}: not within T)",
                ["t_conv"],
                1,
            ),
        ]
        for title, keys, digits in blocks:
            rows = []
            for M in self.params.experts:
                st = self.stats[M]
                cells = []
                for k in keys:
                    if M == 1 and k in ("T2", "purity", "load_entropy"):
                        cells.append("—")
                    else:
                        cells.append(seed_cell(st[k], digits))
                rows.append([f"M={M}"] + cells)
            if "T2" in keys:
                head = ["M", "T1"] + keys
                rows = [
                    [r[0], str(self.T1(M)) if M > 1 else "—"] + r[1:]
                    for r, M in zip(rows, self.params.experts)
                ]
            else:
                head = ["M"] + keys
            out += [title + ":", text_table(head, rows)]
        return "\n".join(out)

    def t_conv_text(self) -> str:
        """Per-seed convergence rounds (``>T``: not within the horizon)."""
        T = self.params.n_rounds
        lines = [
            f"convergence round per seed (seeds {self.seeds}; '>{T}' = not within T):"
        ]
        for M in self.params.experts:
            vals = [
                ">" + str(T) if v > T else f"{v:.0f}" for v in self.stats[M]["t_conv"]
            ]
            lines.append(f"  M={M}: " + ", ".join(vals))
        return "\n".join(lines)

    def csv_columns(self) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {
            "M": list(self.params.experts),
            "T1": [self.T1(M) for M in self.params.experts],
        }
        for k in (
            "T2",
            "ACC",
            "F_T",
            "G_T",
            "forgetting",
            "ACC_router",
            "F_T_router",
            "final_acc_router",
            "t_conv",
        ):
            add_seed_columns(
                cols, k, (seed_mean_se(self.stats[M][k]) for M in self.params.experts)
            )
        return cols

    def config_text(self) -> str:
        return "\n".join(f"{name}: {cfg}" for name, cfg in self.configs.items())


# ---------------------------------------------------------------------------------- run


def run(
    params: Params | None = None,
    *,
    progress: bool = True,
    scheduler: str | None = "inline",
) -> Result:
    """Run every ``M`` on every seed's stream; derive quantities and checks.

    ``scheduler``: where the seeds run (``"inline"``, ``"local"`` or a Dask address;
    :mod:`moecl_lib.sweep.tasks`); the numbers do not depend on it.
    """
    with shared_scheduler(scheduler) as address:
        return _run(params or Params(), progress, seed_mapper(address, progress))


def _run(p: Params, progress: bool, map_fn: MapFn | None) -> Result:
    data = load_tasks(p.dataset, p.data_dir, p.positives, p.max_test)
    big = [M for M in p.experts if M >= len(data.tasks)]
    if len(big) < 2:
        raise ValueError(
            f"experts={list(p.experts)} needs at least two M >= N = {len(data.tasks)}"
        )
    set_determinism()
    t0 = time.perf_counter()
    base = DeepMoEConfig(
        in_shape=tuple(data.raw.image_shape),
        n_classes=2,
        eta=p.eta,
        alpha=p.alpha,
        lam=p.lam,
        t1_per_expert=p.t1_per_expert,
        lr=p.lr,
        epochs=p.epochs,
        termination="gap",
    )
    cfgs = {M: base.replace(n_experts=M) for M in p.experts}
    results = run_paired(
        data.tasks,
        {f"M={M}": learner_factory(cfgs[M], f"M={M}") for M in p.experts},
        p.seeds,
        p.n_rounds,
        p.batch_size,
        progress=progress,
        map_fn=map_fn,
    )
    stats: dict[int, dict[str, np.ndarray]] = {}
    for M in p.experts:
        runs = results[f"M={M}"]
        st = per_seed(
            runs, p.n_rounds // 2
        )  # routing statistics over the second half (as before)
        st["t_conv"] = np.array(
            [convergence_round(router_curve(r), p.acc_threshold) for r in runs]
        )
        stats[M] = st
    configs = {f"M={M}": asdict(cfgs[M]) for M in p.experts}
    quantities, checks = derive(p, stats, len(data.tasks))
    return Result(
        p,
        data,
        base,
        results,
        stats,
        quantities,
        checks,
        configs,
        time.perf_counter() - t0,
        [int(s) for s in p.seeds],
    )


def _estimates_per_M(
    p: Params, stats: Mapping[int, Mapping[str, np.ndarray]]
) -> list[Quantity]:
    """Every ``M``'s statistics and convergence round, and the forgetting relative to
    the single network (claim ``dnn_forgetting``, owned by ``dnn_moe_vs_single``)."""
    qs: list[Quantity] = []
    for M in p.experts:
        st = stats[M]
        for s in STATS:
            if M == 1 and s == "F_T_router":
                continue  # the single network has one view
            qs.append(
                estimate(f"{s}_M{M}", st[s], floor=FLOORS[s], label=f"{s} (M={M})")
            )
        qs.append(
            estimate(
                f"t_conv_M{M}",
                st["t_conv"],
                floor=T_CONV_FLOOR,
                label=f"convergence round (M={M})",
            )
        )
    if 1 in p.experts:
        qs += [
            estimate(
                f"dF_T_M1_M{M}",
                stats[1]["F_T"] - stats[M]["F_T"],
                floor=FLOORS["F_T"],
                label=f"F_T(M=1) - F_T(M={M}) (learner view)",
            )
            for M in p.experts
            if M > 1
        ]
    return qs


def _trend(
    stats: Mapping[int, Mapping[str, np.ndarray]], big: list[int]
) -> list[Quantity]:
    """Over ``M >= N``: slope and rank correlation of the convergence round on ``M``
    (per seed), and its steps between consecutive ``M``."""
    tc = np.array([stats[M]["t_conv"] for M in big])  # (len(big), seeds)
    rho = np.array([spearman(big, tc[:, j]) for j in range(tc.shape[1])])
    q_rho = estimate(
        "t_conv_rank_corr",
        rho,
        floor=RANK_FLOOR,
        label=f"Spearman(M, t_conv) over M in {big}",
    )
    slope = np.array(
        [np.polyfit(np.asarray(big, float), tc[:, j], 1)[0] for j in range(tc.shape[1])]
    )
    q_slope = estimate(
        "t_conv_slope",
        slope,
        floor=SLOPE_FLOOR,
        label=f"slope of t_conv vs M over M in {big} (rounds)",
    )
    steps = [
        estimate(
            f"dt_conv_M{b}_M{a}",
            stats[b]["t_conv"] - stats[a]["t_conv"],
            floor=T_CONV_FLOOR,
            label=f"t_conv(M={b}) - t_conv(M={a})",
        )
        for a, b in zip(big, big[1:])
    ]
    return [q_slope, q_rho, *steps]


def derive(
    p: Params, stats: Mapping[int, Mapping[str, np.ndarray]], N: int
) -> tuple[list[Quantity], list[ClaimCheck]]:
    """Quantities and the claim check from per-seed statistics (``stats[M][statistic]``,
    one value per seed)."""
    qs = _estimates_per_M(p, stats)
    big = [M for M in p.experts if M >= N]
    trend = _trend(stats, big)
    q_slope = trend[0]
    M_max = max(big)
    cand = [M for M in big if M < M_max]
    M_star = min(cand, key=lambda M: float(np.mean(stats[M]["G_T"])))
    q_gain = estimate(
        "dG_T_max_best",
        stats[M_max]["G_T"] - stats[M_star]["G_T"],
        floor=FLOORS["G_T"],
        label=f"G_T(M={M_max}) - G_T(M={M_star}) (learner view)",
    )
    qs += [*trend, q_gain]
    readings = (
        Reading(
            "trend",
            f"slope of the convergence round on M over M in {big} (rounds per "
            "expert, per seed)",
            q_slope.value,
            0.0,
            small_sample_se(q_slope.se, q_slope.n),
        ),
        Reading(
            "no_gain",
            f"G_T(M={M_max}) - G_T(M={M_star}) at T = {p.n_rounds}, learner view (%); "
            f"M = {M_star}: best mean G_T among {cand}",
            q_gain.value,
            0.0,
            small_sample_se(q_gain.se, q_gain.n),
        ),
    )
    return qs, [ClaimCheck("dnn_more_experts", "-", readings)]


def prose(result: Result) -> dict[str, str]:
    """Glued sentences whose direction depends on the run."""
    st = result.stats
    big = [M for M in result.params.experts if M >= result.N]
    means = {M: float(np.mean(st[M]["G_T"])) for M in result.params.experts}
    best = min(big, key=lambda M: means[M])
    few = [M for M in result.params.experts if 1 < M < result.N]
    d_few = [
        result.quantity(f"dF_T_M1_M{M}") for M in few if 1 in result.params.experts
    ]
    return {
        "forgetting_few_sentence": (
            "; ".join(
                f"M = {M}: {fmt_number(q.value, q.se)} points"
                for M, q in zip(few, d_few)
            )
            or "no M < N in this profile"
        ),
        "best_M_sentence": (
            f"the lowest mean learner-view G_T among M >= N is at M = {best} "
            f"({fmt_number(means[best])} %)"
        ),
        "t_conv_sentence": "; ".join(
            f"M = {M}: {fmt_number(float(np.mean(st[M]['t_conv'])))}" for M in big
        ),
    }
