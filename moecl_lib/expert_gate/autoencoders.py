"""The gate of Expert Gate: one undercomplete autoencoder per task on fixed-statistics,
sigmoid-normalised inputs, their reconstruction errors, the soft decision and the
relatedness of two tasks (overview in :mod:`moecl_lib.expert_gate.gate`).

Conventions: ``z`` (n, d) are normalised gate inputs in [0, 1]; an error is the mean
over the ``d`` features of the squared reconstruction error of one sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import ConfigError, as_float, as_int
from moecl_lib.deep.moe import minibatch_steps
from moecl_lib.expert_gate.gate_config import (
    AE_LOSSES,
    NORMALISATIONS,
    AELoss,
    Normalisation,
)


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------
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
