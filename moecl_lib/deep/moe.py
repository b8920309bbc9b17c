"""Deep-network MoE for continual learning (SPEC §7.3-§7.4): CNN experts, linear router,
Algorithm 1.

Model (our reconstruction; the paper's DNN details are [R-L]):

* **Expert** (:class:`CNNExpert`): the paper's five-layer network, two convolutions +
  three fully connected layers with ReLU. Widths are not known; we use small ones for
  CPU speed (conv 5x5 -> 4 ch, conv 5x5 -> 8 ch, each with stride 2 instead of a pooling
  layer, FC 32, FC 16, FC out; padding 2 so 8x8 digits also fit).
  ``downsample="maxpool"`` and ``channels=(6, 16), hidden=(120, 84)`` give the LeNet-5
  layout. **Sigmoid output**: a binary task has ONE sigmoid unit trained with binary
  cross-entropy (the paper's setting); a task with K > 2 labels has K sigmoid units
  trained one-vs-rest with BCE on one-hot targets (our extension; prediction = argmax of
  the K logits). ``predict`` returns two-column logits ``[-z/2, z/2]`` for a single unit
  so that ``argmax`` = ``sigmoid(z) > 1/2``.
* **Router**: linear gate ``h_m = theta_m . xbar_t`` on the round's flattened inputs
  summed over the batch (``router_input="sum"``, SPEC §3.2) or averaged (``"mean"``: the
  same up to a rescaling of ``eta`` by ``1/B``, SPEC A13), ``theta = 0`` at the start;
  noisy top-1 routing ``argmax_m h_m + Unif[0, lambda]`` for the whole round.
* **Expert update**: only the selected expert is trained, by SGD (``epochs`` passes over
  the round's batch in mini-batches of ``minibatch``).
* **Router loss** after the expert update (SPEC §4.2-4.4): locality
  ``pi_{m_t} * ||Delta w||_2`` (L2 norm of the change of ALL parameters of the trained
  expert, not squared) + load balancing ``alpha M sum_m f_m P_m`` with the two gradient
  variants of the linear engine (``aux_grad="decay"``: only the current round's term of
  ``P_t = (1/t) sum_tau pi(X_tau)`` depends on theta, so its gradient carries ``1/t``;
  ``"no_decay"``: the gradient of ``alpha M sum_m f_m pi_m(X_t)``), + optionally the
  task loss ``pi_{m_t} * BCE`` of the trained expert on the round's batch
  (``task_loss=True``; SPEC A9). One gradient step ``theta -= eta * grad`` computed by
  torch autograd (checked against the explicit SPEC §4.5 gradient in
  ``tests/test_deep.py``).
* **Termination** (SPEC §4.6), same names and semantics as
  :func:`moecl_lib.linear.engine.simulate`: ``"gap"`` (at the first round ``t > T1``
  whose gate outputs pass :func:`moecl_lib.linear.routing.gap_test`, tested before that
  round's router step), ``"freeze_at_T1"`` (frozen at round ``T1 + 1``), ``"never"``.
  ``M = 1`` is the single network (no router).

Determinism: :func:`set_determinism` (``torch.set_num_threads(1)``, deterministic
algorithms) and a seed per learner (torch init via ``torch.manual_seed(seed)``, routing
noise from ``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as Fnn
from torch import Tensor, nn

from moecl_lib.config import (
    AUX_GRADS,
    TERMINATIONS,
    ConfigError,
    check_choice,
    check_float,
    check_int,
    replace_fields,
)
from moecl_lib.linear.routing import gap_test

RouterInput = Literal["sum", "mean"]
ROUTER_INPUTS: tuple[str, ...] = ("sum", "mean")


def set_determinism(threads: int = 1) -> None:
    """Fix torch's thread count and force deterministic kernels (CPU results identical
    run to run)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


class CNNExpert(nn.Module):
    """Five-layer CNN: 2 conv (5x5, ReLU) + 3 fully connected (ReLU), sigmoid output
    units.

    Args:
        in_shape: ``(C, H, W)`` of the inputs.
        n_classes: labels of the task; 2 -> one sigmoid unit, K > 2 -> K one-vs-rest
            sigmoid units.
        channels: output channels of the two convolutions.
        hidden: widths of the first two fully connected layers.
        downsample: ``"stride"`` (each convolution has stride 2; default, our choice for
            CPU speed) or ``"maxpool"`` (stride 1 + 2x2 max-pooling, the LeNet-5
            layout).
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_classes: int,
        channels: tuple[int, int] = (4, 8),
        hidden: tuple[int, int] = (32, 16),
        downsample: str = "stride",
    ) -> None:
        super().__init__()
        C, H, W = in_shape
        c1, c2 = channels
        self.n_classes = n_classes
        self.n_out = 1 if n_classes == 2 else n_classes
        if (
            downsample == "stride"
        ):  # 5x5 convolutions with stride 2 (about 10x cheaper on CPU than pooling)
            self.features = nn.Sequential(
                nn.Conv2d(C, c1, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.Conv2d(c1, c2, 5, stride=2, padding=2),
                nn.ReLU(),
            )
        elif downsample == "maxpool":  # LeNet-5 style
            self.features = nn.Sequential(
                nn.Conv2d(C, c1, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(c1, c2, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
        else:
            raise ConfigError(
                f"downsample={downsample!r} must be 'stride' or 'maxpool'"
            )
        with torch.no_grad():
            flat = int(self.features(torch.zeros(1, C, H, W)).numel())
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], self.n_out),
        )
        for mod in (
            self.modules()
        ):  # He initialisation for ReLU layers, zero biases (avoids the initial plateau
            if isinstance(
                mod, (nn.Conv2d, nn.Linear)
            ):  # of PyTorch's default init in narrow nets)
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Raw pre-sigmoid outputs, (B, n_out)."""
        return self.head(self.features(x))

    def logits(self, x: Tensor) -> Tensor:
        """Class logits (B, n_classes) whose argmax is the prediction (see module
        docstring)."""
        z = self.forward(x)
        if self.n_out == 1:
            return torch.cat([-z / 2, z / 2], dim=1)
        return z

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean binary cross-entropy of the sigmoid outputs (one-hot targets when K >
        2)."""
        z = self.forward(x)
        target = (
            y.to(z.dtype)[:, None]
            if self.n_out == 1
            else Fnn.one_hot(y, self.n_out).to(z.dtype)
        )
        return Fnn.binary_cross_entropy_with_logits(z, target)


def flat_params(module: nn.Module) -> Tensor:
    """All parameters of ``module`` concatenated into one detached vector."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def expert_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Training loss of an expert (its ``loss`` method if it has one, else cross-entropy
    on ``model(x)``)."""
    fn = getattr(model, "loss", None)
    return fn(x, y) if callable(fn) else Fnn.cross_entropy(model(x), y)


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    momentum: float = 0.0,
) -> None:
    """Plain minibatch SGD on the expert's loss (one shuffled pass per epoch; ends in
    eval mode).

    The one expert-training loop of the library: the paper's MoE experts, the single
    network and Expert Gate's experts all train through it.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    model.train()
    minibatch_steps(
        opt,
        x.shape[0],
        epochs,
        batch_size,
        generator,
        lambda idx: expert_loss(model, x[idx], y[idx]),
    )
    model.eval()


def minibatch_steps(
    opt: torch.optim.Optimizer,
    n: int,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    batch_loss: Callable[[Tensor], Tensor],
) -> None:
    """The minibatch loop of every network the library trains (experts, LwF, Expert
    Gate's autoencoders).

    Each epoch draws one permutation of the ``n`` samples (``torch.randperm`` with
    ``generator``) and takes one ``opt`` step on ``batch_loss(idx)`` for each
    consecutive block of ``batch_size`` indices (the last one may be shorter).
    Train/eval mode is left to the caller.
    """
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            loss = batch_loss(perm[i : i + batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()


@dataclass(frozen=True)
class DeepMoEConfig:
    """Knobs of :class:`DeepMoE` (validated; ``replace(**kw)`` gives a checked copy).

    Attributes:
        n_experts: M (1 = single network, no router).
        in_shape: ``(C, H, W)`` of the inputs; n_classes: labels per task (shared output
            head).
        channels, hidden, downsample: CNN layout (see :class:`CNNExpert`).
        lr, epochs, minibatch, momentum: SGD of the selected expert on the round's batch
            (``minibatch=0`` = full batch).
        eta: router learning rate; alpha: load-balancing weight; lam: routing noise
            ``Unif[0, lam]``.
        gamma: termination threshold Gamma (None = ``lam``).
        T1: rounds before termination may start (None = ``t1_per_expert * M``, i.e.
            ``T1 ∝ M`` as SPEC §4.7).
        t1_per_expert: see ``T1``.
        termination: ``"gap"``, ``"freeze_at_T1"``, ``"never"`` (SPEC §4.6).
        aux_grad: ``"decay"`` or ``"no_decay"`` (SPEC A3).
        router_input: ``"sum"`` or ``"mean"`` of the flattened inputs over the batch
            (SPEC A13).
        task_loss: add ``pi_{m_t} * BCE`` of the trained expert to the router loss (SPEC
            A9).
        seed: torch init seed and routing-noise seed.
    """

    n_experts: int = 4
    in_shape: tuple[int, int, int] = (1, 28, 28)
    n_classes: int = 2
    channels: tuple[int, int] = (4, 8)
    hidden: tuple[int, int] = (32, 16)
    downsample: str = "stride"
    lr: float = 0.1
    epochs: int = 3
    minibatch: int = 20
    momentum: float = 0.0
    eta: float = 0.05
    alpha: float = 0.3
    lam: float = 0.3
    gamma: float | None = None
    T1: int | None = None
    t1_per_expert: int = 5
    termination: str = "gap"
    aux_grad: str = "decay"
    router_input: str = "mean"
    task_loss: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (
            ("n_experts", 1),
            ("n_classes", 2),
            ("epochs", 1),
            ("minibatch", 0),
            ("t1_per_expert", 0),
            ("seed", 0),
        ):
            check_int(self, name, lo)
        check_int(self, "T1", 0, optional=True)
        for name in ("lr", "eta", "alpha", "lam", "momentum"):
            check_float(self, name)
        check_float(self, "gamma", optional=True)
        if len(self.in_shape) != 3 or any(int(s) < 1 for s in self.in_shape):
            raise ConfigError(
                f"in_shape={self.in_shape!r} must be (C, H, W) with positive sizes"
            )
        if self.in_shape[1] < 4 or self.in_shape[2] < 4:
            raise ConfigError(
                f"in_shape={self.in_shape!r}: H and W must be >= 4 (two 2x2 poolings)"
            )
        for name, allowed in (
            ("termination", TERMINATIONS),
            ("aux_grad", AUX_GRADS),
            ("router_input", ROUTER_INPUTS),
            ("downsample", ("stride", "maxpool")),
        ):
            check_choice(self, name, allowed)

    @property
    def gamma_value(self) -> float:
        """Termination threshold (``lam`` unless set)."""
        return float(self.lam if self.gamma is None else self.gamma)

    @property
    def T1_value(self) -> int:
        """Rounds before termination may start (``t1_per_expert * M`` unless set)."""
        return int(self.t1_per_expert * self.n_experts if self.T1 is None else self.T1)

    def replace(self, **changes: Any) -> DeepMoEConfig:
        """Validated copy with some fields changed (unknown names raise ConfigError)."""
        return replace_fields(self, changes)


class DeepMoE:
    """MoE of CNN experts with a linear router trained by Algorithm 1 (a
    :class:`~moecl_lib.deep.learners.RoundLearner`).

    Attributes after training: ``t`` (rounds seen), ``counts`` (rounds per expert),
    ``T2`` (termination round, -1 if never), ``gate_history`` (list of (M,) gate outputs
    per round), ``delta_history`` (||Delta w|| per round).
    """

    changes_all_experts = False

    def __init__(self, cfg: DeepMoEConfig, name: str | None = None) -> None:
        self.cfg = cfg
        self.n_experts = cfg.n_experts
        self.name = name or (
            "single network"
            if cfg.n_experts == 1
            else f"MoE M={cfg.n_experts} ({cfg.termination})"
        )
        torch.manual_seed(cfg.seed)
        self.experts = nn.ModuleList(
            CNNExpert(
                cfg.in_shape, cfg.n_classes, cfg.channels, cfg.hidden, cfg.downsample
            )
            for _ in range(cfg.n_experts)
        )
        D = int(np.prod(cfg.in_shape))
        self.theta = torch.zeros(cfg.n_experts, D)
        self.rng = np.random.default_rng(cfg.seed)
        self.t = 0
        self.counts = np.zeros(cfg.n_experts, dtype=np.int64)
        self.pi_sum = np.zeros(cfg.n_experts)
        self.active = cfg.n_experts > 1
        self.T2 = -1
        self.gate_history: list[np.ndarray] = []
        self.delta_history: list[float] = []

    # --------------------------------------------------------------------------- router
    def router_input(self, x: Tensor) -> Tensor:
        """``xbar``: flattened inputs summed (or averaged) over the batch, (D,)."""
        flat = x.reshape(x.shape[0], -1).to(self.theta.dtype)
        return flat.sum(0) if self.cfg.router_input == "sum" else flat.mean(0)

    def gates(self, x: Tensor) -> Tensor:
        """Gate outputs ``h_m = theta_m . xbar`` for the batch ``x``, (M,)."""
        return self.theta @ self.router_input(x)

    def route(self, x: Tensor) -> int:
        """Noise-free routing choice ``argmax_m h_m`` for the batch ``x`` (0 for a
        single network)."""
        if self.n_experts == 1:
            return 0
        return int(torch.argmax(self.gates(x)))

    def router_loss(
        self,
        theta: Tensor,
        xbar: Tensor,
        m: int,
        delta_norm: float,
        task_loss: float = 0.0,
    ) -> Tensor:
        """Router training loss of the current round as a differentiable function of
        ``theta`` (SPEC §4.2-4.4).

        ``pi_m * ||Delta|| + alpha M sum_k f_k P_k (+ pi_m * task_loss)``, where ``f``
        includes this round and
        ``P_k = (sum_{tau<t} pi_k(X_tau) + pi_k(X_t; theta)) / t``
        (``aux_grad="decay"``) or ``P_k = pi_k(X_t; theta)`` (``"no_decay"``); past
        probabilities are constants.
        """
        cfg, t = self.cfg, self.t
        pi = torch.softmax(theta @ xbar, dim=0)
        f = torch.as_tensor(self.counts / t, dtype=pi.dtype)
        if cfg.aux_grad == "decay":
            P = (torch.as_tensor(self.pi_sum, dtype=pi.dtype) + pi) / t
        else:
            P = pi
        loss = pi[m] * delta_norm + cfg.alpha * cfg.n_experts * (f * P).sum()
        if cfg.task_loss:
            loss = loss + pi[m] * task_loss
        return loss

    # ------------------------------------------------------------------------- learning
    def _train_expert(self, m: int, x: Tensor, y: Tensor) -> tuple[float, float]:
        """SGD on expert ``m``; returns ``(||Delta w||_2, loss after training)``."""
        cfg, net = self.cfg, self.experts[m]
        before = flat_params(net)
        B = x.shape[0]
        mb = B if cfg.minibatch == 0 else min(cfg.minibatch, B)
        gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        train_classifier(net, x, y, cfg.epochs, cfg.lr, mb, gen, cfg.momentum)
        with torch.no_grad():
            after_loss = float(net.loss(x, y)) if cfg.task_loss else 0.0
        return float(torch.linalg.vector_norm(flat_params(net) - before)), after_loss

    def observe(self, x: Tensor, y: Tensor) -> int:
        """One round of Algorithm 1 on the batch ``(x, y)``; returns the expert
        trained."""
        cfg = self.cfg
        self.t += 1
        t, M = self.t, cfg.n_experts
        if M > 1:
            xbar = self.router_input(x)
            with torch.no_grad():
                h = self.theta @ xbar
            m = int(np.argmax(h.numpy() + self.rng.uniform(0.0, cfg.lam, size=M)))
            self.gate_history.append(h.numpy().copy())
        else:
            m = 0
        delta, task_loss = self._train_expert(m, x, y)
        self.delta_history.append(delta)
        self.counts[m] += 1
        if M > 1:
            if self.active:
                T1 = cfg.T1_value
                if cfg.termination == "gap" and t > T1:
                    stop = bool(
                        gap_test(
                            h.numpy()[None], np.array([m]), cfg.lam, cfg.gamma_value
                        )[0]
                    )
                else:
                    stop = cfg.termination == "freeze_at_T1" and t > T1
                if stop:
                    self.active, self.T2 = False, t
            if self.active:
                theta = self.theta.clone().requires_grad_(True)
                loss = self.router_loss(theta, xbar, m, delta, task_loss)
                (grad,) = torch.autograd.grad(loss, theta)
                self.theta = (self.theta - cfg.eta * grad).detach()
            with torch.no_grad():
                # P_t bookkeeping uses pi(X_t; theta_t), the probabilities the loss of
                # round t was built on
                self.pi_sum += torch.softmax(h, dim=0).numpy()
        return m

    @torch.no_grad()
    def predict(self, x: Tensor, expert: int | None = None) -> Tensor:
        """Logits (B, n_classes) of ``expert`` (None = noise-free routing of the batch
        ``x``)."""
        e = self.route(x) if expert is None else int(expert)
        net = self.experts[e]
        net.eval()
        return net.logits(x)

    def summary(self) -> dict[str, Any]:
        """Learner-specific results for
        :class:`~moecl_lib.deep.learners.StreamResult.info`."""
        return {
            "T2": self.T2,
            "T1": self.cfg.T1_value if self.n_experts > 1 else -1,
            "counts": self.counts.copy(),
            "gates": np.array(self.gate_history)
            if self.gate_history
            else np.zeros((0, self.n_experts)),
            "delta": np.array(self.delta_history),
        }


def single_network(cfg: DeepMoEConfig, name: str = "single network") -> DeepMoE:
    """The single-network baseline: the same CNN and SGD, ``M = 1`` (no router)."""
    return DeepMoE(cfg.replace(n_experts=1), name=name)
