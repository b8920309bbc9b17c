"""Chapter ``expert_gate_vs_router``: Expert Gate's autoencoder router vs the paper's
trained router (ours).

Both routers, an oracle router and a single expert play the SAME task streams.

* **Linear stream** (Definition 1, linear experts; settings ``calibrated`` and
  ``recalled`` of :mod:`moecl_lib.analysis.calibration`): the paper's router with
  termination (``gap``) and without (``never``) from
  :func:`moecl_lib.linear.engine.simulate`; Expert Gate's PCA gate (code size 0 and 1),
  the oracle and the replay machinery from
  :func:`moecl_lib.expert_gate.linear.simulate_gate`, which draws the engine's own
  random numbers, so run ``r`` of every router sees the same rounds. A signal sweep
  varies ``||v_n||`` in the calibrated setting.
* **Image stream** (one-vs-rest tasks, CNN experts, :mod:`moecl_lib.deep.moe`): single
  network, the paper's router (``gap`` / ``never``), Expert Gate's pixel autoencoders,
  and an oracle router, one stream per seed.

**Conventions.** Linear numbers: mean over runs (one run = one independent stream), s.e.
over runs; comparisons of two routers are paired per run. Image numbers: accuracies and
errors in %, learner view (each arrival evaluated with the expert that learned it), mean
and s.e. over seeds, comparisons paired per seed. Routing accuracy: fraction of rounds
sent to an expert whose majority task (over the whole run) is the arriving task
(:func:`moecl_lib.expert_gate.linear.routing_accuracy`), over all rounds or in the last
window (as named).

**Claims and readings** (ids of ``book/reproduction_status.csv``; this comparison is in
neither paper):

* ``h2h_linear`` (settings ``calibrated`` and ``recalled``): Expert Gate (c = 0) minus
  the paper's router (gap) in routing accuracy over all rounds >= 0 (it finds the tasks
  sooner and keeps them); the paper's router minus Expert Gate in G_T >= 0 and in F_T
  >= 0; calibrated only: the signal sweep's routing accuracy over all rounds, Expert
  Gate minus the paper's router, averaged over the swept ``||v_n||``, >= 0. All paired
  over runs. "With a weaker signal" is read as the sweep and the recalled (unit-signal)
  setting.
* ``h2h_images`` (setting ``-``): the oracle router's forgetting (Chaudhry) <= 5 points
  (it keeps every task); oracle minus Expert Gate ACC >= 5 points and oracle minus the
  paper's router (gap) ACC >= 5 points (neither input-based router gets close; paired
  per seed). 5 points is the "close" margin of ``expert_gate_claims``.

**Tolerance floors** (:data:`FLOORS`, :data:`IMAGE_FLOORS`, with how they were
measured): CNN training and the autoencoder gates may follow another trajectory on
another CPU, and three seeds give an uncertain s.e.; numbers whose s.e. is 0 by
construction (the oracle, Expert Gate on the linear stream) need a floor too.

**Quick profile.** Fashion-MNIST as in the book (30 rounds of 50 images, 60 test images
per task, router eta 0.1), five image seeds. With the 8x8 digits Expert Gate's
autoencoders separated the three tasks in 3 of 9 seeds and merged them in the others; on
Fashion-MNIST they separate them in about one seed in eight, so with three seeds the
image verdict depended on the seeds drawn (with 100 test images: reproduced in 120 of
220 subsets of 3 of 12 seeds), with five it did not (792 of 792 subsets, with 100 and
with 60 test images).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib import figures as plotting
from moecl_lib.analysis.calibration import setting_config
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.config import ExperimentConfig
from moecl_lib.deep.datasets import (
    load_fashion_mnist,
    load_sklearn_digits,
    one_vs_rest_tasks,
    standardise,
)
from moecl_lib.deep.learners import StreamResult, run_stream, sample_stream
from moecl_lib.deep.moe import (
    CNNExpert,
    DeepMoE,
    DeepMoEConfig,
    set_determinism,
    single_network,
)
from moecl_lib.expert_gate.experiments import (
    OracleRouter,
    learner_parameters,
    summarise_stream,
)
from moecl_lib.expert_gate.gate import ExpertGate, ExpertGateConfig
from moecl_lib.expert_gate.linear import (
    merged_task_pairs,
    routing_accuracy,
    simulate_gate,
)
from moecl_lib.linear.engine import simulate

CHAPTER = "expert_gate_vs_router"
CLOSE_MARGIN = 5.0
"""Points of ACC by which a router must trail the oracle to count as "not close" (same
margin as eg_gate)."""
ORACLE_FORGETS = 5.0
"""Forgetting (Chaudhry, points) below which the oracle "keeps every task" (ours; the
"close" margin)."""

# Linear routers: key -> label (the keys make the quantity names).
LINEAR_ROUTERS: dict[str, str] = {
    "gap": "paper router (gap)",
    "never": "paper router (never)",
    "eg_c0": "Expert Gate (c=0)",
    "eg_c1": "Expert Gate (c=1)",
    "oracle": "oracle router",
    "single": "single expert",
}
IMAGE_LEARNERS: dict[str, str] = {
    "single": "single network",
    "gap": "paper router (gap)",
    "never": "paper router (never)",
    "eg": "Expert Gate",
    "oracle": "oracle router",
}
COLORS = plotting.ROUTER_COLORS
# routing-accuracy panels: the oracle is a wide pale line underneath, so that routers
# that match it stay visible
ROUTE_MARKERS = {
    "Expert Gate (c=0)": "s",
    "Expert Gate (c=1)": "^",
    "oracle router": "",
}
ROUTE_LINES: dict[str, dict[str, Any]] = {
    "oracle router": {"lw": 4.0, "alpha": 0.45, "zorder": 1},
    "Expert Gate (c=0)": {"ls": "--", "zorder": 3},
    "Expert Gate (c=1)": {"ls": ":", "zorder": 3},
}

# Absolute tolerance floors (units of the quantity). Linear stream, by kind: the kernel
# variants (ATEN_CPU_CAPABILITY=default / avx2, OPENBLAS_CORETYPE,
# NUMBA_CPU_NAME=generic / haswell, NPY features) left every linear number bitwise
# unchanged; the floors only cover numbers whose s.e. is 0 by construction (the oracle,
# Expert Gate at G_T = 0): 0.01 on G_T / F_T (single expert ~3) and on accuracies in [0,
# 1], 1 % of the gate's scalars. Image stream, per quantity: the variants (and
# MKL_ENABLE_INSTRUCTIONS=AVX2, the matrix kernels of an AMD CPU) moved the CNN
# learners' numbers by up to 1.4 points, within their s.e. (5-7 points); with five seeds
# the s.e. itself is uncertain, so each floor is two reliable standard errors of a
# 5-seed mean, 2 sigma / sqrt(5), sigma = per-seed standard deviation over 12 seeds
# (0-11) of the quick profile, rounded up (about a third of the tolerance the written
# rule gives with a well-estimated s.e.).
FLOORS: dict[str, float] = {
    "lin_G_T": 0.01,
    "lin_F_T": 0.01,
    "lin_route_acc": 0.01,
    "lin_experts": 0.1,
    "lin_merged": 0.01,
    "lin_gate_scalars": 10.0,
    "sweep_G_T": 0.01,
    "sweep_route_acc": 0.01,
}
IMAGE_FLOORS: dict[str, float] = {
    "img_single_ACC": 6.0,
    "img_single_forgetting": 5.3,
    "img_single_F_T": 5.3,
    "img_single_G_T": 6.0,
    "img_single_final_routed_acc": 4.8,
    "img_gap_ACC": 6.8,
    "img_gap_forgetting": 7.3,
    "img_gap_F_T": 7.0,
    "img_gap_G_T": 6.8,
    "img_gap_final_routed_acc": 13.0,
    "img_gap_route_acc": 0.19,
    "img_gap_experts_used": 0.01,
    "img_never_ACC": 7.2,
    "img_never_forgetting": 6.5,
    "img_never_F_T": 6.6,
    "img_never_G_T": 7.2,
    "img_never_final_routed_acc": 13.0,
    "img_never_route_acc": 0.19,
    "img_never_experts_used": 0.01,
    "img_eg_ACC": 8.6,
    "img_eg_forgetting": 7.4,
    "img_eg_F_T": 8.0,
    "img_eg_G_T": 8.6,
    "img_eg_final_routed_acc": 9.1,
    "img_eg_route_acc": 0.18,
    "img_eg_experts_used": 1.1,
    "img_oracle_ACC": 1.9,
    "img_oracle_forgetting": 1.2,
    "img_oracle_F_T": 1.5,
    "img_oracle_G_T": 1.9,
    "img_oracle_final_routed_acc": 2.0,
    "img_oracle_route_acc": 0.01,
    "img_oracle_experts_used": 0.01,
    "img_oracle_minus_eg_ACC": 7.9,
    "img_oracle_minus_gap_ACC": 6.8,
    "img_gap_minus_eg_ACC": 8.2,
}


def _default_moe() -> dict[str, Any]:
    return {
        "lr": 0.1,
        "epochs": 3,
        "minibatch": 20,
        "eta": 0.1,
        "alpha": 0.3,
        "lam": 0.3,
        "t1_per_expert": 5,
        "aux_grad": "decay",
    }


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (defaults = quick profile)."""

    linear_settings: Sequence[str] = ("calibrated", "recalled")
    n_experts_linear: int = 12
    T_linear: int = 1200
    runs_linear: int = 16
    seed: int = 0
    eg_novelty_ratio: float = 3.0
    eg_code_sizes: Sequence[int] = (0, 1)
    window_linear: int = 100
    signal_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 5.0)
    sweep_runs: int = 8
    image_data: str = "fashion-mnist"
    positives: Sequence[int] = (1, 4, 7)
    T_image: int = 30
    batch: int = 50
    max_train: int = 3000
    max_test: int = 60
    n_experts_image: int = 4
    image_seeds: Sequence[int] = (0, 1, 2, 3, 4)
    moe: dict[str, Any] = field(default_factory=_default_moe)
    window_image: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "linear_settings", tuple(str(s) for s in self.linear_settings)
        )
        object.__setattr__(
            self, "eg_code_sizes", tuple(int(c) for c in self.eg_code_sizes)
        )
        object.__setattr__(
            self, "signal_scales", tuple(float(c) for c in self.signal_scales)
        )
        object.__setattr__(self, "positives", tuple(int(c) for c in self.positives))
        object.__setattr__(self, "image_seeds", tuple(int(s) for s in self.image_seeds))
        object.__setattr__(self, "moe", dict(self.moe))
        if 0 not in self.eg_code_sizes:
            raise ValueError(
                "eg_code_sizes must contain 0 (the Expert Gate router of the claim "
                "checks)"
            )
        if len(self.image_seeds) < 2:
            raise ValueError(
                "image_seeds: at least two seeds (standard errors are taken over seeds)"
            )
        if self.image_data not in ("digits", "fashion-mnist"):
            raise ValueError(
                f"image_data={self.image_data!r} must be 'digits' or 'fashion-mnist'"
            )


@dataclass
class LinearRun:
    """One router on one setting's streams."""

    result: Any
    seconds: float


@dataclass
class Result(ChapterResult):
    """What the chapter's figures, tables and claim checks need."""

    chapter = CHAPTER

    params: Params
    linear: dict[str, tuple[ExperimentConfig, dict[str, LinearRun]]]
    sweep: dict[float, dict[str, Any]]
    image: dict[str, list[tuple[StreamResult, dict[str, Any]]]]
    task_names: list[str]
    data_name: str
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float

    def record_seeds(self) -> list[int]:
        return [self.params.seed] + [
            s for s in self.params.image_seeds if s != self.params.seed
        ]


# ------------------------------------------------------------------------------ running


def _n_slots(r: Any) -> int:
    return int(r.final_w.shape[1])


def _route_acc(r: Any, cfg: ExperimentConfig, window: int) -> np.ndarray:
    """Per-run routing accuracy per window, (R, n_windows)."""
    return routing_accuracy(r.experts, r.tasks, _n_slots(r), cfg.n_tasks, window=window)


def linear_runs(
    params: Params, setting: str, **over: Any
) -> tuple[ExperimentConfig, dict[str, LinearRun]]:
    """Every router on one setting's streams (same config, same seed: run r is the same
    stream for all)."""
    cfg = setting_config(
        setting,
        params.n_experts_linear,
        T=params.T_linear,
        n_runs=params.runs_linear,
        seed=params.seed,
        **over,
    )
    runs: dict[str, LinearRun] = {}

    def timed(key: str, fn: Any, *args: Any, **kw: Any) -> None:
        t0 = time.perf_counter()
        r = fn(*args, **kw)
        runs[key] = LinearRun(r, time.perf_counter() - t0)

    timed("gap", simulate, cfg.replace(termination="gap"))
    timed("never", simulate, cfg.replace(termination="never"))
    for c in params.eg_code_sizes:
        timed(
            f"eg_c{c}",
            simulate_gate,
            cfg,
            "expert_gate",
            code_size=c,
            novelty_ratio=params.eg_novelty_ratio,
        )
    timed("oracle", simulate_gate, cfg, "oracle")
    timed("single", simulate, cfg.replace(n_experts=1))
    return cfg, runs


def signal_sweep(params: Params) -> dict[float, dict[str, Any]]:
    """Calibrated setting with ``||v_n||`` varied: final G_T and whole-run routing
    accuracy per run."""
    out: dict[float, dict[str, Any]] = {}
    for c in params.signal_scales:
        cfg = setting_config(
            "calibrated",
            params.n_experts_linear,
            T=params.T_linear,
            n_runs=params.sweep_runs,
            seed=params.seed,
            signal_scale=c,
        )
        rs = {
            "gap": simulate(cfg),
            "eg_c0": simulate_gate(
                cfg, "expert_gate", code_size=0, novelty_ratio=params.eg_novelty_ratio
            ),
            "oracle": simulate_gate(cfg, "oracle"),
            "single": simulate(cfg.replace(n_experts=1)),
        }
        out[c] = {
            "G_T": {k: np.asarray(r.G[:, -1], dtype=float) for k, r in rs.items()},
            "route_acc": {
                k: _route_acc(r, cfg, cfg.T)[:, 0]
                for k, r in rs.items()
                if k != "single"
            },
        }
    return out


def image_runs(
    params: Params,
) -> tuple[
    dict[str, list[tuple[StreamResult, dict[str, Any]]]], list[str], str, dict[str, Any]
]:
    """The five learners on one image stream per seed."""
    raw = (
        load_fashion_mnist()
        if params.image_data == "fashion-mnist"
        else load_sklearn_digits()
    )
    ds = standardise(raw, "pixel")
    shape = ds.image_shape
    image: dict[str, list[tuple[StreamResult, dict[str, Any]]]] = {}
    task_names: list[str] = []
    configs: dict[str, Any] = {}
    for sd in params.image_seeds:
        rng = np.random.default_rng(sd)
        tasks = one_vs_rest_tasks(
            ds,
            params.positives,
            rng,
            max_train=params.max_train,
            max_test=params.max_test,
        )
        stream = sample_stream(tasks, params.T_image, params.batch, rng)
        cfg = DeepMoEConfig(
            n_experts=params.n_experts_image,
            in_shape=shape,
            n_classes=2,
            seed=sd,
            **params.moe,
        )

        def factory(cfg: DeepMoEConfig = cfg) -> CNNExpert:
            return CNNExpert(shape, 2, cfg.channels, cfg.hidden)

        eg_cfg = ExpertGateConfig(
            seed=sd,
            max_experts=params.n_experts_image,
            expert_lr=cfg.lr,
            expert_epochs=cfg.epochs,
            expert_batch_size=cfg.minibatch,
            expert_momentum=cfg.momentum,
        )
        learners = {
            "single": single_network(cfg),
            "gap": DeepMoE(cfg, name="paper router (gap)"),
            "never": DeepMoE(
                cfg.replace(termination="never"), name="paper router (never)"
            ),
            "eg": ExpertGate(
                shape, 2, eg_cfg, expert_factory=factory, name="Expert Gate"
            ),
            "oracle": OracleRouter(
                tasks, factory, cfg.lr, cfg.epochs, cfg.minibatch, cfg.momentum, seed=sd
            ),
        }
        for key, lrn in learners.items():
            res = run_stream(lrn, tasks, stream)
            out = summarise_stream(res, params.window_image)
            out.update(learner_parameters(lrn))
            image.setdefault(key, []).append((res, out))
        task_names = [tk.name for tk in tasks]
        if not configs:
            configs = {
                "deep_moe": {k: v for k, v in asdict(cfg).items() if k != "seed"},
                "deep_moe_never": {"termination": "never"},
                "expert_gate": {k: v for k, v in asdict(eg_cfg).items() if k != "seed"},
                "oracle": {
                    "lr": cfg.lr,
                    "epochs": cfg.epochs,
                    "minibatch": cfg.minibatch,
                    "momentum": cfg.momentum,
                },
                "seeds": list(params.image_seeds),
            }
    return image, task_names, f"{ds.name} (substitute for {ds.substitute_for})", configs


def run(params: Params = Params()) -> Result:
    """Run both parts and derive the quantities and claim checks."""
    set_determinism()
    start = time.perf_counter()
    linear = {s: linear_runs(params, s) for s in params.linear_settings}
    sweep = signal_sweep(params)
    image, task_names, data_name, img_cfgs = image_runs(params)
    quantities = chapter_quantities(params, linear, sweep, image)
    checks = claim_checks(params, quantities)
    configs = {
        "linear": {s: asdict(cfg) for s, (cfg, _) in linear.items()},
        "expert_gate_linear": {
            "code_sizes": list(params.eg_code_sizes),
            "novelty_ratio": params.eg_novelty_ratio,
            "init": "related",
            "max_experts": params.n_experts_linear,
        },
        "signal_sweep": {
            "setting": "calibrated",
            "signal_scales": list(params.signal_scales),
            "n_runs": params.sweep_runs,
        },
        "image": img_cfgs,
        "image_stream": {
            "data": data_name,
            "positives": list(params.positives),
            "T": params.T_image,
            "batch": params.batch,
            "max_train": params.max_train,
            "max_test": params.max_test,
            "standardise": "pixel",
        },
    }
    return Result(
        params,
        linear,
        sweep,
        image,
        task_names,
        data_name,
        quantities,
        checks,
        configs,
        time.perf_counter() - start,
    )


# ------------------------------------------------------------------- quantities, checks


def _scale_tag(c: float) -> str:
    return f"v{c:g}".replace(".", "p").replace("-", "m")


def _est(name: str, x: Any, floor_key: str, label: str) -> Quantity:
    floor = IMAGE_FLOORS[name] if name.startswith("img_") else FLOORS[floor_key]
    return estimate(name, x, floor=floor, label=label)


def chapter_quantities(
    params: Params,
    linear: dict[str, tuple[ExperimentConfig, dict[str, LinearRun]]],
    sweep: dict[float, dict[str, Any]],
    image: dict[str, list[tuple[StreamResult, dict[str, Any]]]],
) -> list[Quantity]:
    """Every number the chapter reports (module docstring for conventions)."""
    return linear_quantities(params, linear, sweep) + image_quantities(image)


def linear_quantities(
    params: Params,
    linear: dict[str, tuple[ExperimentConfig, dict[str, LinearRun]]],
    sweep: dict[float, dict[str, Any]],
) -> list[Quantity]:
    """Linear-stream numbers: per setting and router, paired differences, the signal
    sweep."""
    out: list[Quantity] = []
    for s, (cfg, runs) in linear.items():
        per: dict[str, dict[str, np.ndarray]] = {}
        for key, lr in runs.items():
            r = lr.result
            lab = f"{s}: {LINEAR_ROUTERS[key]}"
            G = np.asarray(r.G[:, -1], dtype=float)
            F = np.asarray(r.F[:, -1], dtype=float)
            per[key] = {"G": G, "F": F}
            out.append(_est(f"lin_{s}_{key}_G_T", G, "lin_G_T", f"{lab}: G_T"))
            out.append(_est(f"lin_{s}_{key}_F_T", F, "lin_F_T", f"{lab}: F_T"))
            if key != "single":
                ra = _route_acc(r, cfg, params.window_linear)[:, -1]
                ra_all = _route_acc(r, cfg, cfg.T)[:, 0]
                per[key]["ra"] = ra_all
                out.append(
                    _est(
                        f"lin_{s}_{key}_route_acc",
                        ra,
                        "lin_route_acc",
                        f"{lab}: routing accuracy (last window)",
                    )
                )
                out.append(
                    _est(
                        f"lin_{s}_{key}_route_acc_all",
                        ra_all,
                        "lin_route_acc",
                        f"{lab}: routing accuracy (all rounds)",
                    )
                )
                merged = merged_task_pairs(
                    r.experts, r.tasks, _n_slots(r), cfg.n_tasks, after=cfg.T // 2
                )
                out.append(
                    _est(
                        f"lin_{s}_{key}_merged_pairs",
                        merged,
                        "lin_merged",
                        f"{lab}: merged task pairs (second half)",
                    )
                )
            if key.startswith("eg_"):
                used = [np.unique(e).size for e in r.experts]
                out.append(
                    _est(
                        f"lin_{s}_{key}_experts_used",
                        used,
                        "lin_experts",
                        f"{lab}: experts used",
                    )
                )
                out.append(
                    _est(
                        f"lin_{s}_{key}_gate_scalars",
                        np.asarray(r.gate_params, dtype=float),
                        "lin_gate_scalars",
                        f"{lab}: scalars stored by the gate",
                    )
                )
        out.append(
            _est(
                f"lin_{s}_route_acc_eg_minus_gap",
                per["eg_c0"]["ra"] - per["gap"]["ra"],
                "lin_route_acc",
                f"{s}: routing accuracy (all rounds), Expert Gate (c=0) minus paper "
                "router (gap)",
            )
        )
        out.append(
            _est(
                f"lin_{s}_G_T_gap_minus_eg",
                per["gap"]["G"] - per["eg_c0"]["G"],
                "lin_G_T",
                f"{s}: G_T, paper router (gap) minus Expert Gate (c=0)",
            )
        )
        out.append(
            _est(
                f"lin_{s}_F_T_gap_minus_eg",
                per["gap"]["F"] - per["eg_c0"]["F"],
                "lin_F_T",
                f"{s}: F_T, paper router (gap) minus Expert Gate (c=0)",
            )
        )
        out.append(
            Quantity(
                f"lin_{s}_paper_gate_scalars",
                float(cfg.n_experts * cfg.d),
                kind="exact",
                label=f"{s}: scalars stored by the paper's router (M d)",
            )
        )
    for c, sw in sweep.items():
        tag = _scale_tag(c)
        for key, G in sw["G_T"].items():
            out.append(
                _est(
                    f"sweep_{tag}_{key}_G_T",
                    G,
                    "sweep_G_T",
                    f"||v_n|| = {c:g}: {LINEAR_ROUTERS[key]} G_T",
                )
            )
        for key, ra in sw["route_acc"].items():
            out.append(
                _est(
                    f"sweep_{tag}_{key}_route_acc",
                    ra,
                    "sweep_route_acc",
                    f"||v_n|| = {c:g}: {LINEAR_ROUTERS[key]} routing accuracy (whole "
                    "run)",
                )
            )
    diff = np.mean(
        [sw["route_acc"]["eg_c0"] - sw["route_acc"]["gap"] for sw in sweep.values()],
        axis=0,
    )
    out.append(
        _est(
            "sweep_route_acc_eg_minus_gap",
            diff,
            "sweep_route_acc",
            "signal sweep: routing accuracy, Expert Gate (c=0) minus paper router "
            "(gap), mean over ||v_n||",
        )
    )
    return out


def image_quantities(
    image: dict[str, list[tuple[StreamResult, dict[str, Any]]]],
) -> list[Quantity]:
    """Image-stream numbers per learner (mean over seeds) and paired ACC differences."""
    out: list[Quantity] = []
    acc: dict[str, np.ndarray] = {}
    for key, items in image.items():
        outs = [o for _, o in items]
        lab = IMAGE_LEARNERS[key]
        acc[key] = np.array([o["ACC"] for o in outs], dtype=float)
        for m, fk, text in (
            ("ACC", "img_ACC", "ACC (%)"),
            ("forgetting", "img_forgetting", "forgetting (%)"),
            ("F_T", "img_F_T", "F_T (error %)"),
            ("G_T", "img_G_T", "G_T (error %)"),
            (
                "final_routed_acc",
                "img_routed",
                "final accuracy with its own routing (%)",
            ),
        ):
            out.append(
                _est(
                    f"img_{key}_{m}", [o[m] for o in outs], fk, f"images: {lab}: {text}"
                )
            )
        if key != "single":
            out.append(
                _est(
                    f"img_{key}_route_acc",
                    [o["routing_acc"][-1] for o in outs],
                    "img_route_acc",
                    f"images: {lab}: routing accuracy (last window)",
                )
            )
            out.append(
                _est(
                    f"img_{key}_experts_used",
                    [o["experts_used"] for o in outs],
                    "img_experts",
                    f"images: {lab}: experts used",
                )
            )
        out.append(
            Quantity(
                f"img_{key}_gate_params",
                float(outs[0]["gate"]),
                kind="exact",
                label=f"images: {lab}: gate parameters (first seed)",
            )
        )
        out.append(
            Quantity(
                f"img_{key}_expert_params",
                float(outs[0]["experts"]),
                kind="exact",
                label=f"images: {lab}: expert parameters (first seed)",
            )
        )
    out.append(
        _est(
            "img_oracle_minus_eg_ACC",
            acc["oracle"] - acc["eg"],
            "img_ACC",
            "images: ACC, oracle minus Expert Gate (points)",
        )
    )
    out.append(
        _est(
            "img_oracle_minus_gap_ACC",
            acc["oracle"] - acc["gap"],
            "img_ACC",
            "images: ACC, oracle minus paper router (gap) (points)",
        )
    )
    out.append(
        _est(
            "img_gap_minus_eg_ACC",
            acc["gap"] - acc["eg"],
            "img_ACC",
            "images: ACC, paper router (gap) minus Expert Gate (points)",
        )
    )
    return out


def _reading(
    qs: dict[str, Quantity], name: str, statement: str, threshold: float
) -> Reading:
    q = qs[name]
    return Reading(name, statement, q.value, threshold, q.se, ">=")


def claim_checks(params: Params, quantities: Sequence[Quantity]) -> list[ClaimCheck]:
    """``h2h_linear`` per linear setting and ``h2h_images`` (module docstring)."""
    return linear_checks(params, quantities) + [image_check(quantities)]


def linear_checks(params: Params, quantities: Sequence[Quantity]) -> list[ClaimCheck]:
    """``h2h_linear``, one check per linear setting."""
    qs = {q.name: q for q in quantities}
    checks = []
    for s in params.linear_settings:
        rd = [
            _reading(
                qs,
                f"lin_{s}_route_acc_eg_minus_gap",
                "routing accuracy (all rounds): Expert Gate (c=0) − paper router "
                "(gap) ≥ 0",
                0.0,
            ),
            _reading(
                qs,
                f"lin_{s}_G_T_gap_minus_eg",
                "G_T: paper router (gap) − Expert Gate (c=0) ≥ 0",
                0.0,
            ),
            _reading(
                qs,
                f"lin_{s}_F_T_gap_minus_eg",
                "F_T: paper router (gap) − Expert Gate (c=0) ≥ 0",
                0.0,
            ),
        ]
        if s == "calibrated":
            rd.append(
                _reading(
                    qs,
                    "sweep_route_acc_eg_minus_gap",
                    "signal sweep (calibrated, ||v_n|| varied): routing accuracy, "
                    "Expert Gate (c=0) − paper router (gap), mean over ||v_n|| ≥ 0",
                    0.0,
                )
            )
        checks.append(ClaimCheck("h2h_linear", s, tuple(rd)))
    return checks


def image_check(quantities: Sequence[Quantity]) -> ClaimCheck:
    """``h2h_images``: the oracle keeps every task, neither input-based router gets
    close to it."""
    qs = {q.name: q for q in quantities}
    q = qs["img_oracle_forgetting"]
    return ClaimCheck(
        "h2h_images",
        "-",
        (
            Reading(
                "img_oracle_forgetting",
                f"oracle router forgetting ≤ {ORACLE_FORGETS:g} points (keeps every "
                "task)",
                q.value,
                ORACLE_FORGETS,
                q.se,
                "<=",
            ),
            _reading(
                qs,
                "img_oracle_minus_eg_ACC",
                f"ACC: oracle − Expert Gate ≥ {CLOSE_MARGIN:g} points",
                CLOSE_MARGIN,
            ),
            _reading(
                qs,
                "img_oracle_minus_gap_ACC",
                f"ACC: oracle − paper router (gap) ≥ {CLOSE_MARGIN:g} points",
                CLOSE_MARGIN,
            ),
        ),
    )


# ---------------------------------------------------------------------- tables, figures


def linear_table(result: Result) -> str:
    """Per setting and router: G_T, F_T, routing accuracy, merged pairs, experts used,
    gate scalars."""
    rows = []
    for s, (cfg, runs) in result.linear.items():
        for key, lr in runs.items():
            r = lr.result
            G, F = (
                result.quantity(f"lin_{s}_{key}_G_T"),
                result.quantity(f"lin_{s}_{key}_F_T"),
            )
            ra = (
                result.quantity(f"lin_{s}_{key}_route_acc").value
                if key != "single"
                else float("nan")
            )
            gate = (
                cfg.n_experts * cfg.d
                if key in ("gap", "never")
                else float(np.mean(r.gate_params))
                if key.startswith("eg_")
                else 0
            )
            rows.append(
                {
                    "setting": s,
                    "router": LINEAR_ROUTERS[key],
                    "G_T": f"{G.value:.3f} ± {G.se:.3f}",
                    "F_T": f"{F.value:.3f} ± {F.se:.3f}",
                    "route acc (last window)": ra,
                    "merged task pairs": float(
                        merged_task_pairs(
                            r.experts,
                            r.tasks,
                            _n_slots(r),
                            cfg.n_tasks,
                            after=cfg.T // 2,
                        ).mean()
                    ),
                    "experts used": float(
                        np.mean([np.unique(e).size for e in r.experts])
                    ),
                    "gate scalars": float(gate),
                }
            )
    return plotting.table(rows, digits=2)


def sweep_table(result: Result) -> str:
    """G_T and routing accuracy per signal scale."""
    rows = []
    for c, sw in result.sweep.items():
        row: dict[str, object] = {"||v_n||": c}
        for key, G in sw["G_T"].items():
            row[f"G_T {LINEAR_ROUTERS[key]}"] = float(np.mean(G))
        row["route acc paper"] = float(np.mean(sw["route_acc"]["gap"]))
        row["route acc EG"] = float(np.mean(sw["route_acc"]["eg_c0"]))
        rows.append(row)
    return plotting.table(rows, digits=3)


def image_table(result: Result) -> str:
    """Per learner: ACC, forgetting, F_T, G_T, routed accuracy, routing accuracy,
    experts, parameters."""
    rows = []
    for key, items in result.image.items():
        outs = [o for _, o in items]

        def ms(m: str, key: str = key) -> str:
            q = result.quantity(f"img_{key}_{m}")
            return f"{q.value:.1f} ± {q.se:.1f}"

        rows.append(
            {
                "learner": IMAGE_LEARNERS[key],
                "ACC": ms("ACC"),
                "forgetting": ms("forgetting"),
                "F_T": ms("F_T"),
                "G_T": ms("G_T"),
                "routed acc": ms("final_routed_acc"),
                "route acc (last window)": float(
                    np.mean([o["routing_acc"][-1] for o in outs])
                ),
                "experts used": float(np.mean([o["experts_used"] for o in outs])),
                "gate params (seed 0)": int(outs[0]["gate"]),
                "expert params (seed 0)": int(outs[0]["experts"]),
            }
        )
    return plotting.table(rows, digits=2)


def wall_times(result: Result) -> str:
    """Machine-dependent wall times (print outside checked cells)."""
    lines = [
        f"{IMAGE_LEARNERS[k]:22s} run_stream wall time (training + evaluation) "
        f"{np.mean([o['wall_time'] for _, o in items]):6.1f} s"
        for k, items in result.image.items()
    ]
    for s, (_, runs) in result.linear.items():
        lines.append(
            f"{s} "
            + str({LINEAR_ROUTERS[k]: round(lr.seconds, 2) for k, lr in runs.items()})
        )
    return "\n".join(lines)


def plot_linear(result: Result, out_dir: str) -> Any:
    """G_t and windowed routing accuracy of every router, per setting (saved with its
    CSV)."""
    import matplotlib.pyplot as plt

    lin = result.linear
    w = result.params.window_linear
    fig, axes = plt.subplots(len(lin), 2, figsize=(11, 3.8 * len(lin)), squeeze=False)
    csv: dict[str, Any] = {}
    for row, (s, (cfg, runs)) in enumerate(lin.items()):
        t = np.arange(1, cfg.T + 1)
        for key, lr in runs.items():
            r, name = lr.result, LINEAR_ROUTERS[key]
            m, se = mean_se(r.G)
            plotting.band(axes[row, 0], t, m, se, label=name, z=2.0, color=COLORS[name])
            csv[f"{s}|{name}|G_mean"] = m
            if key != "single":
                ra = _route_acc(r, cfg, w)
                rm, rse = mean_se(ra)
                ends = np.minimum(np.arange(1, ra.shape[1] + 1) * w, cfg.T)
                plotting.band(
                    axes[row, 1],
                    ends,
                    rm,
                    rse,
                    label=name,
                    z=2.0,
                    marker=ROUTE_MARKERS.get(name, "o"),
                    ms=4,
                    color=COLORS[name],
                    **ROUTE_LINES.get(name, {}),
                )
        axes[row, 0].set_yscale("symlog", linthresh=1e-2)
        axes[row, 0].set_ylim(bottom=0)
        axes[row, 0].set_title(f"{s}: generalisation error $G_t$")
        axes[row, 1].set_title(f"{s}: routing accuracy per {w} rounds")
        axes[row, 1].set_ylim(0, 1.05)
        axes[row, 0].axvline(cfg.T1_value, color="k", ls=":", lw=0.8)
        for ax in axes[row]:
            ax.set_xlabel("round $t$")
    handles, labs = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(
        handles, labs, loc="upper center", ncol=3, fontsize=9, bbox_to_anchor=(0.5, 0.0)
    )
    plotting.save_figure(fig, out_dir, "linear_head_to_head")
    rounds = np.arange(1, result.params.T_linear + 1)
    plotting.save_csv(out_dir, "linear_head_to_head", dict(round=rounds, **csv))
    return fig


def plot_sweep(result: Result, out_dir: str) -> Any:
    """Final G_T against the signal norm (saved with its CSV)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    scales = list(result.sweep)
    keys = list(next(iter(result.sweep.values()))["G_T"])
    csv: dict[str, Any] = {"signal_scale": scales}
    for key in keys:
        qs = [result.quantity(f"sweep_{_scale_tag(c)}_{key}_G_T") for c in scales]
        name = LINEAR_ROUTERS[key]
        ax.errorbar(
            scales,
            [q.value for q in qs],
            yerr=[2 * q.se for q in qs],
            marker="o",
            capsize=3,
            label=name,
            color=COLORS[name],
        )
        csv[f"G_T {name}"] = [q.value for q in qs]
        if key != "single":
            csv[f"route_acc {name}"] = [
                float(np.mean(result.sweep[c]["route_acc"][key])) for c in scales
            ]
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel(r"signal norm $\|v_n\|$")
    ax.set_ylabel("final $G_T$")
    ax.legend(fontsize=8)
    plotting.save_figure(fig, out_dir, "linear_signal_sweep")
    plotting.save_csv(out_dir, "linear_signal_sweep", csv)
    return fig


def plot_images(result: Result, out_dir: str) -> Any:
    """Learner-view G_t and windowed routing accuracy on the image stream (saved with
    its CSV)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    csv: dict[str, Any] = {}
    T, w = result.params.T_image, result.params.window_image
    for key, items in result.image.items():
        name = IMAGE_LEARNERS[key]
        G = np.array([res.curves("learner")[1] for res, _ in items])
        m, se = mean_se(G)
        plotting.band(
            axes[0],
            np.arange(1, G.shape[1] + 1),
            m,
            se,
            label=name,
            z=2.0,
            color=COLORS[name],
        )
        csv[f"{name}|G_mean"] = m
        if key != "single":
            ra = np.array([o["routing_acc"] for _, o in items])
            ends = np.minimum(np.arange(1, ra.shape[1] + 1) * w, T)
            axes[1].plot(ends, ra.mean(0), marker="o", label=name, color=COLORS[name])
    axes[0].set_title("generalisation error $G_t$ (test error %, learner view)")
    axes[1].set_title(f"routing accuracy per {w} rounds")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plotting.save_figure(fig, out_dir, "image_head_to_head")
    plotting.save_csv(
        out_dir, "image_head_to_head", dict(round=np.arange(1, T + 1), **csv)
    )
    return fig


# ------------------------------------------------------------------------ prose (glued)

_OUTCOME_WORDS = {"holds": "holds", "fails": "fails", "inconclusive": "inconclusive"}


def image_sentence(result: Result) -> str:
    """The paper's router (gap) against Expert Gate on the image stream (paired per
    seed)."""
    q = result.quantity("img_gap_minus_eg_ACC")
    used = result.quantity("img_eg_experts_used").value
    d = f"{q.value:+.1f} ± {q.se:.1f} points of ACC"
    if q.value - 2 * q.se > 0:
        head = (
            f"the paper's router with termination finishes ahead of Expert Gate ({d})"
        )
    elif q.value + 2 * q.se < 0:
        head = (
            f"Expert Gate finishes ahead of the paper's router with termination ({d})"
        )
    else:
        head = (
            f"neither input-based router is clearly ahead of the other ({d}, paper's "
            "router minus Expert Gate)"
        )
    n = len(result.task_names)
    merge = " (its autoencoders merge tasks whose batches share half of their images)"
    tail = merge if used < n - 0.05 else ""
    return (
        f"{head}; Expert Gate ends with {used:.1f} experts on average for {n} "
        f"tasks{tail}"
    )


def glue_texts(result: Result) -> dict[str, str]:
    """Generated phrases for the chapter's prose and every reading's outcome
    (``outcome_<reading name>``)."""
    out = {"h2h_image_sentence": image_sentence(result)}
    for c in result.checks:
        for r in c.readings:
            out[f"outcome_{r.name}"] = _OUTCOME_WORDS[r.outcome]
    return out
