"""The benchmark's naive reference equals the batched engine; engine building blocks; a
quick smoke run.

No timing is asserted here (speed is measured by ``moecl bench``, never by tests).
"""

import json

import numpy as np
import pytest

from moecl_lib.config import ExperimentConfig
from moecl_lib.linear import reference
from moecl_lib.linear.engine import (
    _block_bases,
    draw_rounds,
    orthonormal_rows,
    round_inputs,
    simulate,
)
from moecl_lib.linear.routing import argmax_first
from moecl_lib.linear.tasks import make_task_pool, sample_rounds, sample_tasks
from moecl_lib.tools import bench


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "cfg",
    bench._check_cfgs(),
    ids=lambda c: f"M{c.n_experts}-{c.termination}-{c.signal}-d{c.d}",
)
def test_reference_equals_engine(cfg, backend):
    """Same tasks, experts and termination rounds; float metrics within REFERENCE_RTOL
    (rounding only)."""
    errors = reference.check_reference(cfg.replace(backend=backend))
    assert max(errors.values()) < reference.REFERENCE_RTOL


def test_reference_subset_of_runs_matches_batch():
    cfg = ExperimentConfig(n_tasks=3, n_experts=3, d=8, s=3, T=60, n_runs=5, seed=9)
    reference.check_reference(cfg, runs=[1, 4])


def test_check_reference_can_fail():
    """With zero tolerance the rounding differences between the two implementations are
    caught."""
    cfg = ExperimentConfig(n_tasks=3, n_experts=3, d=8, s=3, T=60, n_runs=2, seed=9)
    with pytest.raises(AssertionError):
        reference.check_reference(cfg, rtol=0.0, atol=0.0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_experts=4, beta_dist="uniform"),
        dict(n_experts=1, signal="none"),
        dict(n_experts=3, signal="orthonormal"),
    ],
)
def test_draws_reproduce_the_original_per_round_stream(kw):
    """draw_rounds + round_inputs give bit for bit the draws of the original engine
    (sample_tasks, sample_rounds, then the routing noise), so seeds keep their meaning
    across the optimisation."""
    cfg = ExperimentConfig(n_tasks=5, d=9, s=4, T=7, n_runs=6, seed=21, **kw)
    rng_a, rng_b = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.seed)
    pool_a, pool_b = make_task_pool(cfg, rng_a), make_task_pool(cfg, rng_b)
    draws = draw_rounds(cfg, rng_a, cfg.T)
    X_new = round_inputs(cfg, pool_a, draws)
    for t in range(cfg.T):
        n = sample_tasks(cfg, rng_b)
        X, _ = sample_rounds(cfg, pool_b, n, rng_b)
        np.testing.assert_array_equal(draws.tasks[t], n)
        np.testing.assert_array_equal(X_new[t], X)
        if cfg.n_experts > 1:
            np.testing.assert_array_equal(
                draws.route_noise[t],
                rng_b.uniform(0.0, cfg.lam, size=(cfg.n_runs, cfg.n_experts)),
            )
    assert rng_a.random() == rng_b.random()  # both generators end in the same state


@pytest.mark.parametrize(
    "kw", [dict(n_experts=4, beta_dist="uniform"), dict(n_experts=1, signal="none")]
)
def test_draws_into_reused_buffers_are_the_same_stream(kw):
    """draw_rounds(out=...) fills reused buffers (a shorter last block uses their first
    rounds) with the same numbers as fresh arrays; a buffer that is too small is
    refused."""
    from moecl_lib.linear.engine import empty_draws

    cfg = ExperimentConfig(n_tasks=5, d=9, s=4, T=7, n_runs=6, seed=21, **kw)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    buf = empty_draws(cfg, 4)
    for n in (4, 3):
        a, b = draw_rounds(cfg, rng_a, n), draw_rounds(cfg, rng_b, n, out=buf)
        for key in ("tasks", "noise", "beta", "pos", "route_noise"):
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None) == (y is None), key
            if x is not None:
                np.testing.assert_array_equal(y, x, err_msg=key)
    with pytest.raises(ValueError, match="4 rounds, 5 requested"):
        draw_rounds(cfg, rng_b, 5, out=buf)


@pytest.mark.parametrize(
    "s,d", [(4, 9), (20, 40)]
)  # vectorised Gram-Schmidt / torch Cholesky-QR path
def test_block_bases_span_the_inputs(s, d):
    cfg = ExperimentConfig(n_tasks=3, n_experts=2, d=d, s=s, T=5, n_runs=4, seed=2)
    rng = np.random.default_rng(0)
    pool = make_task_pool(cfg, rng)
    draws = draw_rounds(cfg, rng, 3)
    QT, xbar = _block_bases(cfg, pool, draws, np.dtype("float64"), True)
    X = round_inputs(cfg, pool, draws)  # (B, R, d, s)
    Q = np.moveaxis(QT, (0, 1), (-1, -2))  # (B, R, d, s)
    np.testing.assert_allclose(
        np.swapaxes(Q, -1, -2) @ Q,
        np.broadcast_to(np.eye(s), Q.shape[:2] + (s, s)),
        atol=1e-12,
    )
    Q0 = np.linalg.qr(X)[0]
    np.testing.assert_allclose(
        Q @ np.swapaxes(Q, -1, -2), Q0 @ np.swapaxes(Q0, -1, -2), atol=1e-12
    )
    np.testing.assert_allclose(
        np.moveaxis(xbar, 0, -1), X.sum(axis=-1), rtol=1e-12, atol=1e-14
    )


def test_orthonormal_rows_matches_qr():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 7, 3))
    QT = orthonormal_rows(np.ascontiguousarray(X.transpose(2, 1, 0)))
    Q = QT.transpose(2, 1, 0)
    Q0 = np.linalg.qr(X)[0]
    np.testing.assert_allclose(
        Q @ Q.transpose(0, 2, 1), Q0 @ Q0.transpose(0, 2, 1), atol=1e-13
    )


def test_argmax0_first_maximum_like_numpy():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, size=(6, 5, 40)).astype(float)  # many ties
    np.testing.assert_array_equal(argmax_first(a), np.argmax(a, axis=0))
    np.testing.assert_array_equal(
        argmax_first(np.zeros((4, 7))), np.zeros(7, dtype=int)
    )
    b = rng.normal(size=(3, 10))
    b[:, 0] = np.nan
    assert argmax_first(b)[0] == 2  # never out of range
    np.testing.assert_array_equal(argmax_first(b)[1:], np.argmax(b[:, 1:], axis=0))


FLOAT32_RTOL, FLOAT32_ATOL = 1e-4, 1e-6
"""Stated float32 tolerance: |x32 - x64| <= ATOL + RTOL |x64| for F, G, G_pool, err_new
(observed: ~1e-5 rel)."""


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_experts=1, T=400),
        dict(n_experts=10, T=400),
        dict(n_experts=5, T=300, termination="never"),
        dict(n_experts=6, n_tasks=8, d=40, s=16, T=150),
    ],
)
def test_float32_agrees_with_float64(kw):
    """float32 sees the same (rounded) random draws: identical routing at this seed,
    metrics within tolerance."""
    cfg = ExperimentConfig(n_runs=20, seed=7, **kw)
    a, b = simulate(cfg), simulate(cfg.replace(dtype="float32"))
    assert b.G.dtype == np.float32
    for key in ("tasks", "experts", "T2"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key in ("F", "G", "G_pool", "err_new"):
        np.testing.assert_allclose(
            getattr(b, key), getattr(a, key), rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL
        )


def test_bench_smoke(tmp_path, capsys):
    """The benchmark runs end to end on tiny sizes and writes its tables, figure and
    summary."""
    base = ExperimentConfig(n_tasks=3, n_experts=3, d=8, s=3, T=20, n_runs=4)
    plan = bench.Plan(
        name="test",
        fig2=base,
        fig2_M=(1, 3),
        large=ExperimentConfig(n_tasks=3, n_experts=4, d=40, s=12, T=4, n_runs=2),
        ref_runs=1,
        repeats=1,
        ref_repeats=1,
        sweep_base=base,
        sweep_T=(10, 20),
        sweep_R=(1, 4),
        sweep_M=(1, 2),
        sweep_d=(8, 12),
        sweep_ref_R=(1, 2),
        memory_cfg=base,
        check_cfgs=(base,),
    )
    summary = bench.run_benchmark(plan, tmp_path)
    for name in (
        "throughput.csv",
        "scaling.csv",
        "memory.csv",
        "reference_check.csv",
        "scaling.png",
        "scaling.pdf",
        "summary.json",
    ):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "summary.json").read_text())
    cases = ["fig2 M=1", "fig2 M=3", "fig2 M=3 f32", "large", "fig2 M=3 shared"]
    assert [(r["case"], r["backend"]) for r in data["throughput"]] == [
        (c, b) for c in cases for b in ("numba", "numpy")
    ]
    assert all(r["speedup_cpu"] > 0 for r in summary["throughput"])
    assert "ratio cpu" in capsys.readouterr().out
