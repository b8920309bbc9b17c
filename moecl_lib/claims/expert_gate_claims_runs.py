"""The runs of the Expert Gate chapter (:mod:`moecl_lib.claims.expert_gate_claims`):
its parameters, the two task families per seed, the classic protocol and the
relatedness study over all seeds (:class:`FamilyRuns`) and the chapter's
:class:`Result`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.deep.datasets import (
    ImageDataset,
    class_split_tasks,
    load_fashion_mnist,
    load_sklearn_digits,
)
from moecl_lib.deep.learners import TaskData
from moecl_lib.expert_gate.experiments import (
    ClassicResult,
    RelatednessStudy,
    domain_tasks,
    relatedness_study,
    run_classic,
    spearman,
)
from moecl_lib.expert_gate.gate import ExpertGateConfig, mlp_expert

CHAPTER = "expert_gate_claims"
FAMILIES: tuple[str, ...] = ("mixed", "split")
FAMILY_LABEL = {"mixed": "mixed domains", "split": "split Fashion-MNIST"}
METHODS: dict[str, str] = {
    "gate_ae": "gate accuracy, autoencoders",
    "gate_disc": "gate accuracy, discriminative",
    "expert_gate": "Expert Gate (task-agnostic)",
    "disc_gate": "experts + discriminative gate",
    "oracle": "experts + oracle gate",
    "joint": "joint training (task-aware)",
    "finetune": "single fine-tuned model (task-aware)",
    "lwf": "single LwF model (task-aware)",
}
"""Headline numbers of the classic protocol (key -> label)."""


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (defaults = quick profile)."""

    split_pairs: Sequence[Sequence[int]] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
    domain_fmnist_pairs: Sequence[Sequence[int]] = ((0, 1), (5, 7))
    domain_digit_pairs: Sequence[Sequence[int]] = ((0, 1), (2, 3))
    max_train: int = 150
    max_test: int = 200
    seeds: Sequence[int] = (0, 1, 2, 3)
    code_size: int = 100
    ae_epochs: int = 15
    hidden: int = 100
    expert_epochs: int = 8
    expert_lr: float = 0.05
    expert_momentum: float = 0.9
    expert_batch: int = 32
    rel_threshold: float = 0.85
    n_target_train: int = 50

    def __post_init__(self) -> None:
        for name in ("split_pairs", "domain_fmnist_pairs", "domain_digit_pairs"):
            object.__setattr__(
                self, name, tuple(tuple(int(c) for c in p) for p in getattr(self, name))
            )
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if len(self.seeds) < 2:
            raise ValueError(
                "seeds: at least two seeds (standard errors are taken over seeds)"
            )

    def gate_config(self, seed: int) -> ExpertGateConfig:
        """Expert Gate's configuration for one seed."""
        return ExpertGateConfig(
            code_size=self.code_size,
            ae_epochs=self.ae_epochs,
            expert_epochs=self.expert_epochs,
            expert_lr=self.expert_lr,
            expert_momentum=self.expert_momentum,
            expert_batch_size=self.expert_batch,
            rel_threshold=self.rel_threshold,
            seed=seed,
        )


@dataclass
class FamilyRuns:
    """One task family over all seeds: the classic protocol and the relatedness study
    per seed."""

    name: str
    task_names: list[str]
    classic: list[ClassicResult]
    studies: list[RelatednessStudy]
    domain_of: np.ndarray | None = None
    rel_threshold: float = 0.85

    def per_seed(self, key: str) -> np.ndarray:
        """Per-seed task-mean of a headline number (a key of :data:`METHODS`), shape
        (n_seeds,)."""
        get = {
            "gate_ae": lambda r: r.expert_gate.gate_acc,
            "gate_disc": lambda r: r.discriminative.gate_acc,
            "expert_gate": lambda r: r.expert_gate.acc,
            "disc_gate": lambda r: r.discriminative.acc,
            "oracle": lambda r: r.expert_gate.oracle_acc,
            "joint": lambda r: r.joint,
            "finetune": lambda r: r.finetune,
            "lwf": lambda r: r.lwf,
        }[key]
        return np.array([float(np.mean(get(r))) for r in self.classic])

    def per_task(self, key: str) -> np.ndarray:
        """Per-task gate accuracy (``gate_ae`` / ``gate_disc``), mean over seeds, shape
        (N,)."""
        ev = (
            (lambda r: r.expert_gate.gate_acc)
            if key == "gate_ae"
            else (lambda r: r.discriminative.gate_acc)
        )
        return np.mean([ev(r) for r in self.classic], axis=0)

    def study_per_seed(self) -> dict[str, np.ndarray]:
        """Per-seed summaries of the relatedness study."""
        out: dict[str, list[float]] = {
            k: []
            for k in (
                "rel_max",
                "rel_pairs_above",
                "rho_rel_ft",
                "rho_rel_gain",
                "best_source",
                "target_scratch",
                "target_ft",
                "target_lwf",
                "retained_ft",
                "retained_lwf",
                "rel_within",
                "rel_across",
            )
        }
        for st in self.studies:
            gain = st.acc_lwf - st.acc_finetune
            out["rel_max"].append(float(st.rel.max()))
            out["rel_pairs_above"].append(float(np.sum(st.rel > self.rel_threshold)))
            out["rho_rel_ft"].append(_rho(st.rel, st.acc_finetune))
            out["rho_rel_gain"].append(_rho(st.rel, gain))
            hits = []
            for k in np.unique(st.target):
                sel = st.target == k
                best = st.acc_finetune[sel].max() - 1e-9
                hits.append(float(st.acc_finetune[sel][np.argmax(st.rel[sel])] >= best))
            out["best_source"].append(float(np.mean(hits)))
            out["target_scratch"].append(float(st.acc_scratch.mean()))
            out["target_ft"].append(float(st.acc_finetune.mean()))
            out["target_lwf"].append(float(st.acc_lwf.mean()))
            out["retained_ft"].append(float(st.source_retained_finetune.mean()))
            out["retained_lwf"].append(float(st.source_retained_lwf.mean()))
            if self.domain_of is not None:
                within = self.domain_of[st.source] == self.domain_of[st.target]
                out["rel_within"].append(float(st.rel[within].mean()))
                out["rel_across"].append(float(st.rel[~within].mean()))
        return {k: np.array(v) for k, v in out.items() if v}


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho; 0 (no association) when one variable is constant (rho undefined,
    e.g. tiny runs where every target accuracy ties)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning: handled here
        r = spearman(x, y)
    return 0.0 if np.isnan(r) else r


@dataclass
class Result(ChapterResult):
    """What the chapter's figures, tables and claim checks need."""

    chapter = CHAPTER

    params: Params
    families: dict[str, FamilyRuns]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    data_names: dict[str, str] = field(default_factory=dict)

    def record_seeds(self) -> list[int]:
        return list(self.params.seeds)


def load_data() -> tuple[ImageDataset, ImageDataset]:
    """Fashion-MNIST (Debian package) and scikit-learn's digits."""
    return load_fashion_mnist(), load_sklearn_digits()


def make_families(
    params: Params, seed: int, fmnist: ImageDataset, digits: ImageDataset
) -> dict[str, list[TaskData]]:
    """The two task families of one seed (the same draws as the notebook always used:
    split, then mixed)."""
    rng = np.random.default_rng(seed)
    kw = dict(max_train=params.max_train, max_test=params.max_test)
    split = class_split_tasks(fmnist, params.split_pairs, rng, **kw)
    mixed = domain_tasks(
        [
            (
                "Fashion-MNIST",
                class_split_tasks(fmnist, params.domain_fmnist_pairs, rng, **kw),
            ),
            ("digits", class_split_tasks(digits, params.domain_digit_pairs, rng, **kw)),
        ],
        size=fmnist.image_shape[1:],
    )
    return {"mixed": mixed, "split": split}


def run_families(
    params: Params, fmnist: ImageDataset, digits: ImageDataset
) -> dict[str, FamilyRuns]:
    """The classic protocol and the relatedness study of both families, every seed."""
    shape = fmnist.image_shape
    in_dim = int(np.prod(shape))

    def factory() -> Any:
        return mlp_expert(in_dim, 2, params.hidden)

    fams: dict[str, FamilyRuns] = {}
    for seed in params.seeds:
        cfg = params.gate_config(seed)
        for fam, tasks in make_families(params, seed, fmnist, digits).items():
            classic = run_classic(tasks, shape, 2, factory, cfg)
            study = relatedness_study(
                tasks, shape, 2, factory, cfg, params.n_target_train
            )
            if fam not in fams:
                dom = None
                if fam == "mixed":
                    n_fm, n_dg = (
                        len(params.domain_fmnist_pairs),
                        len(params.domain_digit_pairs),
                    )
                    dom = np.array([0] * n_fm + [1] * n_dg)
                fams[fam] = FamilyRuns(
                    fam, [tk.name for tk in tasks], [], [], dom, params.rel_threshold
                )
            fams[fam].classic.append(classic)
            fams[fam].studies.append(study)
    return fams


def run_configs(
    params: Params,
    fams: dict[str, FamilyRuns],
    fmnist: ImageDataset,
    digits: ImageDataset,
) -> dict[str, Any]:
    """The configurations of a run (recorded)."""
    shape = fmnist.image_shape
    in_dim = int(np.prod(shape))
    return {
        "expert_gate": {
            k: v
            for k, v in asdict(params.gate_config(params.seeds[0])).items()
            if k != "seed"
        },
        "expert_gate_seeds": list(params.seeds),
        "expert": {
            "kind": "mlp_expert",
            "in_dim": in_dim,
            "n_classes": 2,
            "hidden": params.hidden,
        },
        "task_classifier": {
            "kind": "MLP d-64-N (run_classic default)",
            "epochs": params.expert_epochs,
            "lr": params.expert_lr,
            "momentum": params.expert_momentum,
            "batch_size": params.expert_batch,
        },
        "baselines": {
            "epochs": params.expert_epochs,
            "lr": params.expert_lr,
            "momentum": params.expert_momentum,
            "batch_size": params.expert_batch,
            "evaluation": "task-aware (own head)",
        },
        "relatedness_study": {
            "n_target_train": params.n_target_train,
            "rel_threshold": params.rel_threshold,
        },
        "data": {
            "fashion_mnist": fmnist.name,
            "digits": digits.name,
            "image_shape": list(shape),
            "max_train": params.max_train,
            "max_test": params.max_test,
        },
        "tasks": {fam: fr.task_names for fam, fr in fams.items()},
    }
