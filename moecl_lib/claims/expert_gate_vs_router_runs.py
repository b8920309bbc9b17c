"""The runs of the chapter :mod:`moecl_lib.claims.expert_gate_vs_router`: its
parameters, every router on the linear streams, the signal sweep, the learners on the
image streams, their configurations and the chapter's :class:`Result`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity
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
    single_network,
)
from moecl_lib.expert_gate.experiments import (
    OracleRouter,
    learner_parameters,
    summarise_stream,
)
from moecl_lib.expert_gate.gate import ExpertGate, ExpertGateConfig
from moecl_lib.expert_gate.linear import (
    routing_accuracy,
    simulate_gate,
)
from moecl_lib.linear.engine import simulate

CHAPTER = "expert_gate_vs_router"

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


def n_slots(r: Any) -> int:
    """Expert slots of a linear router's run."""
    return int(r.final_w.shape[1])


def route_acc(r: Any, cfg: ExperimentConfig, window: int) -> np.ndarray:
    """Per-run routing accuracy per window, (R, n_windows)."""
    return routing_accuracy(r.experts, r.tasks, n_slots(r), cfg.n_tasks, window=window)


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
                k: route_acc(r, cfg, cfg.T)[:, 0]
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


def run_configs(
    params: Params,
    linear: dict[str, tuple[ExperimentConfig, dict[str, LinearRun]]],
    data_name: str,
    img_cfgs: dict[str, Any],
) -> dict[str, Any]:
    """The configurations of a run (recorded)."""
    return {
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


def scale_tag(c: float) -> str:
    """``1.5 -> "v1p5"``: a signal scale ``||v_n||`` in a quantity name."""
    return f"v{c:g}".replace(".", "p").replace("-", "m")
