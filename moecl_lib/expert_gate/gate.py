"""Expert Gate (Aljundi, Chakravarty & Tuytelaars, CVPR 2017) re-implemented for the
companion.

Building blocks (each a separate, tested function, following Avalanche's decomposition;
no code copied), in :mod:`moecl_lib.expert_gate.autoencoders` (the gate),
:mod:`moecl_lib.expert_gate.experts` (experts and LwF) and
:mod:`moecl_lib.expert_gate.gate_config` (the knobs):

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from moecl_lib.config import ConfigError, as_int
from moecl_lib.deep.moe import train_classifier
from moecl_lib.expert_gate.autoencoders import (
    GateAutoencoder,
    InputNormaliser,
    _as_float_tensor,
    _flat,
    reconstruction_errors,
    relatedness,
)
from moecl_lib.expert_gate.experts import (
    _as_labels,
    count_parameters,
    expert_logits,
    head_outputs,
    mlp_expert,
    task_head,
    train_lwf,
)
from moecl_lib.expert_gate.gate_config import ExpertGateConfig, Mode

__all__ = ["ExpertGate", "ExpertGateConfig", "TaskReport", "mlp_expert"]


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
        # ref_k: mean held-out error of AE k on its own task
        self.ref_error: list[float] = []
        self._ref_count: list[int] = []
        self.reports: list[TaskReport] = []
        self.log: list[_RoundLog] = []
        # seconds spent training autoencoders and computing errors in training
        self.time_gate = 0.0
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
        """Add an autoencoder and an expert for a new task (batch ``x``, ``y``; gate
        inputs ``z``); the expert starts from the most related one, if any."""
        t0 = time.perf_counter()
        ae, opt, z_val, err_new = self._new_autoencoder(x, z, x_val)
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
            mode: Mode = (
                "lwf" if rel[source] > self.config.rel_threshold else "finetune"
            )
        else:
            err_old, rel, source, mode = np.zeros(0), np.zeros(0), None, "scratch"
        self.time_gate += time.perf_counter() - t0

        t1 = time.perf_counter()
        expert = self._new_expert(source, mode, x, y)
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

    def _new_autoencoder(
        self, x: Tensor, z: Tensor, x_val: Tensor | None
    ) -> tuple[GateAutoencoder, torch.optim.Optimizer, Tensor, float]:
        """Train a new task's autoencoder on the training split of its gate inputs
        ``z``; returns it, its optimiser, the validation inputs ``z_val`` (held out of
        ``z``, or from ``x_val``) and ``Err_k``, its mean error on them."""
        cfg = self.config
        n = x.shape[0]
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
        return ae, opt, z_val, err_new

    def _new_expert(
        self, source: int | None, mode: Mode, x: Tensor, y: Tensor
    ) -> nn.Module:
        """A new task's expert, trained on ``(x, y)``: from scratch (``source`` None),
        or a copy of expert ``source`` with a fresh head, trained by LwF (``mode``
        ``"lwf"``) or fine-tuning."""
        cfg = self.config
        if source is None:
            expert = self._expert_factory()
            task_head(expert)  # validate the structure early
            self._train(expert, x, y)
            return expert
        src = self.experts[source]
        expert = copy.deepcopy(src)
        # new task = new output layer, body from the related expert
        task_head(expert).reset_parameters()
        if mode == "lwf":
            teacher = head_outputs(src, x)
            old_head = copy.deepcopy(task_head(src))
            train_lwf(
                expert,
                old_head,
                teacher,
                x,
                y,
                cfg.expert_epochs,
                cfg.expert_lr,
                cfg.expert_batch_size,
                self._gen,
                cfg.lwf_temperature,
                cfg.lwf_lambda,
                cfg.expert_momentum,
            )
        else:
            self._train(expert, x, y)
        return expert

    def _train(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        """Train an expert on a batch with the configured budget (SGD; its own loss,
        else cross-entropy)."""
        cfg = self.config
        train_classifier(
            model,
            x,
            y,
            cfg.expert_epochs,
            cfg.expert_lr,
            cfg.expert_batch_size,
            self._gen,
            cfg.expert_momentum,
        )

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
        self._train(self.experts[k], x, y)
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
