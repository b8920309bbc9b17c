"""Baselines of the Expert Gate chapter and the evaluation of a gate (used by
:func:`moecl_lib.expert_gate.experiments.run_classic`).

Classic protocol (Expert Gate paper, Sec. 4): tasks arrive one after the other, each
with all its training data; after the last task every method is tested on every task.
Baselines (our small-scale versions; the paper used AlexNet on large data sets):

* **joint training**: one shared network with one head per task, trained on the data of
  all tasks at once (not a continual learner; the usual upper reference);
* **sequential fine-tuning**: one shared network, a new head per task, trained on each
  new task only (old heads kept as they were, the shared layers drift: forgetting);
* **single LwF model**: the same, with Learning-without-Forgetting distillation of every
  old head on the new task's inputs (:func:`moecl_lib.expert_gate.experts.train_lwf`'s
  loss with one term per old head);
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import TaskData
from moecl_lib.deep.moe import train_classifier
from moecl_lib.expert_gate.experts import (
    as_class_logits,
    distillation_loss,
    expert_logits,
    task_head,
)
from moecl_lib.expert_gate.gate import ExpertGate


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
