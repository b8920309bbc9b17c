"""A seed's result does not depend on which other seeds share its process: the deep
learners and Expert Gate, seed 1 run after seed 0 in this process and alone in another
process, give the same numbers bit for bit (the linear engine's runs: test_streams.py).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

from moecl_lib.deep.datasets import load_sklearn_digits, one_vs_rest_tasks, standardise
from moecl_lib.deep.learners import TaskData
from moecl_lib.deep.moe import DeepMoE, DeepMoEConfig, set_determinism
from moecl_lib.deep.study import run_paired
from moecl_lib.expert_gate.gate import ExpertGate, ExpertGateConfig

TINY = dict(in_shape=(1, 8, 8), channels=(2, 3), hidden=(8, 4), epochs=1, minibatch=0)
GATE = ExpertGateConfig(
    code_size=8, ae_epochs=3, ae_update_epochs=1, expert_epochs=2, batch_size=50
)


def _deep_tasks() -> list[Any]:
    ds = standardise(load_sklearn_digits())
    return one_vs_rest_tasks(
        ds, (1, 4, 7), np.random.default_rng(0), max_train=80, max_test=40
    )


def _moe(seed: int) -> DeepMoE:
    return DeepMoE(DeepMoEConfig(n_experts=4, seed=seed, **TINY), name="moe")


def deep_runs(seeds: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Seed -> routed accuracy curve of the tiny deep MoE on its own stream."""
    set_determinism()
    res = run_paired(_deep_tasks(), {"moe": _moe}, seeds, 12, 16, progress=False)
    return {s: r.acc_routed for s, r in zip(seeds, res["moe"])}


def _gate_tasks() -> list[TaskData]:
    from sklearn.datasets import load_digits

    X, Y = load_digits(return_X_y=True)
    x, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(Y)
    out = []
    for a, b in ((0, 1), (2, 3)):
        m = (y == a) | (y == b)
        xs, ys = x[m], (y[m] == b).to(torch.int64)
        out.append(TaskData(f"{a}/{b}", (a, b), xs[:60], ys[:60], xs[60:90], ys[60:90]))
    return out


def gate_runs(seeds: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Seed -> Expert Gate's outputs on the second task's test images."""
    set_determinism()
    tasks, out = _gate_tasks(), {}
    for seed in seeds:
        eg = ExpertGate((64,), 2, GATE.replace(seed=seed))
        for tk in tasks:
            eg.fit_task(tk.x_train, tk.y_train)
        out[seed] = eg.predict(tasks[1].x_test, 1).detach().numpy()
    return out


def _in_another_process(fn: Any, seeds: tuple[int, ...]) -> dict[int, np.ndarray]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, seeds).result()


def test_deep_seed_does_not_depend_on_its_company():
    together = deep_runs((0, 1))
    alone = _in_another_process(deep_runs, (1,))
    np.testing.assert_array_equal(together[1], alone[1])
    assert not np.array_equal(together[0], together[1])  # the seed matters


def test_expert_gate_seed_does_not_depend_on_its_company():
    together = gate_runs((0, 1))
    alone = _in_another_process(gate_runs, (1,))
    np.testing.assert_array_equal(together[1], alone[1])
    assert not np.array_equal(together[0], together[1])  # the seed matters


def test_seeds_on_a_local_cluster_equal_inline():
    from functools import partial

    from moecl_lib.sweep.tasks import map_calls

    set_determinism()
    tasks = _deep_tasks()
    args = (tasks, {"moe": _moe}, (0, 1), 12, 16)
    inline = run_paired(*args, progress=False)
    spread = partial(map_calls, scheduler="local", workers=2, progress=False)
    dask = run_paired(*args, progress=False, map_fn=spread)
    for a, b in zip(inline["moe"], dask["moe"]):
        np.testing.assert_array_equal(a.acc_routed, b.acc_routed)
        np.testing.assert_array_equal(a.experts, b.experts)
