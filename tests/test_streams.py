"""Per-run random streams (moecl_lib.linear.streams): a run's numbers depend only on
(configuration, seed, run index), not on the batch, the block length or the process."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from scipy import stats

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.expert_gate.linear import simulate_gate
from moecl_lib.linear import draws as linear_draws
from moecl_lib.linear import engine
from moecl_lib.linear.engine import simulate
from moecl_lib.linear.reference import reference_simulate

FIELDS = (
    "F",
    "G",
    "G_pool",
    "err_new",
    "experts",
    "tasks",
    "T2",
    "final_w",
    "final_theta",
)


def per_run(**kw) -> ExperimentConfig:
    base = {"T": 300, "n_runs": 6, "seed": 11, "streams": "per_run"}
    return setting_config("calibrated", 8, **{**base, **kw})


def assert_split_equal(whole, parts) -> None:
    for f in FIELDS:
        a = getattr(whole, f)
        b = np.concatenate([getattr(p, f) for p in parts])
        np.testing.assert_array_equal(a, b, err_msg=f)


def _simulate(cfg: ExperimentConfig):
    return simulate(cfg)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_two_batches_in_two_processes_equal_one_batch(backend):
    cfg = per_run(backend=backend)
    whole = simulate(cfg)
    parts_cfg = [
        dataclasses.replace(cfg, n_runs=2),
        dataclasses.replace(cfg, n_runs=4, first_run=2),
    ]
    with ProcessPoolExecutor(2) as pool:
        parts = list(pool.map(_simulate, parts_cfg))
    assert_split_equal(whole, parts)


def test_block_length_does_not_matter(monkeypatch):
    cfg = per_run(beta_dist="uniform", beta=2.0)
    whole = simulate(cfg)
    monkeypatch.setattr(linear_draws, "block_length", lambda c: 7)
    assert_split_equal(whole, [simulate(cfg)])


@pytest.mark.parametrize(
    "kw",
    [
        {"shared_pool": True},
        {"signal": "random", "n_clusters": 3},
        {"signal": "none"},
        {"n_experts": 1},
    ],
)
def test_variants_split_too(kw):
    cfg = dataclasses.replace(per_run(), **kw)
    whole = simulate(cfg)
    parts = [
        simulate(dataclasses.replace(cfg, n_runs=3)),
        simulate(dataclasses.replace(cfg, n_runs=3, first_run=3)),
    ]
    assert_split_equal(whole, parts)
    if kw.get("shared_pool"):
        assert np.array_equal(whole.pool.W[0], whole.pool.W[-1])


def test_reference_and_expert_gate_follow_the_streams():
    cfg = per_run(T=60, n_runs=3)
    ref, eng = reference_simulate(cfg), simulate(cfg)
    np.testing.assert_array_equal(ref.tasks, eng.tasks)
    np.testing.assert_array_equal(ref.experts, eng.experts)
    np.testing.assert_allclose(ref.G, eng.G, rtol=1e-9, atol=1e-12)
    gate = simulate_gate(cfg)
    np.testing.assert_array_equal(gate.tasks, eng.tasks)
    half = simulate_gate(dataclasses.replace(cfg, n_runs=2, first_run=1))
    np.testing.assert_array_equal(half.tasks, gate.tasks[1:])
    np.testing.assert_array_equal(half.experts, gate.experts[1:])


def test_streams_differ_between_runs_and_seeds():
    a = simulate(per_run(T=50))
    assert len({tuple(t) for t in a.tasks}) == a.tasks.shape[0]
    b = simulate(per_run(T=50, seed=12))
    assert not np.array_equal(a.tasks, b.tasks)
    shared = simulate(dataclasses.replace(per_run(T=50), streams="shared"))
    assert not np.array_equal(a.tasks, shared.tasks)


def test_per_run_draws_have_the_right_law():
    """Task indices uniform (chi-square, p > 1e-3); Gaussian columns of mean 0 and
    s.d. sigma_t (4 s.e.); the signal's column is not drawn (zero until the signal
    fills it)."""
    cfg = ExperimentConfig(
        n_tasks=6, d=10, s=6, T=400, n_runs=50, seed=5, streams="per_run"
    )
    rng = engine.make_streams(cfg)
    draws = engine.draw_rounds(cfg, rng, cfg.T)
    counts = np.bincount(draws.tasks.ravel(), minlength=6)
    assert stats.chisquare(counts).pvalue > 1e-3
    signal_col = np.arange(cfg.s) == draws.pos[..., None, None]  # (B, R, 1, s)
    signal_col = np.broadcast_to(signal_col, draws.noise.shape)
    assert np.all(draws.noise[signal_col] == 0.0)  # not drawn: overwritten later
    x = draws.noise[~signal_col]
    se = cfg.sigma_t / np.sqrt(2 * x.size)
    assert abs(x.std() - cfg.sigma_t) < 4 * se
    assert abs(x.mean()) < 4 * cfg.sigma_t / np.sqrt(x.size)
    assert set(np.unique(draws.pos)) == set(range(cfg.s))


def test_first_run_needs_per_run_streams():
    with pytest.raises(ConfigError, match="first_run=2 needs streams='per_run'"):
        ExperimentConfig(first_run=2, streams="shared")
    with pytest.raises(ConfigError, match="streams"):
        ExperimentConfig(streams="per-run")
