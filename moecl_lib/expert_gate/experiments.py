"""Experiments of the Expert Gate chapter: the classic protocol, the relatedness study
and tasks from several domains. The baselines and the evaluation of a gate live in
:mod:`moecl_lib.expert_gate.baselines`, the oracle router and the summaries of a round
learner in :mod:`moecl_lib.expert_gate.round_stream` (re-exported here).

Classic protocol (Expert Gate paper, Sec. 4): tasks arrive one after the other, each
with all its training data; after the last task every method is tested on every task
(:func:`run_classic`; baselines and evaluation conventions: see
:mod:`moecl_lib.expert_gate.baselines`). Accuracies in %.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import TaskData
from moecl_lib.deep.moe import train_classifier
from moecl_lib.expert_gate.autoencoders import reconstruction_errors, relatedness
from moecl_lib.expert_gate.baselines import (
    GateEvaluation,
    MultiHeadNet,
    evaluate_gate,
    multihead_accuracy,
    train_joint,
    train_sequential,
    train_task_classifier,
)
from moecl_lib.expert_gate.experts import (
    as_class_logits,
    expert_logits,
    head_outputs,
    task_head,
    train_lwf,
)
from moecl_lib.expert_gate.gate import ExpertGate, ExpertGateConfig
from moecl_lib.expert_gate.round_stream import (
    OracleRouter as OracleRouter,
)
from moecl_lib.expert_gate.round_stream import (
    learner_parameters as learner_parameters,
)
from moecl_lib.expert_gate.round_stream import (
    summarise_stream as summarise_stream,
)


# --------------------------------------------------------------------------------------
# The classic experiment
# --------------------------------------------------------------------------------------
@dataclass
class ClassicResult:
    """Numbers of one seed of :func:`run_classic` (accuracies in %, per task, shape
    (N,)).

    Attributes:
        expert_gate, discriminative: :class:`GateEvaluation` with the autoencoder /
            discriminative gate.
        joint, finetune, lwf: task-aware accuracies of the multi-head baselines after
            the last task.
        reports: Expert Gate's :class:`~moecl_lib.expert_gate.gate.TaskReport` per task
            (relatedness, mode).
        params: scalar parameters held at the end by each method.
        seconds: training wall time of each method.
    """

    expert_gate: GateEvaluation
    discriminative: GateEvaluation
    joint: np.ndarray
    finetune: np.ndarray
    lwf: np.ndarray
    reports: list[Any]
    params: dict[str, int]
    seconds: dict[str, float]


def run_classic(
    tasks: Sequence[TaskData],
    in_shape: Sequence[int],
    n_classes: int,
    expert_factory: Callable[[], nn.Module],
    gate_config: ExpertGateConfig,
    baseline_epochs: int | None = None,
    task_classifier_factory: Callable[[int], nn.Module] | None = None,
) -> ClassicResult:
    """Sequential tasks: Expert Gate vs joint / fine-tuning / LwF single models and a
    discriminative gate.

    All methods use the same expert architecture, SGD settings and epochs
    (``gate_config.expert_*``; the baselines use ``baseline_epochs`` if given). Seeded
    by ``gate_config.seed``.
    """
    if len(tasks) < 2:
        raise ConfigError("run_classic needs at least 2 tasks")
    cfg = gate_config
    ep = cfg.expert_epochs if baseline_epochs is None else int(baseline_epochs)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    eg = ExpertGate(in_shape, n_classes, cfg, expert_factory=expert_factory)
    for tk in tasks:
        eg.fit_task(tk.x_train, tk.y_train)
    seconds["expert_gate"] = time.perf_counter() - t0
    ev = evaluate_gate(eg, tasks)

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    torch.manual_seed(cfg.seed + 1)
    t0 = time.perf_counter()
    d = int(np.prod(in_shape))
    tc_factory = task_classifier_factory or (
        lambda n: nn.Sequential(
            nn.Flatten(), nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, n)
        )
    )
    clf = train_task_classifier(
        tasks,
        tc_factory,
        ep,
        cfg.expert_lr,
        cfg.expert_batch_size,
        gen,
        cfg.expert_momentum,
    )
    seconds["discriminative_gate"] = time.perf_counter() - t0
    ev_disc = evaluate_gate(eg, tasks, clf)

    accs, params = _single_models(tasks, expert_factory, cfg, ep, gen, seconds)
    pc = eg.parameter_counts()
    params["expert_gate"] = pc["gate"] + pc["experts"]
    params["expert_gate_gate_only"] = pc["gate"]
    return ClassicResult(
        ev,
        ev_disc,
        accs["joint"],
        accs["finetune"],
        accs["lwf"],
        list(eg.reports),
        params,
        seconds,
    )


def _single_models(
    tasks: Sequence[TaskData],
    expert_factory: Callable[[], nn.Module],
    cfg: ExpertGateConfig,
    ep: int,
    gen: torch.Generator,
    seconds: dict[str, float],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The multi-head baselines (joint, sequential fine-tuning, single LwF model):
    task-aware accuracies and parameter counts per baseline; wall times into
    ``seconds``."""
    accs: dict[str, np.ndarray] = {}
    params: dict[str, int] = {}
    for name in ("joint", "finetune", "lwf"):
        torch.manual_seed(cfg.seed + 2)
        net = MultiHeadNet(expert_factory)
        t0 = time.perf_counter()
        if name == "joint":
            train_joint(
                net,
                tasks,
                ep,
                cfg.expert_lr,
                cfg.expert_batch_size,
                gen,
                cfg.expert_momentum,
            )
        else:
            for tk in tasks:
                train_sequential(
                    net,
                    tk,
                    ep,
                    cfg.expert_lr,
                    cfg.expert_batch_size,
                    gen,
                    lwf=(name == "lwf"),
                    temperature=cfg.lwf_temperature,
                    lambda_old=cfg.lwf_lambda,
                    momentum=cfg.expert_momentum,
                )
        seconds[name] = time.perf_counter() - t0
        accs[name] = multihead_accuracy(net, tasks)
        params[name] = int(sum(p.numel() for p in net.parameters()))
    return accs, params


# --------------------------------------------------------------------------------------
# Relatedness vs. the LwF / fine-tuning decision
# --------------------------------------------------------------------------------------
@dataclass
class RelatednessStudy:
    """All ordered task pairs (source a -> target k) of :func:`relatedness_study`,
    arrays of shape (P,).

    Attributes:
        source, target: task indices.
        rel: ``Rel(T_k, T_a)`` from the autoencoders (validation split of the target's
            training data).
        acc_finetune, acc_lwf: target test accuracy (%) of an expert initialised from
            the source expert and trained by fine-tuning / LwF on the target's (small)
            training set.
        acc_scratch: per target, accuracy of an expert trained from scratch with the
            same budget, (N,).
        source_retained_lwf, source_retained_finetune: accuracy (%) of the OLD head on
            the source task after training on the target (what LwF is designed to
            preserve).
    """

    source: np.ndarray
    target: np.ndarray
    rel: np.ndarray
    acc_finetune: np.ndarray
    acc_lwf: np.ndarray
    acc_scratch: np.ndarray
    source_retained_lwf: np.ndarray
    source_retained_finetune: np.ndarray


def relatedness_study(
    tasks: Sequence[TaskData],
    in_shape: Sequence[int],
    n_classes: int,
    expert_factory: Callable[[], nn.Module],
    gate_config: ExpertGateConfig,
    n_target_train: int,
) -> RelatednessStudy:
    """For every ordered pair (a, k): relatedness and the target accuracy of fine-tuning
    vs LwF from expert a.

    Each task gets an autoencoder and a source expert trained on the first
    ``1 - val_fraction`` of its training set; the relatedness is measured on the
    held-out rest (the target's validation data). Each target is then learned from only
    ``n_target_train`` samples (small, so the initialisation matters) starting from each
    source expert, by fine-tuning and by LwF.
    """
    cfg = gate_config
    eg = ExpertGate(in_shape, n_classes, cfg, expert_factory=expert_factory)
    val = []
    # autoencoders on the first part of each training set, validation on the rest
    for tk in tasks:
        n_val = max(1, int(round(cfg.val_fraction * tk.x_train.shape[0])))
        eg.fit_task(tk.x_train[:-n_val], tk.y_train[:-n_val], x_val=tk.x_train[-n_val:])
        val.append(eg.gate_input(tk.x_train[-n_val:]))
    N = len(tasks)
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    # errors of every autoencoder on every task's validation inputs: E[k, a] = Err_a on
    # task k
    E = np.array(
        [reconstruction_errors(eg.autoencoders, v).mean(dim=0).numpy() for v in val]
    )
    scratch = []
    for k, tk in enumerate(tasks):
        torch.manual_seed(cfg.seed + 100 + k)
        model = expert_factory()
        _train(
            model, tk.x_train[:n_target_train], tk.y_train[:n_target_train], cfg, gen
        )
        scratch.append(_acc(model, tk.x_test, tk.y_test))
    rows: dict[str, list[float]] = {
        key: [] for key in ("a", "k", "rel", "ft", "lwf", "ret_lwf", "ret_ft")
    }
    for k, tk in enumerate(tasks):
        xk, yk = tk.x_train[:n_target_train], tk.y_train[:n_target_train]
        for a in range(N):
            if a == k:
                continue
            rel = float(relatedness(max(float(E[k, k]), 1e-12), float(E[k, a])))
            res = {}
            for mode in ("finetune", "lwf"):
                torch.manual_seed(cfg.seed + 1000 + 10 * k + a)
                res[mode] = _transfer(
                    eg.experts[a], mode, (xk, yk), tk, tasks[a], cfg, gen
                )
            rows["a"].append(a)
            rows["k"].append(k)
            rows["rel"].append(rel)
            rows["ft"].append(res["finetune"][0])
            rows["lwf"].append(res["lwf"][0])
            rows["ret_ft"].append(res["finetune"][1])
            rows["ret_lwf"].append(res["lwf"][1])
    return RelatednessStudy(
        source=np.array(rows["a"], dtype=int),
        target=np.array(rows["k"], dtype=int),
        rel=np.array(rows["rel"]),
        acc_finetune=np.array(rows["ft"]),
        acc_lwf=np.array(rows["lwf"]),
        acc_scratch=np.array(scratch),
        source_retained_lwf=np.array(rows["ret_lwf"]),
        source_retained_finetune=np.array(rows["ret_ft"]),
    )


def _train(
    model: nn.Module, x: Tensor, y: Tensor, cfg: ExpertGateConfig, gen: torch.Generator
) -> None:
    """Train an expert on ``(x, y)`` with the configured expert budget."""
    train_classifier(
        model,
        x,
        y,
        cfg.expert_epochs,
        cfg.expert_lr,
        cfg.expert_batch_size,
        gen,
        cfg.expert_momentum,
    )


def _transfer(
    src: nn.Module,
    mode: str,
    data: tuple[Tensor, Tensor],
    target: TaskData,
    source_task: TaskData,
    cfg: ExpertGateConfig,
    gen: torch.Generator,
) -> tuple[float, float]:
    """Learn the target task from ``data`` (inputs, labels), starting from a copy of the
    source expert with a fresh head, by fine-tuning or LwF (``mode``); returns the
    target test accuracy and the old head's accuracy on the source task (both %)."""
    xk, yk = data
    model = copy.deepcopy(src)
    old_head = copy.deepcopy(task_head(src))
    task_head(model).reset_parameters()
    if mode == "lwf":
        teacher = head_outputs(src, xk)
        train_lwf(
            model,
            old_head,
            teacher,
            xk,
            yk,
            cfg.expert_epochs,
            cfg.expert_lr,
            cfg.expert_batch_size,
            gen,
            cfg.lwf_temperature,
            cfg.lwf_lambda,
            cfg.expert_momentum,
        )
    else:
        _train(model, xk, yk, cfg, gen)
    retained = _head_acc(model, old_head, source_task.x_test, source_task.y_test)
    return _acc(model, target.x_test, target.y_test), retained


@torch.no_grad()
def _acc(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return 100.0 * float((expert_logits(model, x).argmax(1) == y).float().mean())


@torch.no_grad()
def _head_acc(model: nn.Module, head: nn.Linear, x: Tensor, y: Tensor) -> float:
    """Accuracy of ``head`` on the features that feed ``model``'s own head (the old
    task's head after LwF)."""
    feats: dict[str, Tensor] = {}
    h = task_head(model).register_forward_hook(
        lambda _m, inp, _o: feats.__setitem__("x", inp[0])
    )
    model.eval()
    try:
        model(x)
    finally:
        h.remove()
    return 100.0 * float(
        (as_class_logits(head(feats["x"])).argmax(1) == y).float().mean()
    )


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(x), np.asarray(y)).statistic)


# --------------------------------------------------------------------------------------
# Tasks from different "domains" (the Expert Gate paper's tasks were different data
# sets)
# --------------------------------------------------------------------------------------
def resize_images(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(n, C, H, W)`` images to ``size`` (values stay in
    [0, 1])."""
    if x.ndim != 4:
        raise ConfigError(f"images must have shape (n, C, H, W), got {tuple(x.shape)}")
    return Fnn.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(
        0.0, 1.0
    )


def domain_tasks(
    domains: Sequence[tuple[str, Sequence[TaskData]]],
    size: tuple[int, int] | None = None,
) -> list[TaskData]:
    """Concatenate task lists of several data sets ("domains"), resizing images to a
    common ``size``.

    Args:
        domains: ``(domain name, tasks)`` pairs; task names become
            ``"<domain>: <task name>"``.
        size: target (H, W); default = the first task's image size.
    """
    out: list[TaskData] = []
    for dname, tasks in domains:
        for tk in tasks:
            if size is None:
                size = (int(tk.x_train.shape[-2]), int(tk.x_train.shape[-1]))
            conv = (
                (lambda x: x)
                if tuple(tk.x_train.shape[-2:]) == tuple(size)
                else (lambda x, size=size: resize_images(x, size))
            )  # noqa: E731
            out.append(
                TaskData(
                    f"{dname}: {tk.name}",
                    tk.classes,
                    conv(tk.x_train),
                    tk.y_train,
                    conv(tk.x_test),
                    tk.y_test,
                )
            )
    if not out:
        raise ConfigError("domains must hold at least one task")
    return out


def summarise_classic(
    results: Sequence[ClassicResult],
) -> dict[str, tuple[float, float]]:
    """Mean over tasks, then mean and standard error over seeds (``ddof=1``) of every
    headline number (%).

    Keys: ``gate_ae``, ``gate_discriminative`` (gate accuracy), ``expert_gate``
    (task-agnostic accuracy with the autoencoder gate), ``discriminative_gate`` (same
    experts, discriminative gate), ``oracle_gate`` (experts with the true task),
    ``joint``, ``finetune``, ``lwf`` (task-aware single models).
    """
    from moecl_lib.analysis.metrics import mean_se

    if not results:
        raise ConfigError("results must not be empty")
    per_seed = {
        "gate_ae": [r.expert_gate.gate_acc.mean() for r in results],
        "gate_discriminative": [r.discriminative.gate_acc.mean() for r in results],
        "expert_gate": [r.expert_gate.acc.mean() for r in results],
        "discriminative_gate": [r.discriminative.acc.mean() for r in results],
        "oracle_gate": [r.expert_gate.oracle_acc.mean() for r in results],
        "joint": [r.joint.mean() for r in results],
        "finetune": [r.finetune.mean() for r in results],
        "lwf": [r.lwf.mean() for r in results],
    }
    out = {}
    for k, v in per_seed.items():
        m, se = mean_se(np.asarray(v, dtype=float))
        out[k] = (float(m), float(se))
    return out
