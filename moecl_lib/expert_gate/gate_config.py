"""Knobs of the Expert Gate learner (:class:`ExpertGateConfig`), validated on
construction; defaults follow the reference implementations where they exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from moecl_lib.config import (
    ConfigError,
    check_float,
    check_int,
    replace_fields,
)

AELoss = Literal["bce", "mse"]
Normalisation = Literal["feature", "global"]
Mode = Literal["scratch", "finetune", "lwf"]
AE_LOSSES: tuple[str, ...] = ("bce", "mse")
NORMALISATIONS: tuple[str, ...] = ("feature", "global")


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
