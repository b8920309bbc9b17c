"""Expert Gate on the MoE paper's round stream: the oracle router (the head-to-head
reference that knows every sample's task) and the summaries of a round learner's run
(parameters held, routing accuracy, community metrics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import TaskData
from moecl_lib.deep.moe import train_classifier
from moecl_lib.expert_gate.experts import expert_logits
from moecl_lib.expert_gate.gate import ExpertGate


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
