"""Calls spread over Dask (moecl_lib.sweep.tasks): same results as in this process."""

from __future__ import annotations

import numpy as np
import pytest

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.linear.engine import simulate
from moecl_lib.sweep.tasks import TaskError, map_calls


def final_G(M: int, seed: int) -> np.ndarray:
    cfg = setting_config("calibrated", M, T=80, n_runs=4, seed=seed)
    return simulate(cfg, prefetch=False).G[:, -1]


def fails(x: int) -> int:
    if x == 2:
        raise ValueError("two is not allowed")
    return x


CALLS = [(4, 0), (6, 1), (4, 2)]


def test_local_cluster_equals_inline():
    inline = map_calls(final_G, CALLS, "inline", progress=False)
    local = map_calls(final_G, CALLS, "local", workers=2, progress=False)
    for a, b in zip(inline, local):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(inline[0], inline[2])  # the seed matters


@pytest.mark.parametrize("scheduler", ["inline", "local"])
def test_a_failing_call_is_named(scheduler):
    with pytest.raises(TaskError, match=r"call 2 fails\(2\): ValueError: two"):
        map_calls(fails, [(0,), (1,), (2,)], scheduler, workers=1, progress=False)


def test_order_is_kept_and_empty_is_fine():
    assert map_calls(fails, [(5,), (3,), (1,)], "inline", progress=False) == [5, 3, 1]
    assert map_calls(fails, [], "local", progress=False) == []


def env(name: str) -> str | None:
    import os

    return os.environ.get(name)


def test_local_workers_environment():
    """One BLAS thread per worker; no MALLOC_TRIM_THRESHOLD_ (it slows the engine)."""
    names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_"]
    got = map_calls(env, [(n,) for n in names], "local", workers=1, progress=False)
    assert got == ["1", "1", None]
