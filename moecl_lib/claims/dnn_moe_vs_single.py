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

**Where the parts are.** Tasks, per-seed statistics and floors shared with
``dnn_expert_sweep``: :mod:`moecl_lib.claims.dnn_common`; the Result's tables and texts:
:mod:`moecl_lib.claims.dnn_moe_report`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.claims.dnn_common import (
    FLOORS,
    LOADERS,
    PERCENT_FLOOR,
    Data,
    learner_factory,
    load_tasks,
    per_seed,
    seed_cell,
    seed_mapper,
)
from moecl_lib.claims.dnn_moe_report import ROUTING, SENSITIVITY_STATS, ResultTables
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
)
from moecl_lib.deep.moe import DeepMoEConfig, set_determinism
from moecl_lib.deep.study import MapFn, Results, run_paired
from moecl_lib.sweep.tasks import shared_scheduler

__all__ = [
    "CHAPTER",
    "FLOORS",
    "LEARNERS",
    "LEARNER_VIEW",
    "LOADERS",
    "PERCENT_FLOOR",
    "ROUTER_VIEW",
    "ROUTING",
    "SENSITIVITY_STATS",
    "STABLE_SWITCHES",
    "Data",
    "Params",
    "Result",
    "base_config",
    "derive",
    "eta_key",
    "learner_configs",
    "load_tasks",
    "outcome_sentence",
    "per_seed",
    "prose",
    "reading",
    "run",
    "seed_cell",
    "seed_mean_se",
]

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


# --------------------------------------------------------------------------- estimators


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
class Result(ResultTables, ChapterResult):
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


def run(
    params: Params | None = None,
    *,
    progress: bool = True,
    scheduler: str | None = "inline",
) -> Result:
    """Run every learner on every seed's stream, then the ``eta_sweep``; derive
    quantities and checks.

    ``scheduler``: where the seeds run (``"inline"``, ``"local"`` or a Dask address;
    :mod:`moecl_lib.sweep.tasks`); the numbers do not depend on it.
    """
    with shared_scheduler(scheduler) as address:
        return _run(params or Params(), progress, seed_mapper(address, progress))


def _run(p: Params, progress: bool, map_fn: MapFn | None) -> Result:
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
        {names[k]: learner_factory(cfgs[k], names[k]) for k in names},
        p.seeds,
        p.n_rounds,
        p.batch_size,
        progress=progress,
        map_fn=map_fn,
    )
    stats = {k: per_seed(results[names[k]], cfgs[k].T1_value) for k in names}
    configs: dict[str, Any] = {names[k]: asdict(cfgs[k]) for k in names}
    sweep: dict[float, dict[str, dict[str, np.ndarray]]] = {}
    for eta in p.eta_sweep:
        ce = {k: cfgs[k].replace(eta=float(eta)) for k in ("moe", "never")}
        nm = {k: f"eta={eta:g}, {names[k]}" for k in ce}
        res = run_paired(
            data.tasks,
            {nm[k]: learner_factory(ce[k], nm[k]) for k in ce},
            p.seeds,
            p.n_rounds,
            p.batch_size,
            progress=progress,
            map_fn=map_fn,
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


def _learner_estimates(stats: Mapping[str, Mapping[str, np.ndarray]]) -> list[Quantity]:
    """Every learner's per-seed statistics as estimates (the single network's one
    view is named ``final_acc``; ``T2`` only where some router froze)."""
    qs = []
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
                qs.append(estimate(name, st[s], floor=FLOORS[s], label=f"{s} ({key})"))
    return qs


def _differences(
    p: Params, stats: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, Quantity]:
    """The paired per-seed differences the readings use, by quantity name: forgetting
    of the single network minus the MoEs' (both views), routing changes and final
    accuracy with and without termination."""
    M, few = p.n_experts, p.n_experts_few
    s, m, n, f = stats["single"], stats["moe"], stats["never"], stats["few"]
    view = "F_T single - MoE M={} ({} view)"
    specs = (  # name, a, b, statistic of the floor, label
        ("dF_T_single_moe", s["F_T"], m["F_T"], "F_T", view.format(M, "learner")),
        (
            "dF_T_router_single_moe",
            s["F_T"],
            m["F_T_router"],
            "F_T_router",
            view.format(M, "router"),
        ),
        (
            "dforgetting_single_moe",
            s["forgetting"],
            m["forgetting"],
            "forgetting",
            f"Chaudhry forgetting single - MoE M={M}",
        ),
        ("dF_T_single_few", s["F_T"], f["F_T"], "F_T", view.format(few, "learner")),
        (
            "dF_T_router_single_few",
            s["F_T"],
            f["F_T_router"],
            "F_T_router",
            view.format(few, "router"),
        ),
        (
            "dswitches_never_moe",
            n["switches"],
            m["switches"],
            "switches",
            f"routing changes after T1, no termination - termination (M={M})",
        ),
        (
            "dfinal_acc_router_moe_never",
            m["final_acc_router"],
            n["final_acc_router"],
            "final_acc_router",
            f"final router-view accuracy, termination - no termination (M={M})",
        ),
    )
    return {
        name: paired_difference(name, a, b, floor=FLOORS[stat], label=label)
        for name, a, b, stat, label in specs
    }


def _sweep_quantities(
    sweep: Mapping[float, Mapping[str, Mapping[str, np.ndarray]]],
) -> tuple[list[Quantity], list[tuple[float, Quantity]]]:
    """Per extra router learning rate: final accuracy and switches of both MoEs and
    the termination - no termination difference (also returned per ``eta``)."""
    qs: list[Quantity] = []
    helps_eta = []
    for eta, st in sweep.items():
        k = eta_key(eta)
        for key in ("moe", "never"):
            for s_ in ("final_acc_router", "switches"):
                qs.append(
                    estimate(
                        f"{s_}_{key}_{k}",
                        st[key][s_],
                        floor=FLOORS[s_],
                        label=f"{s_} ({key}, eta={eta:g})",
                    )
                )
        d = paired_difference(
            f"dfinal_acc_router_moe_never_{k}",
            st["moe"]["final_acc_router"],
            st["never"]["final_acc_router"],
            floor=FLOORS["final_acc_router"],
            label=(
                f"final router-view accuracy, termination - no termination, eta={eta:g}"
            ),
        )
        qs.append(d)
        helps_eta.append((eta, d))
    return qs, helps_eta


def _checks(
    p: Params,
    d: Mapping[str, Quantity],
    sw_moe: Quantity,
    helps_eta: Sequence[tuple[float, Quantity]],
) -> list[ClaimCheck]:
    """The ``dnn_forgetting`` and ``dnn_termination`` checks (module docstring)."""
    M, few = p.n_experts, p.n_experts_few
    views = (
        ("dF_T_single_moe", f"F_T single - MoE M={M}, learner view (%)"),
        ("dF_T_router_single_moe", f"F_T single - MoE M={M}, router view (%)"),
        (
            "dforgetting_single_moe",
            f"Chaudhry forgetting single - MoE M={M}, learner view (%)",
        ),
        ("dF_T_single_few", f"F_T single - MoE M={few} < N, learner view (%)"),
        ("dF_T_router_single_few", f"F_T single - MoE M={few} < N, router view (%)"),
    )
    forgetting = ClaimCheck(
        "dnn_forgetting", "-", tuple(reading(d[k], text, 0.0) for k, text in views)
    )
    term = [
        reading(
            sw_moe,
            f"routing changes after T1 with termination (M={M})",
            STABLE_SWITCHES,
            "<=",
        ),
        reading(
            d["dswitches_never_moe"],
            f"routing changes after T1, no termination - termination (M={M})",
            0.0,
        ),
    ]
    term += [
        reading(
            q,
            "final router-view accuracy, termination - no termination, "
            f"eta={eta:g} (%)",
            0.0,
        )
        for eta, q in [(p.eta, d["dfinal_acc_router_moe_never"]), *helps_eta]
    ]
    return [forgetting, ClaimCheck("dnn_termination", "-", tuple(term))]


def derive(
    p: Params,
    stats: Mapping[str, Mapping[str, np.ndarray]],
    sweep: Mapping[float, Mapping[str, Mapping[str, np.ndarray]]],
) -> tuple[list[Quantity], list[ClaimCheck]]:
    """Quantities and claim checks from per-seed statistics
    (``stats[learner][statistic]``, one value per seed; learners ``single``, ``moe``,
    ``never``, ``few``; ``sweep[eta]["moe" | "never"]`` likewise)."""
    qs = _learner_estimates(stats)
    d = _differences(p, stats)
    sw_moe = next(q for q in qs if q.name == "switches_moe")
    q_sweep, helps_eta = _sweep_quantities(sweep)
    qs += list(d.values()) + q_sweep
    return qs, _checks(p, d, sw_moe, helps_eta)


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
