"""Shared interface and stream runner for deep continual learners (single network, MoE,
Expert Gate).

Protocol (SPEC §7.3-§7.4, §5.3): a *task* is a labelled data set (typically a subset of
the classes of a data set, relabelled ``0..K-1``); a *stream* is a sequence of task ids,
one task per round. At round ``t`` the learner receives one batch of that task's
training samples (task identity NOT given), trains on it (:meth:`RoundLearner.observe`),
and is then evaluated on the held-out test samples of every task.

Conventions used by :class:`StreamResult` (all accuracies/errors in percent):

* ``acc_expert[t, m, n]``: test accuracy of expert ``m`` on task ``n`` after round
  ``t + 1`` (0-based row ``t``).
* ``acc_routed[t, n]``: test accuracy on task ``n`` after round ``t + 1`` when the
  learner routes by itself: the test set of task ``n`` is cut into chunks of
  ``route_batch_size`` samples (the training batch size by default, so a summed-input
  router sees inputs of the training scale), each chunk is routed with
  :meth:`RoundLearner.route` (noise-free) and predicted by the chosen expert.
* Arrival-indexed accuracy matrix ``A[t, tau]`` (``T x T``, NaN above the diagonal):
  accuracy after round ``t`` on the task that arrived at round ``tau``, either with the
  expert ``m_tau`` that learned that arrival (``view="learner"``, SPEC A8 default) or
  with the router's current choice (``view="router"``). Row = after round/step ``t``,
  column = arrival ``tau`` (CONVENTIONS). The paper's ``F_t`` and ``G_t`` (SPEC §5.3)
  are computed on the error matrix ``E = 100 - A``.
* Pool-indexed accuracy ``acc_routed`` (``T x N``): one column per distinct task
  (heat-map view).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from moecl_lib.analysis.metrics import (
    average_accuracy,
    backward_transfer,
    curves_from_error_matrix,
    forgetting_chaudhry,
)
from moecl_lib.analysis.routing import routing_matrix, routing_purity
from moecl_lib.config import ConfigError

View = Literal["learner", "router"]
VIEWS: tuple[str, ...] = ("learner", "router")


@runtime_checkable
class RoundLearner(Protocol):
    """A continual learner that is trained one round (one batch of one unknown task) at
    a time.

    Contract used by :func:`run_stream`: ``observe`` changes the parameters of at most
    the expert whose index it returns (plus routing state), so the runner only
    re-evaluates that expert. Learners that break this (e.g. shared parameters) must set
    ``changes_all_experts = True`` as an attribute. ``n_experts`` may grow over time
    (Expert Gate adds experts).
    """

    name: str
    n_experts: int

    def observe(self, x: Tensor, y: Tensor) -> int:
        """Train on one round's batch ``x`` (B, ...) with labels ``y`` (B,); return the
        expert trained."""
        ...

    def predict(self, x: Tensor, expert: int | None = None) -> Tensor:
        """Logits (B, K) of ``expert`` (None = the learner's own noise-free routing of
        the batch ``x``)."""
        ...

    def route(self, x: Tensor) -> int:
        """Expert the learner would pick (noise-free) for the batch ``x``."""
        ...


@dataclass(frozen=True)
class TaskData:
    """One task: training and test samples with labels already relabelled to
    ``0..n_classes-1``.

    Attributes:
        name: short label, e.g. ``"T-shirt/Trouser/Pullover"``.
        classes: original class ids of the source data set, in the order of the new
            labels.
        x_train, y_train: float inputs (n, ...) and int64 labels (n,).
        x_test, y_test: same for the held-out test samples.
    """

    name: str
    classes: tuple[int, ...]
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, Tensor) or not isinstance(y, Tensor):
                raise ConfigError(
                    f"task {self.name!r}: x_{split}, y_{split} must be torch tensors"
                )
            if x.shape[0] != y.shape[0] or y.ndim != 1:
                raise ConfigError(
                    f"task {self.name!r}: x_{split} has {x.shape[0]} samples but "
                    f"y_{split} has shape {tuple(y.shape)} (expected ({x.shape[0]},))"
                )
            if x.shape[0] == 0:
                raise ConfigError(f"task {self.name!r}: no {split} samples")

    @property
    def n_classes(self) -> int:
        """Number of output labels of this task."""
        return len(self.classes)


def make_class_tasks(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    class_subsets: Sequence[Sequence[int]],
    names: Sequence[str] | None = None,
) -> list[TaskData]:
    """Build one task per class subset; labels are relabelled ``subset[k] -> k``.

    Subsets may overlap (a class then appears in several tasks). Raises
    :class:`ConfigError` for an empty subset, a repeated class inside a subset, or a
    class with no training/test sample.
    """
    if len(class_subsets) == 0:
        raise ConfigError("class_subsets must hold at least one subset of class ids")
    if names is not None and len(names) != len(class_subsets):
        raise ConfigError(
            f"names has {len(names)} entries but class_subsets has {len(class_subsets)}"
        )
    tasks: list[TaskData] = []
    for i, subset in enumerate(class_subsets):
        cls = tuple(int(c) for c in subset)
        if len(cls) == 0 or len(set(cls)) != len(cls):
            raise ConfigError(
                f"class_subsets[{i}]={list(subset)} must be non-empty without repeats"
            )
        parts = {}
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            mask = torch.zeros_like(y, dtype=torch.bool)
            new = torch.full_like(y, -1)
            for k, c in enumerate(cls):
                sel = y == c
                if not bool(sel.any()):
                    raise ConfigError(
                        f"class {c} of class_subsets[{i}] has no {split} sample"
                    )
                mask |= sel
                new[sel] = k
            parts[split] = (x[mask], new[mask].to(torch.int64))
        name = names[i] if names is not None else "/".join(str(c) for c in cls)
        tasks.append(
            TaskData(
                name,
                cls,
                parts["train"][0],
                parts["train"][1],
                parts["test"][0],
                parts["test"][1],
            )
        )
    return tasks


@dataclass(frozen=True)
class Stream:
    """A task stream: ``task_ids[t]`` is the task of round ``t+1``; ``batch_idx[t]``
    indexes its train set."""

    task_ids: np.ndarray
    batch_idx: tuple[np.ndarray, ...]

    @property
    def n_rounds(self) -> int:
        """Number of rounds T."""
        return int(self.task_ids.shape[0])


def sample_stream(
    tasks: Sequence[TaskData],
    n_rounds: int,
    batch_size: int,
    rng: np.random.Generator,
    task_ids: Sequence[int] | None = None,
) -> Stream:
    """Draw a stream: each round a task uniformly at random (or ``task_ids`` if given)
    and a fresh batch.

    The batch is ``batch_size`` training samples of that task drawn without replacement
    (the paper: 100 samples per round). Raises :class:`ConfigError` if a task has fewer
    than ``batch_size`` samples.
    """
    if not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
        raise ConfigError(f"n_rounds={n_rounds!r} must be an integer >= 1")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    N = len(tasks)
    if N == 0:
        raise ConfigError("tasks must not be empty")
    for task in tasks:
        if task.x_train.shape[0] < batch_size:
            raise ConfigError(
                f"batch_size={batch_size} exceeds the {task.x_train.shape[0]} training "
                f"samples of task {task.name!r}"
            )
    if task_ids is None:
        ids = rng.integers(N, size=int(n_rounds))
    else:
        ids = np.asarray(task_ids, dtype=np.int64)
        if ids.shape != (n_rounds,) or (ids < 0).any() or (ids >= N).any():
            raise ConfigError(f"task_ids must be {n_rounds} integers in [0, {N - 1}]")
    batches = tuple(
        np.sort(
            rng.choice(tasks[int(n)].x_train.shape[0], size=batch_size, replace=False)
        )
        for n in ids
    )
    return Stream(task_ids=ids.astype(np.int64), batch_idx=batches)


@dataclass
class StreamResult:
    """Everything measured while playing one stream (see the module docstring for
    conventions).

    Attributes:
        name: learner name.
        task_ids: (T,) task of each round; experts: (T,) expert trained at each round
            (``m_t``).
        acc_expert: (T, M_max, N) accuracy (%) of every expert on every task after each
            round (NaN for experts that did not exist yet).
        acc_routed: (T, N) accuracy (%) with the learner's own routing after each round.
        routed_expert: (T, N) expert chosen by ``route`` for the FIRST test chunk of
            each task after each round (a routing-stability trace).
        n_experts: (T,) number of experts after each round.
        wall_time: seconds spent in :func:`run_stream` (training + evaluation).
        info: learner-specific summary (``learner.summary()`` if the learner has it;
            e.g. termination round).
    """

    name: str
    task_ids: np.ndarray
    experts: np.ndarray
    acc_expert: np.ndarray
    acc_routed: np.ndarray
    routed_expert: np.ndarray
    n_experts: np.ndarray
    wall_time: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def T(self) -> int:
        """Number of rounds."""
        return int(self.task_ids.shape[0])

    @property
    def n_tasks(self) -> int:
        """Number of distinct tasks N."""
        return int(self.acc_routed.shape[1])

    def accuracy_matrix(self, view: View = "learner") -> np.ndarray:
        """Arrival-indexed accuracy matrix ``A[t, tau]`` in %, (T, T), NaN above the
        diagonal.

        ``view="learner"``: evaluated with the expert ``m_tau`` that learned arrival
        ``tau`` (SPEC A8 default). ``view="router"``: evaluated with the learner's
        current routing of task ``n_tau``'s test set.
        """
        if view not in VIEWS:
            raise ConfigError(f"view={view!r} must be one of {list(VIEWS)}")
        T = self.T
        A = np.full((T, T), np.nan)
        tau = np.arange(T)
        for t in range(T):
            cols = tau[: t + 1]
            if view == "learner":
                A[t, cols] = self.acc_expert[t, self.experts[cols], self.task_ids[cols]]
            else:
                A[t, cols] = self.acc_routed[t, self.task_ids[cols]]
        return A

    def error_matrix(self, view: View = "learner") -> np.ndarray:
        """``E = 100 - A`` (test error in %), same indexing as
        :meth:`accuracy_matrix`."""
        return 100.0 - self.accuracy_matrix(view)

    def curves(self, view: View = "learner") -> tuple[np.ndarray, np.ndarray]:
        """Paper ``(F_t, G_t)`` analogues in error % (SPEC §5.3), each (T,), index t-1 =
        after round t.

        ``F_t = 1/(t-1) sum_{tau<t} (E[t,tau] - E[tau,tau])`` (F[0] = NaN; positive =
        forgetting, negative = backward transfer) and
        ``G_t = 1/t sum_{tau<=t} E[t,tau]``, on the error matrix of ``view``
        (``"learner"``: expert that learned each arrival; ``"router"``: the learner's
        current routing).
        """
        return curves_from_error_matrix(self.error_matrix(view))

    def metrics(self, view: View = "learner") -> dict[str, float]:
        """Final community metrics on the arrival-indexed accuracy matrix of ``view``
        (in %).

        ``ACC`` (= 100 - G_T), ``BWT`` (denominator T-1, negative = forgetting),
        ``forgetting`` (Chaudhry, >= 0), ``F_T`` and ``G_T`` (paper analogues, error %).
        Arrivals of the same task count separately.
        """
        A = self.accuracy_matrix(view)
        F, G = self.curves(view)
        return {
            "ACC": average_accuracy(A),
            "BWT": backward_transfer(A) if self.T > 1 else float("nan"),
            "forgetting": forgetting_chaudhry(A) if self.T > 1 else float("nan"),
            "F_T": float(F[-1]),
            "G_T": float(G[-1]),
        }

    def loads(self) -> np.ndarray:
        """Fraction of rounds routed to each expert, (M_max,) (sums to 1)."""
        M = self.acc_expert.shape[1]
        return np.bincount(self.experts, minlength=M)[:M] / self.T

    def routing_matrix(self, start: int = 0) -> np.ndarray:
        """``R[m, n]`` = number of rounds ``t > start`` in which task ``n`` was routed
        to expert ``m``."""
        M = self.acc_expert.shape[1]
        return routing_matrix(
            self.experts, self.task_ids, M, self.n_tasks, after=start
        )[0]

    def routing_purity(self, start: int = 0) -> float:
        """``sum_m max_n R[m,n] / sum R`` over rounds ``t > start`` (1 = every expert
        sees one task)."""
        return float(routing_purity(self.routing_matrix(start))[0])

    def route_switches(self, start: int = 0) -> int:
        """Number of changes of the noise-free routed expert of any task between
        consecutive rounds > start."""
        r = self.routed_expert[start:]
        return int((r[1:] != r[:-1]).sum()) if r.shape[0] > 1 else 0


@torch.no_grad()
def _correct(
    learner: RoundLearner, x: Tensor, y: Tensor, expert: int, chunk: int
) -> np.ndarray:
    """Boolean correctness of ``expert`` on every sample (evaluated in chunks)."""
    out = []
    for i in range(0, x.shape[0], chunk):
        logits = learner.predict(x[i : i + chunk], expert)
        out.append((logits.argmax(dim=1) == y[i : i + chunk]).cpu().numpy())
    return np.concatenate(out)


def _eval_sets(
    tasks: Sequence[TaskData],
    stream: Stream,
    route_batch_size: int | None,
    max_test: int | None,
) -> tuple[int, list[tuple[Tensor, Tensor]]]:
    """Checked evaluation settings of :func:`run_stream`: the routing chunk size and the
    (inputs, labels) test set of every task."""
    N = len(tasks)
    if N == 0:
        raise ConfigError("tasks must not be empty")
    if int(stream.task_ids.max()) >= N:
        raise ConfigError(
            f"stream uses task id {int(stream.task_ids.max())} but only {N} tasks given"
        )
    B = int(stream.batch_idx[0].shape[0])
    chunk = int(route_batch_size) if route_batch_size is not None else B
    if chunk < 1:
        raise ConfigError(f"route_batch_size={route_batch_size!r} must be >= 1")
    if max_test is not None and max_test < 1:
        raise ConfigError(f"max_test={max_test!r} must be >= 1 or None")
    tests = [
        (tk.x_test[:max_test], tk.y_test[:max_test])
        if max_test
        else (tk.x_test, tk.y_test)
        for tk in tasks
    ]
    return chunk, tests


def _expert_accuracy(
    learner: RoundLearner,
    tests: Sequence[tuple[Tensor, Tensor]],
    correct: dict[tuple[int, int], np.ndarray],
    m: int,
    M: int,
    all_experts: bool,
) -> np.ndarray:
    """Accuracy (%) of every expert on every task, (M, N), after a round that trained
    expert ``m``: re-evaluates expert ``m`` and the new experts (every expert with
    ``all_experts``) into ``correct``."""
    stale = (
        range(M)
        if all_experts
        else [m] + [e for e in range(M) if (e, 0) not in correct]
    )
    for e in stale:
        for j, (xt, yt) in enumerate(tests):
            correct[(e, j)] = _correct(learner, xt, yt, e, 1024)
    return np.array(
        [[100.0 * correct[(e, j)].mean() for j in range(len(tests))] for e in range(M)]
    )


def _routed_accuracy(
    learner: RoundLearner,
    tests: Sequence[tuple[Tensor, Tensor]],
    correct: dict[tuple[int, int], np.ndarray],
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (%) on every task with the learner's own routing of each ``chunk`` of
    its test set (from the per-expert correctness ``correct``), and the expert chosen
    for the first chunk."""
    acc = np.zeros(len(tests))
    first = np.zeros(len(tests), dtype=np.int64)
    for j, (xt, _) in enumerate(tests):
        hits = []
        for c0 in range(0, xt.shape[0], chunk):
            e = int(learner.route(xt[c0 : c0 + chunk]))
            if c0 == 0:
                first[j] = e
            hits.append(correct[(e, j)][c0 : c0 + chunk])
        acc[j] = 100.0 * np.concatenate(hits).mean()
    return acc, first


def run_stream(
    learner: RoundLearner,
    tasks: Sequence[TaskData],
    stream: Stream,
    *,
    route_batch_size: int | None = None,
    max_test: int | None = None,
    progress: bool = False,
) -> StreamResult:
    """Play ``stream`` on ``learner`` and evaluate every task after every round.

    Args:
        learner: any :class:`RoundLearner`.
        tasks: the task list that ``stream.task_ids`` index into (their test sets are
            the eval sets).
        stream: from :func:`sample_stream`.
        route_batch_size: chunk size for routed evaluation (default: the stream's
            training batch size).
        max_test: use only the first ``max_test`` test samples of each task (None =
            all).
        progress: show a tqdm progress bar.

    Cost: after round t only the expert returned by ``observe`` is re-evaluated (see the
    protocol's contract), unless the learner sets ``changes_all_experts = True``.
    """
    from tqdm.auto import tqdm

    T, N = stream.n_rounds, len(tasks)
    chunk, tests = _eval_sets(tasks, stream, route_batch_size, max_test)
    all_experts = bool(getattr(learner, "changes_all_experts", False))

    # (expert, task) -> per-sample correctness
    correct: dict[tuple[int, int], np.ndarray] = {}
    acc_rows: list[np.ndarray] = []
    acc_routed = np.zeros((T, N))
    routed_expert = np.zeros((T, N), dtype=np.int64)
    experts = np.zeros(T, dtype=np.int64)
    n_exp = np.zeros(T, dtype=np.int64)

    t0 = time.perf_counter()
    for t in tqdm(range(T), desc=learner.name, disable=not progress, leave=False):
        n = int(stream.task_ids[t])
        idx = torch.from_numpy(stream.batch_idx[t])
        m = int(learner.observe(tasks[n].x_train[idx], tasks[n].y_train[idx]))
        M = int(learner.n_experts)
        if not 0 <= m < M:
            raise RuntimeError(
                f"{learner.name}.observe returned expert {m} outside [0, {M - 1}]"
            )
        experts[t], n_exp[t] = m, M
        acc_rows.append(_expert_accuracy(learner, tests, correct, m, M, all_experts))
        acc_routed[t], routed_expert[t] = _routed_accuracy(
            learner, tests, correct, chunk
        )
    wall = time.perf_counter() - t0

    M_max = int(n_exp.max())
    acc_expert = np.full((T, M_max, N), np.nan)
    for t, row in enumerate(acc_rows):
        acc_expert[t, : row.shape[0]] = row
    summary = getattr(learner, "summary", None)
    info = dict(summary()) if callable(summary) else {}
    return StreamResult(
        name=learner.name,
        task_ids=stream.task_ids.copy(),
        experts=experts,
        acc_expert=acc_expert,
        acc_routed=acc_routed,
        routed_expert=routed_expert,
        n_experts=n_exp,
        wall_time=wall,
        info=info,
    )
