"""The experts of Expert Gate: the expert convention, the task head, and training with
Learning without Forgetting (Li & Hoiem 2016; overview in
:mod:`moecl_lib.expert_gate.gate`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import ConfigError, as_float, as_int
from moecl_lib.deep.moe import expert_loss, minibatch_steps


# --------------------------------------------------------------------------------------
# Inputs and LwF losses
# --------------------------------------------------------------------------------------
def _as_labels(y: Any, n: int, name: str = "y") -> Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != n:
        shape = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
        raise ConfigError(
            f"{name} must be a 1-D integer tensor with {n} labels, got {shape}"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ConfigError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    return y.to(torch.int64)


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0
) -> Tensor:
    """Soft-target cross-entropy
    ``mean_i [ - sum_c softmax(t_i/T)_c * log softmax(s_i/T)_c ]`` (no T^2 factor).

    This is LwF's "modified cross-entropy" ``L_old``; it equals ``KL(q || p) + H(q)``,
    so its gradient in the student equals that of the KL divergence.
    """
    as_float(temperature, "temperature", positive=True)
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ConfigError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must both have shape (n, C)"
        )
    q = torch.softmax(teacher_logits.detach() / temperature, dim=1)
    logp = torch.log_softmax(student_logits / temperature, dim=1)
    return -(q * logp).sum(dim=1).mean()


def lwf_loss(
    new_logits: Tensor,
    targets: Tensor,
    old_head_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 2.0,
    lambda_old: float = 1.0,
) -> Tensor:
    """Learning-without-Forgetting loss
    ``CE(new_logits, y) + lambda_old * distillation(old_head, teacher, T)``.

    Args:
        new_logits: (n, C) outputs of the new task's head.
        targets: (n,) integer labels of the new task.
        old_head_logits: (n, C_old) outputs of the old task's head of the network being
            trained.
        teacher_logits: (n, C_old) outputs of the source (old) network on the same
            inputs, recorded before training (treated as constants).
        temperature: distillation temperature (2).
        lambda_old: weight of the distillation term (1).
    """
    as_float(lambda_old, "lambda_old")
    ce = Fnn.cross_entropy(new_logits, targets)
    return ce + float(lambda_old) * distillation_loss(
        old_head_logits, teacher_logits, temperature
    )


# --------------------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------------------
# Expert convention: any nn.Module whose LAST registered nn.Linear is the task head. If
# the module has ``loss(x, y)`` / ``logits(x)`` methods (e.g.
# moecl_lib.deep.moe.CNNExpert with sigmoid units) they are used; otherwise the loss is
# cross-entropy on ``model(x)`` and the logits are ``model(x)``. A head with ONE output
# unit is a sigmoid unit whose class logits are ``[-z/2, z/2]`` (softmax of these =
# [1 - sigmoid(z), sigmoid(z)]), which is also how it is distilled by LwF.
def mlp_expert(in_dim: int, n_classes: int, hidden: int = 64) -> nn.Sequential:
    """Small default expert:
    ``Flatten -> Linear(in, hidden) -> ReLU -> Linear(hidden, n_classes)``."""
    in_dim = as_int(in_dim, "in_dim", 1)
    n_classes = as_int(n_classes, "n_classes", 2)
    hidden = as_int(hidden, "hidden", 1)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
    )


def task_head(model: nn.Module) -> nn.Linear:
    """The expert's task head: its last registered ``nn.Linear`` (ConfigError if it has
    none)."""
    last: nn.Linear | None = None
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            last = mod
    if last is None:
        raise ConfigError(
            f"an expert must contain an nn.Linear task head; {type(model).__name__} "
            "has none"
        )
    return last


def as_class_logits(raw: Tensor) -> Tensor:
    """Head outputs -> class logits: one sigmoid unit ``z`` becomes ``[-z/2, z/2]``;
    otherwise unchanged."""
    return torch.cat([-raw / 2, raw / 2], dim=1) if raw.shape[1] == 1 else raw


def expert_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Class logits of an expert (its ``logits`` method if it has one, else
    ``model(x)``)."""
    fn = getattr(model, "logits", None)
    return fn(x) if callable(fn) else model(x)


@torch.no_grad()
def head_outputs(model: nn.Module, x: Tensor) -> Tensor:
    """Class logits of the task head of ``model`` on ``x`` (recorded teacher outputs for
    LwF)."""
    store: dict[str, Tensor] = {}
    handle = task_head(model).register_forward_hook(
        lambda _m, _i, out: store.__setitem__("out", out)
    )
    model.eval()
    try:
        model(x)
    finally:
        handle.remove()
    return as_class_logits(store["out"])


def train_lwf(
    model: nn.Module,
    old_head: nn.Linear,
    teacher_logits: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    temperature: float = 2.0,
    lambda_old: float = 1.0,
    momentum: float = 0.0,
) -> None:
    """LwF: train ``model`` (shared body + NEW head) and ``old_head`` on the new task
    only.

    Loss per minibatch = new-task loss (:func:`lwf_loss` for cross-entropy experts, the
    expert's own ``loss`` otherwise) + ``lambda_old`` x :func:`distillation_loss`
    between ``old_head`` applied to the body's features and the ``teacher_logits``
    (n, C_old) recorded from the source expert before training.
    """
    head = task_head(model)
    if head.in_features != old_head.in_features:
        raise ConfigError("old_head must read the same features as the model's head")
    if teacher_logits.shape[0] != x.shape[0]:
        raise ConfigError("teacher_logits must have one row per training sample")
    feats: dict[str, Tensor] = {}
    handle = head.register_forward_hook(
        lambda _m, inp, _o: feats.__setitem__("x", inp[0])
    )
    custom_loss = callable(getattr(model, "loss", None))
    opt = torch.optim.SGD(
        list(model.parameters()) + list(old_head.parameters()), lr=lr, momentum=momentum
    )

    def batch_loss(idx: Tensor) -> Tensor:
        if custom_loss:
            task = expert_loss(model, x[idx], y[idx])
            old = as_class_logits(old_head(feats["x"]))
            return task + float(lambda_old) * distillation_loss(
                old, teacher_logits[idx], temperature
            )
        out = model(x[idx])
        old = as_class_logits(old_head(feats["x"]))
        return lwf_loss(out, y[idx], old, teacher_logits[idx], temperature, lambda_old)

    model.train()
    try:
        minibatch_steps(opt, x.shape[0], epochs, batch_size, generator, batch_loss)
    finally:
        handle.remove()
    model.eval()


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of a module."""
    return int(sum(p.numel() for p in module.parameters()))
