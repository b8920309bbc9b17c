"""Expert Gate (Aljundi, Chakravarty & Tuytelaars, CVPR 2017) re-implemented for the
companion.

Building blocks (each a separate, tested function, following Avalanche's decomposition;
no code copied):

* :class:`InputNormaliser` - inputs are standardised with FIXED statistics and passed
  through a sigmoid, ``z = sigmoid((x - mean) / std)`` (the official MATLAB code does
  this with ImageNet statistics; we fit the statistics once, on the first data the
  learner sees, and freeze them, so every autoencoder reads the same input space and no
  old data is kept).
* :class:`GateAutoencoder` - one undercomplete autoencoder per task:
  ``Linear(d, c) -> ReLU -> Linear(c, d) -> Sigmoid`` with code size ``c < d``
  (reference implementations: c = 100). Trained with binary cross-entropy on ``z``
  (``ae_loss="bce"``, as the official code) or MSE.
* :func:`reconstruction_errors` - per-sample error
  ``err_k(x) = mean_j (zhat_j - z_j)^2`` (mean over the d features, so errors of
  different input sizes are comparable).
* :func:`gate_probabilities` - ``p_k(x) = softmax_k(-err_k(x) / temperature)`` with
  temperature 2.
* :func:`relatedness` - ``Rel(T_k, T_a) = 1 - (Err_a - Err_k) / Err_k`` where ``Err_k``
  is the error of the NEW task's autoencoder and ``Err_a`` that of an old task's
  autoencoder, BOTH measured on the new task's validation data; the denominator is the
  new autoencoder's error. Rel = 1 when the old autoencoder reconstructs the new data as
  well as the new one; smaller = less related; it can be negative. (The official MATLAB
  code reports the same number in percent.)
* :func:`lwf_loss` - Learning without Forgetting (Li & Hoiem 2016):
  ``CE(new head, y) + lambda_old * mean_i [ - sum_c q_ic log p_ic ]`` with
  ``q = softmax(teacher / T)`` (recorded outputs of the source model on the new data)
  and ``p = softmax(old head / T)``, ``T = 2``, ``lambda_old = 1``; no ``T^2`` factor.
* :class:`ExpertGate` - the learner. Two protocols:

  - classic sequential tasks (the paper): :meth:`ExpertGate.fit_task` always adds an
    autoencoder and an expert; the new expert is initialised from the most related
    previous expert and trained with LwF when the relatedness exceeds ``rel_threshold``
    (0.85), by fine-tuning otherwise;
  - the MoE paper's round stream (:class:`moecl_lib.deep.learners.RoundLearner`):
    :meth:`ExpertGate.observe` first decides whether the round's batch is a known task
    with the NOVELTY RULE below, then either trains the routed expert (and its
    autoencoder) on the batch or creates a new autoencoder + expert.

Novelty rule (ours; the paper only has the sequential protocol). Each autoencoder ``k``
keeps a reference error ``ref_k``: the mean reconstruction error on data of its task
that it had NOT been trained on (the validation split of its first batch, then the
pre-training error of every later batch routed to it). A round with batch mean errors
``e_k`` goes to ``k* = argmin_k e_k`` (the Expert Gate decision for the batch); it is
declared NEW when ``e_{k*} / ref_{k*} > novelty_ratio`` and fewer than ``max_experts``
experts exist. In relatedness terms: the batch is recognised when
``1 - (e_{k*} - ref_{k*}) / ref_{k*} >= 2 - novelty_ratio``.

No data of old tasks is stored: only the autoencoders, the experts and scalar
statistics. Pretrained feature extractors cannot be downloaded here; the gate reads raw
(optionally PCA-projected) inputs, whereas the paper used AlexNet conv5 features.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import (
    ConfigError,
    as_float,
    as_int,
    check_float,
    check_int,
    replace_fields,
)
from moecl_lib.deep.moe import expert_loss, minibatch_steps, train_classifier

AELoss = Literal["bce", "mse"]
Normalisation = Literal["feature", "global"]
Mode = Literal["scratch", "finetune", "lwf"]
AE_LOSSES: tuple[str, ...] = ("bce", "mse")
NORMALISATIONS: tuple[str, ...] = ("feature", "global")


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpertGateConfig:
    """Knobs of :class:`ExpertGate` (defaults: reference implementations where they
    exist, else ours).

    Attributes:
        code_size: autoencoder code size c; ``None`` = ``min(100, d // 2)`` (reference:
            100). Must be < d.
        temperature: softmax temperature of the gate (paper: 2).
        rel_threshold: relatedness above which LwF is used instead of fine-tuning
            (paper/Avalanche: 0.85).
        lwf_lambda: weight of the distillation term of LwF (LwF paper: 1).
        lwf_temperature: distillation temperature (LwF / Expert Gate: 2).
        ae_epochs: epochs of autoencoder training for a new task.
        ae_update_epochs: epochs of autoencoder training on a later batch routed to it
            (round protocol).
        ae_lr: Adam learning rate of the autoencoders.
        ae_loss: ``"bce"`` (official code) or ``"mse"`` training loss.
        ae_weight_decay: L2 weight decay of the autoencoders (official code: 5e-4).
        expert_epochs: epochs of expert training per task (classic) or per round (round
            protocol).
        expert_lr: SGD learning rate of the experts.
        expert_momentum: SGD momentum of the experts.
        expert_batch_size: SGD minibatch of the experts (defaults match
            ``moecl_lib.deep.moe.DeepMoEConfig``).
        batch_size: minibatch size of the autoencoders.
        val_fraction: fraction of a new task's batch held out to measure relatedness and
            ``ref_k``.
        novelty_ratio: round protocol: a batch is new when
            ``e_k* / ref_k* > novelty_ratio`` (> 1).
        max_experts: cap on the number of experts (None = unbounded); at the cap every
            batch is routed.
        normalisation: ``"feature"`` (per-input-feature mean/std) or ``"global"`` (one
            scalar mean/std).
        std_floor: minimum std used by the normaliser (avoids division by ~0 on constant
            pixels).
        seed: torch seed for parameter initialisation and minibatch order.
    """

    code_size: int | None = None
    temperature: float = 2.0
    rel_threshold: float = 0.85
    lwf_lambda: float = 1.0
    lwf_temperature: float = 2.0
    ae_epochs: int = 40
    ae_update_epochs: int = 5
    ae_lr: float = 3e-3
    ae_loss: AELoss = "bce"
    ae_weight_decay: float = 5e-4
    expert_epochs: int = 5
    expert_lr: float = 0.1
    expert_momentum: float = 0.0
    expert_batch_size: int = 20
    batch_size: int = 32
    val_fraction: float = 0.25
    novelty_ratio: float = 1.2
    max_experts: int | None = None
    normalisation: Normalisation = "feature"
    std_floor: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.code_size is not None:
            check_int(self, "code_size", 1)
        for name in (
            "temperature",
            "lwf_temperature",
            "ae_lr",
            "expert_lr",
            "std_floor",
        ):
            check_float(self, name, positive=True)
        for name in ("lwf_lambda", "ae_weight_decay", "expert_momentum"):
            check_float(self, name)
        check_float(self, "rel_threshold", signed=True)
        for name in ("ae_epochs", "expert_epochs", "batch_size", "expert_batch_size"):
            check_int(self, name, 1)
        check_int(self, "ae_update_epochs", 0)
        check_int(self, "seed", 0)
        if not (
            isinstance(self.val_fraction, (int, float))
            and 0.0 < self.val_fraction < 1.0
        ):
            raise ConfigError(f"val_fraction={self.val_fraction!r} must be in (0, 1)")
        if not (
            isinstance(self.novelty_ratio, (int, float)) and self.novelty_ratio > 1.0
        ):
            raise ConfigError(
                f"novelty_ratio={self.novelty_ratio!r} must be a number > 1"
            )
        if self.max_experts is not None:
            check_int(self, "max_experts", 1)
        if self.ae_loss not in AE_LOSSES:
            raise ConfigError(
                f"ae_loss={self.ae_loss!r} must be one of {list(AE_LOSSES)}"
            )
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(
                f"normalisation={self.normalisation!r} must be one of "
                f"{list(NORMALISATIONS)}"
            )

    def replace(self, **changes: Any) -> ExpertGateConfig:
        """Validated copy with some fields changed (unknown names raise
        :class:`ConfigError`)."""
        return replace_fields(self, changes)


def _as_float_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ConfigError(
            f"{name} must be a torch tensor or numpy array, got {type(x).__name__}"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ConfigError(
            f"{name} must have shape (n, ...) with n >= 1 samples, got {tuple(x.shape)}"
        )
    x = x.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{name} contains NaN or inf")
    return x


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


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


# --------------------------------------------------------------------------------------
# Gate functions on hand-checkable values
# --------------------------------------------------------------------------------------
def gate_probabilities(errors: Any, temperature: float = 2.0) -> np.ndarray:
    """Expert Gate soft decision ``p_k = exp(-err_k/T) / sum_j exp(-err_j/T)`` along the
    last axis.

    Args:
        errors: reconstruction errors, shape (K,) or (n, K) (one column per
            autoencoder), all finite.
        temperature: T > 0 (paper: 2).

    Returns:
        probabilities of the same shape, summing to 1 along the last axis. The argmax
        (lowest error) does not depend on T; T only sharpens or flattens the soft
        output.
    """
    as_float(temperature, "temperature", positive=True)
    e = np.asarray(errors, dtype=float)
    if e.ndim not in (1, 2) or e.shape[-1] == 0:
        raise ConfigError(
            f"errors must have shape (K,) or (n, K) with K >= 1, got {e.shape}"
        )
    if not np.isfinite(e).all():
        raise ConfigError("errors contains NaN or inf")
    z = -e / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def relatedness(err_new_ae: Any, err_old_ae: Any) -> np.ndarray | float:
    """Task relatedness ``Rel(T_k, T_a) = 1 - (Err_a - Err_k) / Err_k`` (Expert Gate,
    Sec. 3.3).

    Args:
        err_new_ae: ``Err_k``, mean reconstruction error of the NEW task's autoencoder
            on the new task's validation data (the denominator; must be > 0).
        err_old_ae: ``Err_a``, mean reconstruction error of an OLD task's autoencoder on
            the same data; scalar or array (one entry per old task).

    Returns:
        relatedness (same shape as ``err_old_ae``; a float for scalars). 1 = the old
        autoencoder reconstructs the new task as well as its own; it decreases linearly
        with the relative excess error and is negative once ``Err_a > 2 Err_k``.
        Example: ``relatedness(0.1, 0.12) = 0.8``.
    """
    ek = np.asarray(err_new_ae, dtype=float)
    ea = np.asarray(err_old_ae, dtype=float)
    if ek.ndim != 0:
        raise ConfigError(
            "err_new_ae must be a scalar (the new autoencoder's mean error), got "
            f"shape {ek.shape}"
        )
    if not math.isfinite(float(ek)) or float(ek) <= 0:
        raise ConfigError(
            f"err_new_ae={float(ek)!r} must be a finite number > 0 (it is the "
            "denominator)"
        )
    if not np.isfinite(ea).all() or (ea < 0).any():
        raise ConfigError("err_old_ae must hold finite reconstruction errors >= 0")
    rel = 1.0 - (ea - ek) / ek
    return float(rel) if rel.ndim == 0 else rel


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
# Normaliser and autoencoder
# --------------------------------------------------------------------------------------
class InputNormaliser:
    """``z = sigmoid((x - mean) / std)`` with statistics fitted once and then frozen.

    ``mode="feature"``: one mean/std per input feature (std floored at ``std_floor``);
    ``mode="global"``: one scalar mean/std over all features.
    """

    def __init__(
        self, mode: Normalisation = "feature", std_floor: float = 1e-2
    ) -> None:
        if mode not in NORMALISATIONS:
            raise ConfigError(
                f"normalisation={mode!r} must be one of {list(NORMALISATIONS)}"
            )
        as_float(std_floor, "std_floor", positive=True)
        self.mode = mode
        self.std_floor = float(std_floor)
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    @property
    def fitted(self) -> bool:
        """Whether the statistics have been fitted."""
        return self.mean is not None

    def fit(self, x: Tensor) -> InputNormaliser:
        """Fit mean/std on ``x`` (n, d) (n >= 2)."""
        x = _flat(_as_float_tensor(x, "x"))
        if x.shape[0] < 2:
            raise ConfigError(
                "the normaliser needs at least 2 samples to estimate a standard "
                "deviation"
            )
        if self.mode == "feature":
            self.mean, std = x.mean(0), x.std(0)
        else:
            self.mean, std = x.mean().reshape(1), x.std().reshape(1)
        self.std = std.clamp_min(self.std_floor)
        return self

    def __call__(self, x: Tensor) -> Tensor:
        if self.mean is None or self.std is None:
            raise RuntimeError("InputNormaliser used before fit()")
        x = _flat(x.to(torch.float32))
        if self.mode == "feature" and x.shape[1] != self.mean.shape[0]:
            raise ConfigError(
                f"inputs have {x.shape[1]} features, the normaliser was fitted on "
                f"{self.mean.shape[0]}"
            )
        return torch.sigmoid((x - self.mean) / self.std)


class GateAutoencoder(nn.Module):
    """Undercomplete one-hidden-layer autoencoder
    ``Linear(d,c) -> ReLU -> Linear(c,d) -> Sigmoid`` (c < d)."""

    def __init__(self, d: int, code_size: int) -> None:
        super().__init__()
        d = as_int(d, "d", 2)
        code_size = as_int(code_size, "code_size", 1)
        if code_size >= d:
            raise ConfigError(
                f"code_size={code_size} must be < input dimension d={d} (undercomplete)"
            )
        self.d, self.code_size = int(d), int(code_size)
        self.encoder = nn.Linear(d, code_size)
        self.decoder = nn.Linear(code_size, d)

    def forward(self, z: Tensor) -> Tensor:
        """Reconstruction in (0, 1) of the sigmoid-normalised input ``z`` (n, d)."""
        return torch.sigmoid(self.decoder(torch.relu(self.encoder(z))))

    def fit(
        self,
        z: Tensor,
        epochs: int,
        lr: float,
        batch_size: int,
        generator: torch.Generator,
        loss: AELoss = "bce",
        weight_decay: float = 0.0,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.optim.Optimizer:
        """Minibatch Adam on ``z`` (values in [0, 1]); returns the optimiser (reused for
        later updates)."""
        if loss not in AE_LOSSES:
            raise ConfigError(f"ae_loss={loss!r} must be one of {list(AE_LOSSES)}")
        opt = optimizer or torch.optim.Adam(
            self.parameters(), lr=lr, weight_decay=weight_decay
        )
        criterion = Fnn.binary_cross_entropy if loss == "bce" else Fnn.mse_loss

        def batch_loss(idx: Tensor) -> Tensor:
            zb = z[idx]
            return criterion(self(zb), zb)

        self.train()
        minibatch_steps(opt, z.shape[0], epochs, batch_size, generator, batch_loss)
        self.eval()
        return opt


@torch.no_grad()
def reconstruction_errors(autoencoders: Sequence[GateAutoencoder], z: Tensor) -> Tensor:
    """Per-sample mean squared reconstruction error of every autoencoder, shape (n, K).

    ``err[i, k] = (1/d) * sum_j (AE_k(z_i)_j - z_ij)^2`` on sigmoid-normalised inputs
    ``z`` (n, d).
    """
    if len(autoencoders) == 0:
        raise ConfigError("no autoencoder yet: train at least one task first")
    cols = [((ae(z) - z) ** 2).mean(dim=1) for ae in autoencoders]
    return torch.stack(cols, dim=1)


# --------------------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------------------
# Expert convention: any nn.Module whose LAST registered nn.Linear is the task head. If
# the module has ``loss(x, y)`` / ``logits(x)`` methods (e.g.
# moecl_lib.deep.moe.CNNExpert with sigmoid units) they are used; otherwise the loss is
# cross-entropy on ``model(x)`` and the logits are ``model(x)``. A head with ONE output
# unit is a sigmoid unit whose class logits are ``[-z/2, z/2]`` (softmax of these = [1 -
# sigmoid(z), sigmoid(z)]), which is also how it is distilled by LwF.
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
    between ``old_head`` applied to the body's features and the ``teacher_logits`` (n,
    C_old) recorded from the source expert before training.
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


# --------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------
@dataclass
class TaskReport:
    """What happened when an expert was created (classic ``fit_task`` or a new task in
    ``observe``).

    Attributes:
        expert: index of the new expert.
        mode: ``"scratch"`` (first expert), ``"finetune"`` or ``"lwf"``.
        source: index of the most related previous expert (None for the first).
        relatedness: relatedness of every previous task to the new one (index = expert),
            empty for the first.
        err_new: ``Err_k``, the new autoencoder's mean error on the new task's
            validation data.
        err_old: ``Err_a`` for every previous autoencoder on the same data.
    """

    expert: int
    mode: Mode
    source: int | None
    relatedness: np.ndarray
    err_new: float
    err_old: np.ndarray


@dataclass
class _RoundLog:
    round: int
    expert: int
    new: bool
    ratio: float
    seconds: float


class ExpertGate:
    """Expert Gate learner: one autoencoder + one expert per (detected) task.

    Implements :class:`moecl_lib.deep.learners.RoundLearner`
    (``observe``/``predict``/``route``) for the MoE paper's round stream, and
    :meth:`fit_task` for the classic sequential protocol of the Expert Gate paper.

    Args:
        in_shape: shape of ONE input sample, e.g. ``(1, 28, 28)`` or ``(64,)``.
        n_classes: outputs of every expert head (tasks are relabelled
            ``0..n_classes-1``).
        config: :class:`ExpertGateConfig`.
        expert_factory: ``() -> nn.Module`` following the expert convention above (last
            ``nn.Linear`` = task head; optional ``loss``/``logits`` methods), e.g.
            ``lambda: CNNExpert(...)``; default :func:`mlp_expert` on the flattened
            input.
        gate_features: optional fixed map ``Tensor (n, ...) -> Tensor (n, d')`` applied
            before the normaliser (e.g. a PCA projection fitted beforehand); default =
            flattened raw input.
        name: learner name used in results.
    """

    changes_all_experts = False

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        config: ExpertGateConfig | None = None,
        expert_factory: Callable[[], nn.Module] | None = None,
        gate_features: Callable[[Tensor], Tensor] | None = None,
        name: str = "Expert Gate",
    ) -> None:
        self.config = config if config is not None else ExpertGateConfig()
        if not isinstance(self.config, ExpertGateConfig):
            raise ConfigError("config must be an ExpertGateConfig")
        self.in_shape = tuple(int(s) for s in in_shape)
        if len(self.in_shape) == 0 or any(s < 1 for s in self.in_shape):
            raise ConfigError(
                f"in_shape={in_shape!r} must be a non-empty shape of positive sizes"
            )
        n_classes = as_int(n_classes, "n_classes", 2)
        self.n_classes = int(n_classes)
        self.name = name
        self.in_dim = int(np.prod(self.in_shape))
        torch.manual_seed(self.config.seed)
        self._gen = torch.Generator().manual_seed(self.config.seed)
        self._expert_factory = expert_factory or (
            lambda: mlp_expert(self.in_dim, self.n_classes)
        )
        self._features = gate_features
        self.normaliser = InputNormaliser(
            self.config.normalisation, self.config.std_floor
        )
        self.autoencoders: list[GateAutoencoder] = []
        self._ae_opts: list[torch.optim.Optimizer] = []
        self.experts: list[nn.Module] = []
        self.ref_error: list[
            float
        ] = []  # ref_k: mean held-out error of AE k on its own task
        self._ref_count: list[int] = []
        self.reports: list[TaskReport] = []
        self.log: list[_RoundLog] = []
        self.time_gate = (
            0.0  # seconds spent training autoencoders and computing errors in training
        )
        self.time_experts = 0.0
        self._round = 0

    # ----- protocol attributes --------------------------------------------------------
    @property
    def n_experts(self) -> int:
        """Number of experts (= autoencoders) created so far."""
        return len(self.experts)

    # ----- input handling -------------------------------------------------------------
    def _check_x(self, x: Any, name: str = "x") -> Tensor:
        x = _as_float_tensor(x, name)
        if (
            tuple(x.shape[1:]) != self.in_shape
            and int(np.prod(x.shape[1:])) != self.in_dim
        ):
            raise ConfigError(
                f"{name} has sample shape {tuple(x.shape[1:])}, expected "
                f"{self.in_shape}"
            )
        return x.reshape((x.shape[0],) + self.in_shape)

    def gate_input(self, x: Tensor) -> Tensor:
        """Sigmoid-normalised gate features ``z`` (n, d) of a batch (normaliser fitted
        on first use)."""
        feats = self._features(x) if self._features is not None else x
        feats = _flat(feats.to(torch.float32))
        if not self.normaliser.fitted:
            self.normaliser.fit(feats)
        return self.normaliser(feats)

    def _code_size(self, d: int) -> int:
        c = (
            self.config.code_size
            if self.config.code_size is not None
            else min(100, d // 2)
        )
        if c >= d:
            raise ConfigError(
                f"code_size={c} must be < gate input dimension {d} (undercomplete "
                "autoencoder)"
            )
        return max(1, c)

    # ----- gate -----------------------------------------------------------------------
    def reconstruction_errors(self, x: Tensor) -> Tensor:
        """(n, K) per-sample reconstruction errors of every autoencoder on the batch
        ``x``."""
        x = self._check_x(x)
        return reconstruction_errors(self.autoencoders, self.gate_input(x))

    def gate_probabilities(self, x: Tensor) -> Tensor:
        """(n, K) Expert Gate probabilities ``softmax(-err / temperature)`` of every
        sample."""
        e = self.reconstruction_errors(x)
        return torch.softmax(-e / self.config.temperature, dim=1)

    def route_samples(self, x: Tensor) -> Tensor:
        """(n,) expert of every sample: the autoencoder with the lowest error (hard
        Expert Gate decision)."""
        return self.reconstruction_errors(x).argmin(dim=1)

    def route(self, x: Tensor) -> int:
        """Expert for the whole batch: lowest MEAN reconstruction error over the
        batch."""
        return int(self.reconstruction_errors(x).mean(dim=0).argmin())

    @torch.no_grad()
    def predict(self, x: Tensor, expert: int | None = None) -> Tensor:
        """Logits (n, n_classes) of ``expert``; ``None`` = batch-level routing with
        :meth:`route`."""
        x = self._check_x(x)
        if self.n_experts == 0:
            raise RuntimeError("predict called before any training")
        if expert is None:
            expert = self.route(x)
        if not 0 <= int(expert) < self.n_experts:
            raise ConfigError(f"expert={expert} must be in [0, {self.n_experts - 1}]")
        model = self.experts[int(expert)]
        model.eval()
        return expert_logits(model, x)

    @torch.no_grad()
    def predict_samples(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample Expert Gate prediction: (logits (n, C) of each sample's routed
        expert, experts (n,))."""
        x = self._check_x(x)
        experts = self.route_samples(x)
        out = torch.empty(x.shape[0], self.n_classes)
        for k in torch.unique(experts).tolist():
            sel = experts == k
            out[sel] = expert_logits(self.experts[k], x[sel])
        return out, experts

    # ----- creating an expert (shared by both protocols) ------------------------------
    def _new_task(
        self,
        x: Tensor,
        y: Tensor,
        z: Tensor,
        x_val: Tensor | None,
        y_val: Tensor | None,
    ) -> TaskReport:
        cfg = self.config
        n = x.shape[0]
        t0 = time.perf_counter()
        if x_val is None:
            n_val = max(1, int(round(cfg.val_fraction * n)))
            if n - n_val < 1:
                raise ConfigError(f"a new task needs at least 2 samples (got {n})")
            perm = torch.randperm(n, generator=self._gen)
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            z_tr, z_val = z[tr_idx], z[val_idx]
        else:
            z_tr, z_val = z, self.gate_input(x_val)
        ae = GateAutoencoder(z.shape[1], self._code_size(z.shape[1]))
        opt = ae.fit(
            z_tr,
            cfg.ae_epochs,
            cfg.ae_lr,
            cfg.batch_size,
            self._gen,
            cfg.ae_loss,
            cfg.ae_weight_decay,
        )
        err_new = float(reconstruction_errors([ae], z_val).mean())
        if self.autoencoders:
            err_old = (
                reconstruction_errors(self.autoencoders, z_val)
                .mean(dim=0)
                .numpy()
                .astype(float)
            )
            rel = np.asarray(
                relatedness(max(err_new, 1e-12), err_old), dtype=float
            ).reshape(-1)
            source: int | None = int(np.argmax(rel))
            mode: Mode = "lwf" if rel[source] > cfg.rel_threshold else "finetune"
        else:
            err_old, rel, source, mode = np.zeros(0), np.zeros(0), None, "scratch"
        self.time_gate += time.perf_counter() - t0

        t1 = time.perf_counter()
        x_all, y_all = x, y
        if source is None:
            expert = self._expert_factory()
            task_head(expert)  # validate the structure early
            train_classifier(
                expert,
                x_all,
                y_all,
                cfg.expert_epochs,
                cfg.expert_lr,
                cfg.expert_batch_size,
                self._gen,
                cfg.expert_momentum,
            )
        else:
            src = self.experts[source]
            expert = copy.deepcopy(src)
            # new task = new output layer, body from the related expert
            task_head(expert).reset_parameters()
            if mode == "lwf":
                teacher = head_outputs(src, x_all)
                old_head = copy.deepcopy(task_head(src))
                train_lwf(
                    expert,
                    old_head,
                    teacher,
                    x_all,
                    y_all,
                    cfg.expert_epochs,
                    cfg.expert_lr,
                    cfg.expert_batch_size,
                    self._gen,
                    cfg.lwf_temperature,
                    cfg.lwf_lambda,
                    cfg.expert_momentum,
                )
            else:
                train_classifier(
                    expert,
                    x_all,
                    y_all,
                    cfg.expert_epochs,
                    cfg.expert_lr,
                    cfg.expert_batch_size,
                    self._gen,
                    cfg.expert_momentum,
                )
        expert.eval()
        self.time_experts += time.perf_counter() - t1

        self.autoencoders.append(ae)
        self._ae_opts.append(opt)
        self.experts.append(expert)
        self.ref_error.append(err_new)
        self._ref_count.append(1)
        report = TaskReport(len(self.experts) - 1, mode, source, rel, err_new, err_old)
        self.reports.append(report)
        return report

    # ----- classic sequential protocol ------------------------------------------------
    def fit_task(
        self,
        x: Tensor,
        y: Tensor,
        x_val: Tensor | None = None,
        y_val: Tensor | None = None,
    ) -> TaskReport:
        """Learn a NEW task (classic Expert Gate protocol): new autoencoder + expert
        from the most related one.

        The relatedness is measured on ``x_val`` (the new task's validation data); if
        not given, a ``val_fraction`` split of ``x`` is held out from the autoencoder
        (the expert still trains on all of ``x``).
        """
        x = self._check_x(x)
        y = _as_labels(y, x.shape[0])
        self._check_labels(y)
        if x_val is not None:
            x_val = self._check_x(x_val, "x_val")
        return self._new_task(x, y, self.gate_input(x), x_val, None)

    def _check_labels(self, y: Tensor) -> None:
        if int(y.min()) < 0 or int(y.max()) >= self.n_classes:
            raise ConfigError(
                f"labels must lie in [0, {self.n_classes - 1}], got [{int(y.min())}, "
                f"{int(y.max())}]"
            )

    # ----- round protocol -------------------------------------------------------------
    def observe(self, x: Tensor, y: Tensor) -> int:
        """Train on one round's batch; returns the expert used (a new one if the batch
        is a new task)."""
        x = self._check_x(x)
        y = _as_labels(y, x.shape[0])
        self._check_labels(y)
        if x.shape[0] < 2:
            raise ConfigError("a round needs at least 2 samples")
        cfg = self.config
        self._round += 1
        t0 = time.perf_counter()
        z = self.gate_input(x)
        if self.n_experts == 0:
            rep = self._new_task(x, y, z, None, None)
            self.log.append(
                _RoundLog(
                    self._round,
                    rep.expert,
                    True,
                    float("nan"),
                    time.perf_counter() - t0,
                )
            )
            return rep.expert
        tg = time.perf_counter()
        e = reconstruction_errors(self.autoencoders, z).mean(dim=0)
        k = int(e.argmin())
        ratio = float(e[k]) / max(self.ref_error[k], 1e-12)
        self.time_gate += time.perf_counter() - tg
        at_cap = cfg.max_experts is not None and self.n_experts >= cfg.max_experts
        if ratio > cfg.novelty_ratio and not at_cap:
            rep = self._new_task(x, y, z, None, None)
            self.log.append(
                _RoundLog(
                    self._round, rep.expert, True, ratio, time.perf_counter() - t0
                )
            )
            return rep.expert
        # known task: update ref_k with the held-out (pre-training) error, train AE k
        # and expert k
        c = self._ref_count[k]
        self.ref_error[k] = (self.ref_error[k] * c + float(e[k])) / (c + 1)
        self._ref_count[k] = c + 1
        tg = time.perf_counter()
        if cfg.ae_update_epochs > 0:
            self.autoencoders[k].fit(
                z,
                cfg.ae_update_epochs,
                cfg.ae_lr,
                cfg.batch_size,
                self._gen,
                cfg.ae_loss,
                cfg.ae_weight_decay,
                optimizer=self._ae_opts[k],
            )
        self.time_gate += time.perf_counter() - tg
        te = time.perf_counter()
        train_classifier(
            self.experts[k],
            x,
            y,
            cfg.expert_epochs,
            cfg.expert_lr,
            cfg.expert_batch_size,
            self._gen,
            cfg.expert_momentum,
        )
        self.time_experts += time.perf_counter() - te
        self.log.append(
            _RoundLog(self._round, k, False, ratio, time.perf_counter() - t0)
        )
        return k

    # ----- accounting -----------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Scalar parameters held: ``gate`` (autoencoders + normaliser statistics) and
        ``experts``."""
        gate = sum(count_parameters(a) for a in self.autoencoders)
        if self.normaliser.mean is not None and self.normaliser.std is not None:
            gate += int(self.normaliser.mean.numel() + self.normaliser.std.numel())
        return {
            "gate": int(gate),
            "experts": int(sum(count_parameters(m) for m in self.experts)),
        }

    def summary(self) -> dict[str, Any]:
        """Scalars for :class:`moecl_lib.deep.learners.StreamResult.info`."""
        modes = [r.mode for r in self.reports]
        counts = self.parameter_counts()
        return {
            "n_experts": self.n_experts,
            "new_task_rounds": [lg.round for lg in self.log if lg.new],
            "modes": modes,
            "params_gate": counts["gate"],
            "params_experts": counts["experts"],
            "time_gate_s": self.time_gate,
            "time_experts_s": self.time_experts,
        }
