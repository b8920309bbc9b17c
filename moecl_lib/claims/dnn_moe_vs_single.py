"""Deep networks (claims ``dnn_forgetting``, ``dnn_termination``): an MoE of CNN experts
vs a single network.

**What the paper states** (abstract [V]; protocol [R-L], SPEC §6.8 items 3 and 6,
§7.3-§7.4): the insights of the linear theory carry over to deep networks. An MoE of CNN
experts forgets less than a single network (with ``M >= N`` and with ``M < N`` experts),
and terminating the router's training after convergence gives a stable routing that
helps, whereas a router that keeps training keeps changing the routing.

**What this module runs** (our protocol [C]; :mod:`moecl_lib.deep.moe`,
:mod:`moecl_lib.deep.study`): ``N = 3`` one-vs-rest tasks (classes ``positives``) of a
substitute data set (sklearn digits in the quick profile, Fashion-MNIST for MNIST in the
paper profile), inputs standardised with the pooled mean image. For every seed the same
stream (task drawn uniformly per round, fresh batch) is played by four learners: the
single network, the MoE of ``n_experts`` CNN experts with ``gap`` termination ("moe")
and without termination ("never"), and an MoE with ``n_experts_few < N`` experts and
``gap`` termination ("few"). For every router learning rate of ``eta_sweep`` the two
``n_experts`` MoEs are run again (termination sensitivity).

**Readings** (each must clear its threshold by 2 standard errors,
:mod:`moecl_lib.claims.rule`). Every reading is a mean over seeds of a per-seed paired
difference (same stream for every learner of a seed); its s.e. is the paired s.e. over
the ``n`` seeds times the small-sample factor ``t_{n-1}(Phi(2)) / 2``
(:func:`small_sample_se`: 1.43 for 5 seeds). With 3-5 seeds the sample s.d. is itself
uncertain, and a plain 2-s.e. margin then decides readings with no real effect in about
one seed set in ten (measured on 24 quick-profile seeds); the factor makes the margin
mean the same confidence as with many runs. Recorded quantities keep the plain s.e.:

``dnn_forgetting`` (setting ``-``):

1. ``F_T(single) - F_T(moe) >= 0`` (paper's forgetting analogue, learner view: each
   arrival evaluated by the expert that learned it);
2. the same in the router view (each arrival evaluated by the expert the router picks
   now);
3. Chaudhry forgetting ``single - moe >= 0`` (learner view);
4. ``F_T(single) - F_T(few) >= 0`` (``M < N``, learner view);
5. the same for ``M < N`` in the router view.

``dnn_termination`` (setting ``-``):

1. with termination, the noise-free routing changes at most ``STABLE_SWITCHES`` times
   after ``T1`` (mean over seeds; 0 when every run froze at ``T1 + 1``);
2. without termination it keeps changing: switches after ``T1``, ``never - moe >= 0``;
3. termination helps: final router-view test accuracy, ``moe - never >= 0``;
4. the same at every extra router learning rate of ``eta_sweep`` (paper profile only;
   the quick profile's ``eta_sweep`` is empty).

**Conventions.** Metrics are in % on held-out test images
(:class:`moecl_lib.deep.learners.StreamResult`): ``F_T`` and ``G_T`` are the paper's
analogues on the test error, ``forgetting`` is Chaudhry's (>= 0), ``final_acc`` the
router-view accuracy after round ``T`` averaged over tasks. Switches and purity count
the rounds after ``T1`` of the ``n_experts`` MoE (the earliest freeze); they are not
defined for the single network, which has no router, and its router view is its only
view. Every quantity is a mean over seeds with its s.e.; deep-network numbers from a few
seeds can follow other trajectories on other CPU kernels (last-bit differences in the
convolutions change which test images are right and, through the argmax router, which
expert trains), so every estimate carries an absolute tolerance ``floor`` measured under
the CPU-kernel variants (see :data:`FLOORS`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.claims.estimators import paired_difference, seed_mean_se, small_sample_se
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import (
    ClaimCheck,
    Quantity,
    Reading,
    estimate,
    fmt_number,
)
from moecl_lib.deep.datasets import (
    ImageDataset,
    load_fashion_mnist,
    load_mnist,
    load_sklearn_digits,
    one_vs_rest_tasks,
    standardise,
)
from moecl_lib.deep.learners import StreamResult, TaskData
from moecl_lib.deep.moe import DeepMoE, DeepMoEConfig, set_determinism, single_network
from moecl_lib.deep.study import Results, run_paired, run_stats
from moecl_lib.figures.tables import text_table

CHAPTER = "dnn_moe_vs_single"
#: Learner keys (used in quantity names) and their display names (``{M}`` and ``{few}``
#: filled in).
LEARNERS: dict[str, str] = {
    "single": "single network",
    "moe": "MoE M={M}, termination",
    "never": "MoE M={M}, no termination",
    "few": "MoE M={few}, termination",
}
#: Mean number of routing changes after ``T1`` up to which the terminated router counts
#: as stable.
STABLE_SWITCHES = 0.5
#: Per-seed statistics recorded for every learner (learner view unless named
#: ``_router``).
LEARNER_VIEW = ("ACC", "F_T", "G_T", "forgetting")
ROUTER_VIEW = ("F_T_router", "G_T_router", "final_acc_router")
ROUTING = ("switches", "purity")
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


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    computation parameter).

    ``positives``, ``seeds`` and ``eta_sweep`` accept lists (stored as tuples).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    positives: tuple[int, ...] = (1, 4, 7)
    n_rounds: int = 40
    batch_size: int = 50
    max_test: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_experts: int = 4
    n_experts_few: int = 2
    eta: float = 1.0
    alpha: float = 0.3
    lam: float = 0.3
    t1_per_expert: int = 5
    aux_grad: str = "decay"
    lr: float = 0.1
    epochs: int = 3
    eta_sweep: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("positives", "seeds", "eta_sweep"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


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


# --------------------------------------------------------------------------- estimators


def per_seed(runs: Sequence[StreamResult], after: int) -> dict[str, np.ndarray]:
    """``run_stats`` of each run (routing statistics over rounds ``> after``), as arrays
    over seeds; ``T2`` is NaN for a run whose router was never frozen."""
    stats = [run_stats(r, after) for r in runs]
    out = {k: np.array([s[k] for s in stats], dtype=float) for k in stats[0]}
    out["T2"] = np.where(
        out["T2"] < 0, np.nan, out["T2"]
    )  # -1 = never frozen: not a round
    return out


def reading(
    q: Quantity, statement: str, threshold: float, sense: str = ">="
) -> Reading:
    """A reading on a recorded quantity: its value, and its s.e. adjusted for the number
    of seeds (:func:`small_sample_se`)."""
    se = small_sample_se(q.se, q.n)
    return Reading(q.name, statement, q.value, threshold, se, sense)  # type: ignore[arg-type]


def eta_key(eta: float) -> str:
    """``0.03 -> "eta0p03"``: a router learning rate in a quantity name."""
    return "eta" + f"{eta:g}".replace(".", "p").replace("-", "m")


# ------------------------------------------------------------------------------- result


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: runs, per-seed statistics, quantities, claim checks and
    configurations."""

    chapter = CHAPTER

    params: Params
    data: Data
    base: DeepMoEConfig
    names: dict[str, str]  # learner key -> display name
    results: Results  # display name -> runs (one per seed)
    stats: dict[
        str, dict[str, np.ndarray]
    ]  # learner key -> statistic -> per-seed values
    sweep: dict[
        float, dict[str, dict[str, np.ndarray]]
    ]  # extra eta -> "moe"/"never" -> per-seed stats
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    @property
    def T1(self) -> int:
        return self.base.T1_value

    # --------------------------------------------------------------------------- tables
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
            (
                "learner view (each arrival evaluated by the expert that learned "
                "it), %",
                ["ACC", "BWT", "forgetting", "F_T", "G_T"],
                1,
            ),
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

    def sensitivity_table(self) -> str:
        """Termination vs no termination at every router learning rate (the chapter's
        ``eta`` first)."""
        if not self.sweep:
            return "eta_sweep is empty (quick profile): sensitivity table skipped"
        keys = [
            "ACC",
            "F_T",
            "ACC_router",
            "F_T_router",
            "final_acc_router",
            "switches",
        ]
        rows = []
        tables = {
            self.params.eta: {k: self.stats[k] for k in ("moe", "never")},
            **self.sweep,
        }
        for eta, st in tables.items():
            for k in ("moe", "never"):
                rows.append(
                    [
                        f"eta={eta:g}, "
                        f"{'termination' if k == 'moe' else 'no termination'}"
                    ]
                    + [_ms_text(st[k][s]) for s in keys]
                )
        return text_table(["learner"] + keys, rows)

    def csv_summary(self) -> dict[str, list[Any]]:
        """Per learner: mean and s.e. of every statistic (NaN where not defined)."""
        keys = [k for k in self.stats["moe"] if k != "wall_time"]
        out: dict[str, list[Any]] = {"learner": list(self.names.values())}
        for s in keys:
            undefined = ROUTING + ("T2", "load_entropy")
            ms = [
                (
                    seed_mean_se(self.stats[k][s])
                    if not (k == "single" and s in undefined)
                    else (math.nan, math.nan)
                )
                for k in self.names
            ]
            out[s] = [m for m, _ in ms]
            out[s + "_se"] = [e for _, e in ms]
        return out

    def sensitivity_csv(self) -> dict[str, list[Any]]:
        """Columns of the sensitivity table (empty without ``eta_sweep``)."""
        if not self.sweep:
            return {}
        keys = [
            "ACC",
            "F_T",
            "ACC_router",
            "F_T_router",
            "final_acc_router",
            "switches",
        ]
        tables = {
            self.params.eta: {k: self.stats[k] for k in ("moe", "never")},
            **self.sweep,
        }
        cols: dict[str, list[Any]] = {"eta": [], "termination": []}
        for s in keys:
            cols[s], cols[s + "_se"] = [], []
        for eta, st in tables.items():
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


def _ms_text(x: np.ndarray, digits: int = 1) -> str:
    m, se = seed_mean_se(x)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


# ---------------------------------------------------------------------------------- run


def base_config(p: Params, raw: ImageDataset) -> DeepMoEConfig:
    """The chapter's MoE configuration (``n_experts`` experts, ``seed`` and
    ``termination`` set per run)."""
    return DeepMoEConfig(
        n_experts=p.n_experts,
        in_shape=tuple(raw.image_shape),
        n_classes=2,
        eta=p.eta,
        alpha=p.alpha,
        lam=p.lam,
        t1_per_expert=p.t1_per_expert,
        aux_grad=p.aux_grad,
        lr=p.lr,
        epochs=p.epochs,
    )


def learner_configs(p: Params, base: DeepMoEConfig) -> dict[str, DeepMoEConfig]:
    """Learner key -> configuration (seed 0; every run replaces the seed)."""
    return {
        "single": base.replace(n_experts=1),
        "moe": base.replace(termination="gap"),
        "never": base.replace(termination="never"),
        "few": base.replace(n_experts=p.n_experts_few, termination="gap"),
    }


def _factory(cfg: DeepMoEConfig, name: str) -> Callable[[int], DeepMoE]:
    if cfg.n_experts == 1:
        return lambda s: single_network(cfg.replace(seed=s), name=name)
    return lambda s: DeepMoE(cfg.replace(seed=s), name=name)


def run(params: Params | None = None, *, progress: bool = True) -> Result:
    """Run every learner on every seed's stream, then the ``eta_sweep``; derive
    quantities and checks."""
    p = params or Params()
    if not 1 <= p.n_experts_few < len(p.positives) <= p.n_experts:
        raise ValueError(
            f"need n_experts_few < N = {len(p.positives)} <= n_experts "
            f"(got {p.n_experts_few}, {p.n_experts})"
        )
    set_determinism()
    t0 = time.perf_counter()
    data = load_tasks(p.dataset, p.data_dir, p.positives, p.max_test)
    base = base_config(p, data.raw)
    cfgs = learner_configs(p, base)
    names = {
        k: v.format(M=p.n_experts, few=p.n_experts_few) for k, v in LEARNERS.items()
    }
    results = run_paired(
        data.tasks,
        {names[k]: _factory(cfgs[k], names[k]) for k in names},
        p.seeds,
        p.n_rounds,
        p.batch_size,
        progress=progress,
    )
    stats = {k: per_seed(results[names[k]], cfgs[k].T1_value) for k in names}
    configs: dict[str, Any] = {names[k]: asdict(cfgs[k]) for k in names}
    sweep: dict[float, dict[str, dict[str, np.ndarray]]] = {}
    for eta in p.eta_sweep:
        ce = {k: cfgs[k].replace(eta=float(eta)) for k in ("moe", "never")}
        nm = {k: f"eta={eta:g}, {names[k]}" for k in ce}
        res = run_paired(
            data.tasks,
            {nm[k]: _factory(ce[k], nm[k]) for k in ce},
            p.seeds,
            p.n_rounds,
            p.batch_size,
            progress=progress,
        )
        sweep[float(eta)] = {k: per_seed(res[nm[k]], ce[k].T1_value) for k in ce}
        configs.update({nm[k]: asdict(ce[k]) for k in ce})
    quantities, checks = derive(p, stats, sweep)
    return Result(
        p,
        data,
        base,
        names,
        results,
        stats,
        sweep,
        quantities,
        checks,
        configs,
        time.perf_counter() - t0,
        [int(s) for s in p.seeds],
    )


def derive(
    p: Params,
    stats: Mapping[str, Mapping[str, np.ndarray]],
    sweep: Mapping[float, Mapping[str, Mapping[str, np.ndarray]]],
) -> tuple[list[Quantity], list[ClaimCheck]]:
    """Quantities and claim checks from per-seed statistics
    (``stats[learner][statistic]``, one value per seed; learners ``single``, ``moe``,
    ``never``, ``few``; ``sweep[eta]["moe" | "never"]`` likewise)."""
    M, few = p.n_experts, p.n_experts_few
    qs: list[Quantity] = []

    def add(q: Quantity) -> Quantity:
        qs.append(q)
        return q

    for key in ("single", "moe", "never", "few"):
        st = stats[key]
        keys = LEARNER_VIEW + (
            ("final_acc_router",) if key == "single" else ROUTER_VIEW + ROUTING
        )
        if key in ("moe", "few"):
            keys = keys + ("T2",)
        for s in keys:
            single_router = key == "single" and s == "final_acc_router"
            name = f"{'final_acc' if single_router else s}_{key}"
            if not np.isnan(st[s]).all():  # T2: runs whose router froze
                add(estimate(name, st[s], floor=FLOORS[s], label=f"{s} ({key})"))
    s, m, n, f = stats["single"], stats["moe"], stats["never"], stats["few"]
    d_F = add(
        paired_difference(
            "dF_T_single_moe",
            s["F_T"],
            m["F_T"],
            floor=FLOORS["F_T"],
            label=f"F_T single - MoE M={M} (learner view)",
        )
    )
    d_Fr = add(
        paired_difference(
            "dF_T_router_single_moe",
            s["F_T"],
            m["F_T_router"],
            floor=FLOORS["F_T_router"],
            label=f"F_T single - MoE M={M} (router view)",
        )
    )
    d_forg = add(
        paired_difference(
            "dforgetting_single_moe",
            s["forgetting"],
            m["forgetting"],
            floor=FLOORS["forgetting"],
            label=f"Chaudhry forgetting single - MoE M={M}",
        )
    )
    d_Ff = add(
        paired_difference(
            "dF_T_single_few",
            s["F_T"],
            f["F_T"],
            floor=FLOORS["F_T"],
            label=f"F_T single - MoE M={few} (learner view)",
        )
    )
    d_Ffr = add(
        paired_difference(
            "dF_T_router_single_few",
            s["F_T"],
            f["F_T_router"],
            floor=FLOORS["F_T_router"],
            label=f"F_T single - MoE M={few} (router view)",
        )
    )
    d_sw = add(
        paired_difference(
            "dswitches_never_moe",
            n["switches"],
            m["switches"],
            floor=FLOORS["switches"],
            label=f"routing changes after T1, no termination - termination (M={M})",
        )
    )
    d_acc = add(
        paired_difference(
            "dfinal_acc_router_moe_never",
            m["final_acc_router"],
            n["final_acc_router"],
            floor=FLOORS["final_acc_router"],
            label=f"final router-view accuracy, termination - no termination (M={M})",
        )
    )
    sw_moe = next(q for q in qs if q.name == "switches_moe")
    helps_eta = []
    for eta, st in sweep.items():
        k = eta_key(eta)
        for key in ("moe", "never"):
            for s_ in ("final_acc_router", "switches"):
                add(
                    estimate(
                        f"{s_}_{key}_{k}",
                        st[key][s_],
                        floor=FLOORS[s_],
                        label=f"{s_} ({key}, eta={eta:g})",
                    )
                )
        helps_eta.append(
            (
                eta,
                add(
                    paired_difference(
                        f"dfinal_acc_router_moe_never_{k}",
                        st["moe"]["final_acc_router"],
                        st["never"]["final_acc_router"],
                        floor=FLOORS["final_acc_router"],
                        label=(
                            "final router-view accuracy, termination - no "
                            f"termination, eta={eta:g}"
                        ),
                    )
                ),
            )
        )
    forgetting = ClaimCheck(
        "dnn_forgetting",
        "-",
        (
            reading(d_F, f"F_T single - MoE M={M}, learner view (%)", 0.0),
            reading(d_Fr, f"F_T single - MoE M={M}, router view (%)", 0.0),
            reading(
                d_forg, f"Chaudhry forgetting single - MoE M={M}, learner view (%)", 0.0
            ),
            reading(d_Ff, f"F_T single - MoE M={few} < N, learner view (%)", 0.0),
            reading(d_Ffr, f"F_T single - MoE M={few} < N, router view (%)", 0.0),
        ),
    )
    term = [
        reading(
            sw_moe,
            f"routing changes after T1 with termination (M={M})",
            STABLE_SWITCHES,
            "<=",
        ),
        reading(
            d_sw, f"routing changes after T1, no termination - termination (M={M})", 0.0
        ),
        reading(
            d_acc,
            "final router-view accuracy, termination - no termination, "
            f"eta={p.eta:g} (%)",
            0.0,
        ),
    ]
    term += [
        reading(
            q,
            f"final router-view accuracy, termination - no termination, eta={eta:g} "
            "(%)",
            0.0,
        )
        for eta, q in helps_eta
    ]
    return qs, [forgetting, ClaimCheck("dnn_termination", "-", tuple(term))]


# -------------------------------------------------------------------------------- prose


def outcome_sentence(check: ClaimCheck) -> str:
    """The readings of a check grouped by outcome, in words (for glued prose)."""
    parts = []
    for outcome, word in (
        ("holds", "holding"),
        ("fails", "failing"),
        ("inconclusive", "inconclusive"),
    ):
        mine = [r.statement for r in check.readings if r.outcome == outcome]
        if mine:
            parts.append(f"{word}: " + "; ".join(mine))
    return " — ".join(parts)


def prose(result: Result) -> dict[str, str]:
    """Glued sentences whose content depends on the run (``{glue:text}`key``` in the
    notebook)."""
    checks = {c.claim: c for c in result.checks}
    if result.sweep:
        parts = []
        for eta in result.sweep:
            q = result.quantity(f"dfinal_acc_router_moe_never_{eta_key(eta)}")
            r = next(r for r in checks["dnn_termination"].readings if r.name == q.name)
            parts.append(
                f"η = {eta:g}: {fmt_number(q.value, q.se)} points ({r.outcome})"
            )
        eta_text = "; ".join(parts)
    else:
        eta_text = "not run in this profile (eta_sweep is empty)"
    return {
        "eta_sentence": eta_text,
        "forgetting_outcomes": outcome_sentence(checks["dnn_forgetting"]),
        "termination_outcomes": outcome_sentence(checks["dnn_termination"]),
    }
