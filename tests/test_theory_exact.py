"""Exact Definition-1 recursion (moecl_lib.theory.exact; this project's derivation) vs
hand values, an independent naive implementation, exhaustive enumeration, the isotropic
closed forms, and Monte-Carlo of the library's generator.

Statistical tests use fixed seeds and the tolerance
``|mean - exact| < 4 s.e. + 1e-9 (1 + |exact|)``.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.linear.engine import draw_rounds, round_inputs, simulate
from moecl_lib.linear.tasks import make_task_pool
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory.exact import (
    expected_update,
    haar_projector_sandwich,
    moe_exact_given_routing,
    projector_moment_coeffs,
    single_expert_exact,
    single_expert_exact_for_pool,
    single_expert_limits_exact,
    unit_signal_directions,
)


def _within(
    mean: np.ndarray, se: np.ndarray, exact: np.ndarray, k: float = 4.0
) -> np.ndarray:
    return np.abs(mean - exact) < k * se + 1e-9 * (1 + np.abs(exact))


def _random_pool(
    rng: np.random.Generator, N: int, d: int, signal: str
) -> tuple[np.ndarray, np.ndarray | None]:
    W = rng.normal(size=(N, d))
    if signal == "aligned":
        return W, W / np.linalg.norm(W, axis=1, keepdims=True)
    if signal == "random":
        V = rng.normal(size=(N, d))
        return W, V / np.linalg.norm(V, axis=1, keepdims=True)
    return W, None


def _haar_projectors(rng: np.random.Generator, n: int, D: int, k: int) -> np.ndarray:
    basis, _ = np.linalg.qr(rng.normal(size=(n, D, k)))
    return basis @ np.swapaxes(basis, 1, 2)


# --------------------------------------------------------------------------------------
# Haar moments
# --------------------------------------------------------------------------------------
def test_projector_moment_coeffs_hand_values_and_identities():
    # random line in R^3: E[Q_11^2] = E[x_1^4] = 1/5 = alpha + 2 gamma, E[Q_11 Q_22] =
    # E[x1^2 x2^2] = 1/15 = alpha
    alpha, gamma = projector_moment_coeffs(3, 1)
    assert alpha == pytest.approx(1 / 15) and gamma == pytest.approx(1 / 15)
    assert projector_moment_coeffs(5, 0) == (0.0, 0.0)
    assert projector_moment_coeffs(5, 5) == (1.0, 0.0)
    assert projector_moment_coeffs(1, 1) == (1.0, 0.0)
    for D, k in [(2, 1), (7, 3), (29, 25), (49, 1)]:
        a, g = projector_moment_coeffs(D, k)
        assert a + (D + 1) * g == pytest.approx(k / D)  # E[Q^2] = E[Q]
        assert D * D * a + 2 * D * g == pytest.approx(k * k)  # E[tr(Q)^2] = k^2
        assert a + 2 * g == pytest.approx(
            k * (k + 2) / (D * (D + 2))
        )  # Beta(k/2, (D-k)/2) second moment
    with pytest.raises(ConfigError):
        projector_moment_coeffs(3, 4)


@pytest.mark.statistical
@pytest.mark.parametrize(("D", "k"), [(6, 2), (7, 6)])
def test_haar_sandwich_matches_sampling(D, k):
    """E[Q A Q] for a non-symmetric A: every entry within 4 s.e. of the average of 20
    000 sampled projectors."""
    rng = np.random.default_rng(11)
    A = rng.normal(size=(D, D))
    Q = _haar_projectors(rng, 20_000, D, k)
    samples = Q @ A @ Q
    mean, se = mean_se(samples)
    exact = haar_projector_sandwich(A, k)
    assert np.all(_within(mean, se, exact))
    assert np.all(_within(*mean_se(Q), np.full((D, D), 0.0) + k / D * np.eye(D)))


def _naive_update(m, S, u, v, s):
    """Independent reference: explicit orthonormal basis B of the space of R = I - P and
    the D-dim Haar moments."""
    d = u.size
    if v is None or not np.any(v):
        B = np.eye(d)
    else:
        full, _ = np.linalg.qr(np.column_stack([v, np.eye(d)]))
        B = full[:, 1:d]  # orthonormal basis of v^perp
    D = B.shape[1]
    k = d - s
    C = S - np.outer(m, u) - np.outer(u, m) + np.outer(u, u)
    Ee2 = B @ haar_projector_sandwich(B.T @ C @ B, k) @ B.T
    Ee = (k / D) * B @ (B.T @ (m - u))
    return u + Ee, np.outer(u, u) + np.outer(u, Ee) + np.outer(Ee, u) + Ee2


@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_expected_update_equals_naive_reference(signal):
    rng = np.random.default_rng(5)
    d, s = 7, 3
    W, V = _random_pool(rng, 1, d, signal)
    u, v = W[0], (None if V is None else V[0])
    m = rng.normal(size=d)
    L = rng.normal(size=(d, d))
    S = np.outer(m, m) + L @ L.T
    m1, S1 = expected_update(m, S, u, np.zeros(d) if v is None else v, s)
    m2, S2 = _naive_update(m, S, u, v, s)
    np.testing.assert_allclose(m1, m2, atol=1e-12)
    np.testing.assert_allclose(S1, S2, atol=1e-11)


@pytest.mark.statistical
@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_expected_update_matches_sampled_min_norm_update(signal):
    """One Eq.-(4) update of a random w (independent of X_t) with Definition-1 columns,
    40 000 samples."""
    rng = np.random.default_rng(8)
    d, s, n = 6, 3, 40_000
    W, V = _random_pool(rng, 1, d, signal)
    u = W[0]
    m0 = rng.normal(size=d)
    L = 0.5 * rng.normal(size=(d, d))
    w = m0 + rng.normal(size=(n, d)) @ L.T
    X = rng.normal(size=(n, d, s)) * 0.3
    if V is not None:
        X[np.arange(n), :, rng.integers(s, size=n)] = (
            2.5 * V[0]
        )  # beta and sigma_t drop out of the span
    resid = np.einsum("nds,nd->ns", X, u - w)
    w_new = w + np.einsum(
        "nds,ns->nd",
        X,
        np.linalg.solve(np.swapaxes(X, 1, 2) @ X, resid[..., None])[..., 0],
    )
    vh = np.zeros(d) if V is None else V[0]
    m1, S1 = expected_update(m0, np.outer(m0, m0) + L @ L.T, u, vh, s)
    assert np.all(_within(*mean_se(w_new), m1))
    assert np.all(_within(*mean_se(w_new[:, :, None] * w_new[:, None, :]), S1))


# --------------------------------------------------------------------------------------
# Deterministic checks of the recursions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("d", "s", "N"), [(20, 6, 4), (8, 7, 3), (5, 1, 2)])
def test_isotropic_columns_reproduce_closed_forms(d, s, N):
    """signal="none" (vhat=None): the exact recursion equals the SPEC §6.5 closed forms
    to rounding."""
    rng = np.random.default_rng(1)
    W = rng.normal(size=(N, d))
    T = 40
    ex = single_expert_exact(W, None, s, T)
    wbar2, delta = theory.pool_moments(W)
    t = np.arange(1, T + 1)
    r = 1 - s / d
    tol = 1e-10 * (1 + wbar2)
    np.testing.assert_allclose(
        ex.G, theory.single_expert_G(t, r, wbar2, delta), atol=tol
    )
    np.testing.assert_allclose(
        ex.G_pool, theory.single_expert_G_pool(t, r, wbar2, delta), atol=tol
    )
    np.testing.assert_allclose(
        ex.F[1:], theory.single_expert_F(t, r, wbar2, delta)[1:], atol=tol
    )
    assert np.isnan(ex.F[0])


def test_single_task_aligned_signal_is_learned_in_one_round():
    """N = 1, signal along w_1: the first update recovers w_1 exactly, so G_t = F_t = 0
    (hand value)."""
    w = np.array([[3.0, -1.0, 2.0, 0.5]])
    ex = single_expert_exact(w, w / np.linalg.norm(w), 2, 6)
    np.testing.assert_allclose(ex.G, 0.0, atol=1e-12)
    np.testing.assert_allclose(ex.F[1:], 0.0, atol=1e-12)
    # orthogonal signal, s = 1: the update only ever touches the signal coordinate
    v = np.array([[0.0, 0.0, 0.0, 1.0]])
    ex = single_expert_exact(w, v, 1, 3)
    np.testing.assert_allclose(ex.G, 3.0**2 + 1.0 + 2.0**2, atol=1e-12)
    np.testing.assert_allclose(ex.F[1:], 0.0, atol=1e-12)


@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_single_expert_equals_average_over_all_task_sequences(signal):
    """The aggregated conditioning of single_expert_exact equals the average, over all
    N^T equally likely task sequences, of the sequence-conditional recursion
    (moe_exact_given_routing with M = 1)."""
    rng = np.random.default_rng(3)
    N, d, s, T = (
        3,
        8,
        3,
        5,
    )  # d > 2N: single_expert_exact works in span(W, V), the sequence recursion in R^d
    W, V = _random_pool(rng, N, d, signal)
    seqs = np.array(list(itertools.product(range(N), repeat=T)))
    cond = moe_exact_given_routing(
        W, V, s, seqs, np.zeros_like(seqs), 1, pool_experts=np.zeros(N, int)
    )
    ex = single_expert_exact(W, V, s, T)
    atol = 1e-12 * float(
        np.sum(W**2)
    )  # values that are exactly 0 (aligned signals, t = 1) are rounding noise
    np.testing.assert_allclose(cond.G.mean(0), ex.G, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(cond.F[:, 1:].mean(0), ex.F[1:], rtol=1e-10, atol=atol)
    np.testing.assert_allclose(cond.G_pool.mean(0), ex.G_pool, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(
        cond.self_error.mean(0), ex.self_error, rtol=1e-10, atol=atol
    )
    # non-uniform task probabilities: weight each sequence by its probability
    q = np.array([0.5, 0.3, 0.2])
    prob = np.prod(q[seqs], axis=1)
    exq = single_expert_exact(W, V, s, T, task_probs=q)
    np.testing.assert_allclose(prob @ cond.G, exq.G, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(prob @ cond.F[:, 1:], exq.F[1:], rtol=1e-10, atol=atol)


def test_batched_pools_equal_single_pools():
    rng = np.random.default_rng(4)
    Ws = rng.normal(size=(3, 4, 9))
    Vs = Ws / np.linalg.norm(Ws, axis=-1, keepdims=True)
    batch = single_expert_exact(Ws, Vs, 4, 12)
    for i in range(3):
        one = single_expert_exact(Ws[i], Vs[i], 4, 12)
        np.testing.assert_allclose(batch.G[i], one.G, rtol=1e-12)
        np.testing.assert_allclose(batch.F[i, 1:], one.F[1:], rtol=1e-12)


def test_bad_inputs_raise_config_error():
    W = np.ones((2, 4))
    with pytest.raises(ConfigError, match="s"):
        single_expert_exact(W, None, 4, 3)
    with pytest.raises(ConfigError, match="unit"):
        single_expert_exact(W, 2 * np.eye(4)[:2], 2, 3)
    with pytest.raises(ConfigError, match="task_probs"):
        single_expert_exact(W, None, 2, 3, task_probs=[0.2, 0.2])
    with pytest.raises(ConfigError, match="tasks"):
        moe_exact_given_routing(W, None, 2, np.array([0, 2]), np.array([0, 0]), 1)
    with pytest.raises(ConfigError, match="experts"):
        moe_exact_given_routing(W, None, 2, np.array([0, 1]), np.array([0, 3]), 2)


# --------------------------------------------------------------------------------------
# Monte-Carlo of the library's generator and engine
# --------------------------------------------------------------------------------------
SINGLE_SETTINGS = [
    # (d, s, N, T, signal, runs)
    (30, 5, 3, 15, "aligned", 3000),
    (30, 5, 3, 15, "random", 3000),
    (30, 5, 3, 15, "none", 2000),
    (8, 7, 3, 12, "aligned", 3000),
    (8, 7, 3, 12, "random", 3000),
    (12, 4, 5, 40, "orthonormal", 2000),
    (20, 6, 4, 200, "aligned", 600),
]


@pytest.mark.statistical
@pytest.mark.parametrize(("d", "s", "N", "T", "signal", "runs"), SINGLE_SETTINGS)
def test_single_expert_exact_matches_engine(d, s, N, T, signal, runs):
    """simulate() with M = 1 on one shared pool: mean F_t, G_t, G_t^pool within 4 s.e.
    of the exact recursion."""
    cfg = ExperimentConfig(
        n_tasks=N,
        n_experts=1,
        d=d,
        s=s,
        T=T,
        sigma0=1.0,
        sigma_t=0.7,
        signal=signal,
        shared_pool=True,
        n_runs=runs,
        seed=100 + d + s + N,
    )
    res = simulate(cfg)
    vh = unit_signal_directions(res.pool)
    ex = single_expert_exact(res.pool.W[0], None if vh is None else vh[0], s, T)
    checks = sorted({2, 3, 5, T // 2, T})
    for name in ("G", "F", "G_pool"):
        mean, se = mean_se(getattr(res, name))
        idx = np.array(checks) - 1
        ok = _within(mean[idx], se[idx], getattr(ex, name)[idx])
        assert ok.all(), (name, checks, mean[idx], se[idx], getattr(ex, name)[idx])


@pytest.mark.statistical
def test_isotropic_formula_is_rejected_for_aligned_signals():
    """Power check: the same Monte-Carlo tells the isotropic formula apart from the
    Definition-1 generator."""
    cfg = ExperimentConfig(
        n_tasks=3,
        n_experts=1,
        d=30,
        s=5,
        T=15,
        sigma0=1.0,
        signal="aligned",
        shared_pool=True,
        n_runs=1000,
        seed=7,
    )
    res = simulate(cfg)
    wbar2, delta = theory.pool_moments(res.pool.W[0])
    t = res.rounds
    for name, formula in (("G", theory.single_expert_G), ("F", theory.single_expert_F)):
        mean, se = mean_se(getattr(res, name))
        iso = formula(t, cfg.r, wbar2, delta)
        assert np.all(np.abs(mean[[4, 14]] - iso[[4, 14]]) > 10 * se[[4, 14]])


def _forced_routing_simulation(
    cfg: ExperimentConfig, tasks: np.ndarray, experts: np.ndarray, mhat: np.ndarray
):
    """Eq. (4) updates with the library's Definition-1 data, the routing (m_t, n_t)
    forced (same in every run).

    Returns per-run G_t, F_t, G_t^pool computed by brute force over the arrival history.
    """
    rng = np.random.default_rng(cfg.seed)
    pool = make_task_pool(cfg, rng)
    R, M, d, T = cfg.n_runs, cfg.n_experts, cfg.d, cfg.T
    draws = draw_rounds(cfg, rng, T)
    draws = dataclasses.replace(draws, tasks=np.repeat(tasks[:, None], R, axis=1))
    X = round_inputs(cfg, pool, draws)  # (T, R, d, s)
    W = pool.W
    w = np.zeros((R, M, d))
    G = np.empty((R, T))
    F = np.full((R, T), np.nan)
    G_pool = np.empty((R, T))
    err_own = np.empty((R, T))
    for t in range(T):
        n, m = tasks[t], experts[t]
        Xt = X[t]
        resid = np.einsum("rds,rd->rs", Xt, W[:, n] - w[:, m])
        w[:, m] += np.einsum(
            "rds,rs->rd",
            Xt,
            np.linalg.solve(np.swapaxes(Xt, 1, 2) @ Xt, resid[..., None])[..., 0],
        )
        errs = np.sum(
            (w[:, experts[: t + 1]] - W[:, tasks[: t + 1]]) ** 2, axis=-1
        )  # (R, t+1)
        err_own[:, t] = errs[:, t]
        G[:, t] = errs.mean(1)
        if t:
            F[:, t] = (errs[:, :t] - err_own[:, :t]).mean(1)
        G_pool[:, t] = np.sum((w[:, mhat] - W) ** 2, axis=-1).mean(1)
    return pool, G, F, G_pool


@pytest.mark.statistical
@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_moe_given_routing_matches_forced_routing_simulation(signal):
    """M = 3 experts, N = 4 tasks, one fixed routing sequence (tasks and experts drawn
    once), 2500 runs."""
    d, s, N, M, T = 10, 4, 4, 3, 25
    cfg = ExperimentConfig(
        n_tasks=N,
        n_experts=M,
        d=d,
        s=s,
        T=T,
        sigma0=1.0,
        sigma_t=1.0,
        signal=signal,
        shared_pool=True,
        n_runs=2500,
        seed=31,
    )
    seq_rng = np.random.default_rng(99)
    tasks = seq_rng.integers(N, size=T)
    experts = np.where(seq_rng.random(T) < 0.7, tasks % M, seq_rng.integers(M, size=T))
    mhat = np.arange(N) % M
    pool, G, F, G_pool = _forced_routing_simulation(cfg, tasks, experts, mhat)
    vh = unit_signal_directions(pool)
    ex = moe_exact_given_routing(
        pool.W[0],
        None if vh is None else vh[0],
        s,
        tasks,
        experts,
        M,
        pool_experts=mhat,
    )
    idx = np.array([1, 2, 4, 9, 17, 24])
    for name, sim in (("G", G), ("F", F), ("G_pool", G_pool)):
        mean, se = mean_se(sim)
        ok = _within(mean[idx], se[idx], getattr(ex, name)[idx])
        assert ok.all(), (name, mean[idx], se[idx], getattr(ex, name)[idx])


@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_moe_given_routing_equals_full_space_chain(signal):
    """The reduced recursion (span of W and V) equals a chain of full-space
    expected_update calls, with the arrival-averaged G_t, F_t summed by brute force over
    the history."""
    rng = np.random.default_rng(21)
    N, M, d, s, T = 3, 2, 11, 4, 9
    W, V = _random_pool(rng, N, d, signal)
    vh = np.zeros((N, d)) if V is None else V
    tasks = rng.integers(N, size=T)
    experts = rng.integers(M, size=T)
    ex = moe_exact_given_routing(
        W, V, s, tasks, experts, M, pool_experts=np.array([0, 1, 1])
    )
    mean = np.zeros((M, d))
    second = np.zeros((M, d, d))
    err_own = []
    for t in range(T):
        n, m = tasks[t], experts[t]
        mean[m], second[m] = expected_update(mean[m], second[m], W[n], vh[n], s)
        err = np.array(
            [
                [
                    np.trace(second[j]) - 2 * W[i] @ mean[j] + W[i] @ W[i]
                    for i in range(N)
                ]
                for j in range(M)
            ]
        )
        past = err[experts[: t + 1], tasks[: t + 1]]
        err_own.append(past[-1])
        assert ex.G[t] == pytest.approx(past.mean(), rel=1e-10, abs=1e-12)
        if t:
            assert ex.F[t] == pytest.approx(
                np.mean(past[:-1] - np.array(err_own[:-1])), rel=1e-9, abs=1e-10
            )
        assert ex.G_pool[t] == pytest.approx(
            np.mean(err[[0, 1, 1], np.arange(N)]), rel=1e-10
        )


@pytest.mark.parametrize("signal", ["aligned", "random", "none"])
def test_limits_match_long_horizon_and_isotropic_floor(signal):
    rng = np.random.default_rng(12)
    N, d, s = 4, 20, 6
    W, V = _random_pool(rng, N, d, signal)
    lim = single_expert_limits_exact(W, V, s)
    ex = single_expert_exact(W, V, s, 3000)
    assert lim.G_pool == pytest.approx(ex.G_pool[-1], rel=1e-9)
    assert lim.G == pytest.approx(lim.G_pool, rel=1e-12)
    assert lim.G == pytest.approx(ex.G[-1], rel=2e-3)  # G_t - G_inf = O(1/t)
    assert lim.F == pytest.approx(ex.F[-1], rel=5e-3)
    if signal == "none":
        _, delta = theory.pool_moments(W)
        G_floor, F_floor = theory.single_expert_limits(1 - s / d, delta)
        assert lim.G == pytest.approx(G_floor, rel=1e-10)
        assert lim.F == pytest.approx(F_floor, rel=1e-10)


def test_exact_for_pool_shared_and_subset():
    cfg = ExperimentConfig(
        n_tasks=3, n_experts=1, d=9, s=4, T=6, signal="random", n_runs=5, seed=1
    )
    pool = make_task_pool(cfg, np.random.default_rng(0))
    sub = single_expert_exact_for_pool(pool, cfg.s, cfg.T, runs=[1, 3])
    direct = single_expert_exact(pool.W[3], pool.signal_directions()[3], cfg.s, cfg.T)
    np.testing.assert_allclose(sub.G[1], direct.G, rtol=1e-12)
    shared = make_task_pool(cfg.replace(shared_pool=True), np.random.default_rng(0))
    allruns = single_expert_exact_for_pool(shared, cfg.s, cfg.T)
    assert allruns.G.shape == (5, 6)
    np.testing.assert_allclose(allruns.G[4], allruns.G[0])
