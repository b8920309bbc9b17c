"""Experiments of the Expert Gate chapter: baselines, evaluation, relatedness study,
oracle router.

Classic protocol (Expert Gate paper, Sec. 4): tasks arrive one after the other, each
with all its training data; after the last task every method is tested on every task.
Baselines (our small-scale versions; the paper used AlexNet on large data sets):

* **joint training**: one shared network with one head per task, trained on the data of
  all tasks at once (not a continual learner; the usual upper reference);
* **sequential fine-tuning**: one shared network, a new head per task, trained on each
  new task only (old heads kept as they were, the shared layers drift: forgetting);
* **single LwF model**: the same, with Learning-without-Forgetting distillation of every
  old head on the new task's inputs (:func:`moecl_lib.expert_gate.gate.train_lwf`'s loss
  with one term per old head);
* **oracle gate**: Expert Gate's experts, each test sample sent to its own task's
  expert;
* **discriminative gate**: a task classifier trained on the inputs of ALL tasks (stores
  old data, not a continual learner) routes each test sample; the paper's reference for
  the autoencoder gate.

Evaluation conventions: baselines with task heads are evaluated *task-aware* (the test
sample's own head), as in the paper's tables; Expert Gate and the discriminative gate
are *task-agnostic*: a sample counts as correct only if it is routed to its own task's
expert AND that expert predicts its label. Accuracies in %.
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
from moecl_lib.expert_gate.gate import (
    ExpertGate,
    ExpertGateConfig,
    as_class_logits,
    distillation_loss,
    expert_logits,
    head_outputs,
    reconstruction_errors,
    relatedness,
    task_head,
    train_classifier,
    train_lwf,
)


# --------------------------------------------------------------------------------------
# Multi-head network (shared body, one head per task) for the single-model baselines
# --------------------------------------------------------------------------------------
def _replace_last_linear(model: nn.Module) -> nn.Linear:
    """Replace the last ``nn.Linear`` of ``model`` by ``nn.Identity`` in place; return
    the removed layer."""
    last_name = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last_name = name
    if last_name is None:
        raise ConfigError(
            f"an expert must contain an nn.Linear task head; {type(model).__name__} "
            "has none"
        )
    parent_name, _, attr = last_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, attr)
    setattr(parent, attr, nn.Identity())
    return head


class MultiHeadNet(nn.Module):
    """Shared body (an expert without its head) + one linear head per task.

    ``logits(x, k)`` = class logits of head ``k`` (a one-unit sigmoid head gives
    ``[-z/2, z/2]``, so cross-entropy on these logits equals the binary cross-entropy of
    the sigmoid unit).
    """

    def __init__(self, expert_factory: Callable[[], nn.Module]) -> None:
        super().__init__()
        proto = expert_factory()
        self._head_proto = copy.deepcopy(task_head(proto))
        self.body = proto
        _replace_last_linear(self.body)
        self.heads = nn.ModuleList()

    def add_head(self) -> int:
        """Append a freshly initialised head; return its index."""
        h = copy.deepcopy(self._head_proto)
        h.reset_parameters()
        self.heads.append(h)
        return len(self.heads) - 1

    def logits(self, x: Tensor, k: int) -> Tensor:
        """Class logits of head ``k``."""
        return as_class_logits(self.heads[k](self.body(x)))


def _batches(n: int, bs: int, gen: torch.Generator) -> list[Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + bs] for i in range(0, n, bs)]


def train_joint(
    net: MultiHeadNet,
    tasks: Sequence[TaskData],
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    momentum: float = 0.0,
) -> None:
    """Joint training: every step takes one minibatch of EVERY task and sums the
    per-task losses."""
    while len(net.heads) < len(tasks):
        net.add_head()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    net.train()
    for _ in range(epochs):
        plans = [_batches(tk.x_train.shape[0], batch_size, gen) for tk in tasks]
        for step in range(max(len(p) for p in plans)):
            loss = torch.zeros(())
            for k, (tk, plan) in enumerate(zip(tasks, plans)):
                idx = plan[step % len(plan)]
                loss = loss + Fnn.cross_entropy(
                    net.logits(tk.x_train[idx], k), tk.y_train[idx]
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


def train_sequential(
    net: MultiHeadNet,
    task: TaskData,
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    lwf: bool,
    temperature: float = 2.0,
    lambda_old: float = 1.0,
    momentum: float = 0.0,
) -> int:
    """Learn one new task on the shared network: new head + body (+ old heads under
    LwF).

    ``lwf=False`` (fine-tuning): old heads frozen, body and new head trained on the new
    task's loss. ``lwf=True``: old heads' outputs on the new inputs are recorded first;
    body, new head AND old heads are trained on
    ``CE(new) + lambda_old * sum_j distillation(old head j, recorded j)`` (Li & Hoiem).
    """
    k = net.add_head()
    x, y = task.x_train, task.y_train
    old = list(range(k))
    teachers: list[Tensor] = []
    if lwf and old:
        net.eval()
        with torch.no_grad():
            teachers = [net.logits(x, j) for j in old]
    params = list(net.body.parameters()) + list(net.heads[k].parameters())
    if lwf:
        for j in old:
            params += list(net.heads[j].parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    net.train()
    for _ in range(epochs):
        for idx in _batches(x.shape[0], batch_size, gen):
            feats = net.body(x[idx])
            loss = Fnn.cross_entropy(as_class_logits(net.heads[k](feats)), y[idx])
            if lwf:
                for j, tl in zip(old, teachers):
                    loss = loss + lambda_old * distillation_loss(
                        as_class_logits(net.heads[j](feats)), tl[idx], temperature
                    )
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return k


@torch.no_grad()
def multihead_accuracy(net: MultiHeadNet, tasks: Sequence[TaskData]) -> np.ndarray:
    """Task-aware test accuracy (%) of every task with its own head, shape (N,)."""
    net.eval()
    return np.array(
        [
            100.0
            * float((net.logits(tk.x_test, k).argmax(1) == tk.y_test).float().mean())
            for k, tk in enumerate(tasks)
        ]
    )


# --------------------------------------------------------------------------------------
# Gates and Expert Gate evaluation
# --------------------------------------------------------------------------------------
def train_task_classifier(
    tasks: Sequence[TaskData],
    factory: Callable[[int], nn.Module],
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    momentum: float = 0.9,
) -> nn.Module:
    """Discriminative gate: a classifier of the TASK id trained on the training inputs
    of all tasks."""
    x = torch.cat([tk.x_train for tk in tasks])
    y = torch.cat(
        [
            torch.full((tk.x_train.shape[0],), k, dtype=torch.int64)
            for k, tk in enumerate(tasks)
        ]
    )
    model = factory(len(tasks))
    train_classifier(model, x, y, epochs, lr, batch_size, gen, momentum)
    return model


@dataclass
class GateEvaluation:
    """Per-task test numbers (%) of one gated system (arrays of shape (N,)).

    Attributes:
        gate_acc: fraction of test samples routed to their own task's expert.
        acc: task-agnostic accuracy (routed to the right expert AND correctly
            classified).
        oracle_acc: accuracy of the task's own expert (gate bypassed).
    """

    gate_acc: np.ndarray
    acc: np.ndarray
    oracle_acc: np.ndarray


@torch.no_grad()
def evaluate_gate(
    eg: ExpertGate, tasks: Sequence[TaskData], router: nn.Module | None = None
) -> GateEvaluation:
    """Evaluate Expert Gate's experts with its autoencoder gate (``router=None``) or a
    task classifier."""
    gate_acc, acc, orc = [], [], []
    for k, tk in enumerate(tasks):
        if router is None:
            routed = eg.route_samples(tk.x_test)
        else:
            router.eval()
            routed = expert_logits(router, tk.x_test).argmax(1)
        ok_gate = routed == k
        own = eg.predict(tk.x_test, k).argmax(1) == tk.y_test
        gate_acc.append(100.0 * float(ok_gate.float().mean()))
        acc.append(100.0 * float((ok_gate & own).float().mean()))
        orc.append(100.0 * float(own.float().mean()))
    return GateEvaluation(np.array(gate_acc), np.array(acc), np.array(orc))


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
    for tk in (
        tasks
    ):  # autoencoders on the first part of each training set, validation on the rest
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
        train_classifier(
            model,
            tk.x_train[:n_target_train],
            tk.y_train[:n_target_train],
            cfg.expert_epochs,
            cfg.expert_lr,
            cfg.expert_batch_size,
            gen,
            cfg.expert_momentum,
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
            src = eg.experts[a]
            rel = float(relatedness(max(float(E[k, k]), 1e-12), float(E[k, a])))
            res = {}
            for mode in ("finetune", "lwf"):
                torch.manual_seed(cfg.seed + 1000 + 10 * k + a)
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
                    retained = _head_acc(
                        model, old_head, tasks[a].x_test, tasks[a].y_test
                    )
                else:
                    train_classifier(
                        model,
                        xk,
                        yk,
                        cfg.expert_epochs,
                        cfg.expert_lr,
                        cfg.expert_batch_size,
                        gen,
                        cfg.expert_momentum,
                    )
                    retained = _head_acc(
                        model, old_head, tasks[a].x_test, tasks[a].y_test
                    )
                res[mode] = (_acc(model, tk.x_test, tk.y_test), retained)
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
# Oracle router for the round stream (head-to-head reference)
# --------------------------------------------------------------------------------------
class OracleRouter:
    """A :class:`~moecl_lib.deep.learners.RoundLearner` that knows the task of every
    sample (one expert per task).

    The task of a batch is found from a table of all training and test inputs of
    ``tasks`` (the benchmark's task labels; this is the oracle): every sample votes for
    the tasks that contain it (an image can belong to several tasks, e.g. as a "rest"
    sample of one-vs-rest tasks) and the batch goes to the most voted task (lowest index
    on ties). Experts come from ``expert_factory`` and are trained like the MoE's: SGD
    with ``lr``, ``epochs``, ``minibatch`` and ``momentum`` on the round's batch.
    """

    changes_all_experts = False

    def __init__(
        self,
        tasks: Sequence[TaskData],
        expert_factory: Callable[[], nn.Module],
        lr: float,
        epochs: int,
        minibatch: int,
        momentum: float = 0.0,
        seed: int = 0,
        name: str = "oracle router",
    ) -> None:
        if len(tasks) == 0:
            raise ConfigError("tasks must not be empty")
        self.name = name
        torch.manual_seed(seed)
        self.experts = [expert_factory() for _ in tasks]
        self.n_experts = len(tasks)
        self.lr, self.epochs, self.minibatch, self.momentum = (
            float(lr),
            int(epochs),
            int(minibatch),
            float(momentum),
        )
        self._gen = torch.Generator().manual_seed(seed)
        self._table: dict[bytes, set[int]] = {}
        for k, tk in enumerate(tasks):
            for x in (tk.x_train, tk.x_test):
                for row in x.reshape(x.shape[0], -1):
                    self._table.setdefault(row.numpy().tobytes(), set()).add(k)

    def _task(self, x: Tensor) -> int:
        votes = np.zeros(self.n_experts, dtype=np.int64)
        for row in x.reshape(x.shape[0], -1):
            owners = self._table.get(row.numpy().tobytes())
            if owners is None:
                raise ConfigError(
                    "OracleRouter: input not found in the tasks it was built with"
                )
            votes[list(owners)] += 1
        return int(np.argmax(votes))

    def route(self, x: Tensor) -> int:
        """The batch's true task."""
        return self._task(x)

    def observe(self, x: Tensor, y: Tensor) -> int:
        """Train the true task's expert on the batch."""
        k = self._task(x)
        bs = x.shape[0] if self.minibatch == 0 else min(self.minibatch, x.shape[0])
        train_classifier(
            self.experts[k], x, y, self.epochs, self.lr, bs, self._gen, self.momentum
        )
        return k

    @torch.no_grad()
    def predict(self, x: Tensor, expert: int | None = None) -> Tensor:
        """Logits of ``expert`` (None = the batch's true task)."""
        k = self._task(x) if expert is None else int(expert)
        m = self.experts[k]
        m.eval()
        return expert_logits(m, x)

    def summary(self) -> dict[str, Any]:
        """Parameter count for the results table."""
        return {
            "params_experts": int(
                sum(sum(p.numel() for p in m.parameters()) for m in self.experts)
            )
        }


# --------------------------------------------------------------------------------------
# Tasks from different "domains" (the Expert Gate paper's tasks were different data
# sets)
# --------------------------------------------------------------------------------------
def resize_images(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(n, C, H, W)`` images to ``size`` (values stay in [0,
    1])."""
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


# --------------------------------------------------------------------------------------
# Head-to-head summaries (round stream)
# --------------------------------------------------------------------------------------
def learner_parameters(learner: Any) -> dict[str, int]:
    """Scalars stored by a round learner: ``gate`` (router / autoencoders) and
    ``experts``.

    Knows :class:`~moecl_lib.expert_gate.gate.ExpertGate` (autoencoders + normaliser
    statistics), :class:`~moecl_lib.deep.moe.DeepMoE` (linear router ``theta``, M x D)
    and :class:`OracleRouter` (no gate parameters; its task table is the oracle, not
    counted).
    """
    if isinstance(learner, ExpertGate):
        return learner.parameter_counts()
    experts = getattr(learner, "experts", None)
    if experts is None:
        raise ConfigError(f"learner {type(learner).__name__} has no experts to count")
    n_exp = int(sum(sum(p.numel() for p in m.parameters()) for m in experts))
    theta = getattr(learner, "theta", None)
    gate = (
        int(theta.numel())
        if isinstance(theta, Tensor) and getattr(learner, "n_experts", 1) > 1
        else 0
    )
    return {"gate": gate, "experts": n_exp}


def summarise_stream(res: Any, window: int) -> dict[str, Any]:
    """Headline numbers of one :class:`~moecl_lib.deep.learners.StreamResult`
    (accuracies / errors in %).

    Keys: ``routing_acc`` (per window, see
    :func:`moecl_lib.expert_gate.linear.routing_accuracy`), ``final_routed_acc`` (mean
    over tasks of the accuracy with the learner's own routing after the last round), the
    community metrics of ``res.metrics()`` (learner view), ``experts_used`` and
    ``wall_time``.
    """
    from moecl_lib.expert_gate.linear import routing_accuracy

    M = int(res.acc_expert.shape[1])
    ra = routing_accuracy(
        res.experts[None], res.task_ids[None], M, res.n_tasks, window=window
    )[0]
    out = {
        "routing_acc": ra,
        "final_routed_acc": float(np.mean(res.acc_routed[-1])),
        "experts_used": int(np.unique(res.experts).size),
        "wall_time": float(res.wall_time),
    }
    out.update(res.metrics("learner"))
    return out
