"""MoE post-specialisation theory (Theorems 1-2, our derivations [D]) vs hand values and
forced-routing Monte-Carlo."""

import numpy as np
import pytest

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.config import ConfigError, ExperimentConfig
from moecl_lib.linear import forced
from moecl_lib.theory import isotropic as theory
from moecl_lib.theory import moe as tm
from moecl_lib.theory.exact import single_expert_exact, unit_signal_directions


# --------------------------------------------------------------------------------------
# hand-computed values
# --------------------------------------------------------------------------------------
def test_update_factor_and_decay_rate():
    assert tm.update_factor(10, 4, False) == pytest.approx(0.6)
    assert tm.update_factor(10, 4, True) == pytest.approx(6 / 9)
    # balanced sets |M_n| = M/N: p = 1/M and the rate is 1 - (1 - r)/M
    assert tm.specialised_decay_rate(1 / 12, 0.4) == pytest.approx(1 - 0.6 / 12)
    with pytest.raises(ConfigError):
        tm.update_factor(5, 5, False)
    with pytest.raises(ConfigError):
        tm.specialised_decay_rate(1.5, 0.4)


def test_expert_sets_and_selection_probabilities():
    cl = np.array([0, 1, 2])
    ec = tm.balanced_expert_sets(7, cl)
    assert ec.tolist() == [0, 1, 2, 0, 1, 2, 0]
    P = tm.selection_probabilities(ec, cl)
    assert P.sum() == pytest.approx(1.0)
    assert P.sum(1) == pytest.approx(np.full(3, 1 / 3))
    # p_m = 1/(N |M_n|): task 0 has 3 experts, tasks 1, 2 have 2
    assert P.sum(0) == pytest.approx([1 / 9, 1 / 6, 1 / 6, 1 / 9, 1 / 6, 1 / 6, 1 / 9])
    with pytest.raises(ConfigError):
        tm.balanced_expert_sets(2, cl)


def test_cluster_floor_hand_values():
    W = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    # cluster {0,1}: ordered-pair sum 2*4 = 8 -> (2/4)(1/4) 8 = 1 ; cluster {2,3}: same
    # -> total 2
    assert tm.cluster_floor(W, [0, 0, 1, 1]) == pytest.approx(2.0)
    # singletons (Theorem 1): no floor
    assert tm.cluster_floor(W, [0, 1, 2, 3]) == pytest.approx(0.0)
    # one cluster: the single expert's model gap Delta
    assert tm.cluster_floor(W, [0, 0, 0, 0]) == pytest.approx(theory.pool_moments(W)[1])
    # unequal clusters {0,1,2}, {3}: pairs 4, 1, 5 (x2 ordered) = 20 -> (3/4)(1/9) 20 =
    # 5/3
    assert tm.cluster_floor(W, [0, 0, 0, 1]) == pytest.approx(5 / 3)
    batch = tm.cluster_floor(np.stack([W, 2 * W]), [0, 0, 1, 1])
    assert batch == pytest.approx([2.0, 8.0])


def test_exact_floors_isotropic_equal_spec_formula():
    rng = np.random.default_rng(3)
    W = rng.normal(size=(2, 6, 8))
    d, s = 8, 3
    r = 1 - s / d
    for cl in ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], [0] * 6):
        G, F = tm.cluster_floors_exact(W, None, s, np.array(cl))
        spec = tm.cluster_floor(W, cl)
        assert G == pytest.approx(spec, rel=1e-9)
        assert F == pytest.approx((1 - r) * spec, rel=1e-9)
    Delta = theory.pool_moments(W)[1]
    assert tm.cluster_floors_exact(W, None, s, np.zeros(6, int))[0] == pytest.approx(
        Delta, rel=1e-9
    )


def test_shared_signal_cluster_floor():
    """Definition 1 with one signal direction per cluster: the G floor is still the SPEC
    formula, F is not."""
    rng = np.random.default_rng(4)
    W = rng.normal(size=(6, 8))
    cl = np.array([0, 0, 0, 1, 1, 1])
    V = np.zeros_like(W)
    V[:3, 0] = 1.0
    V[3:, 1] = 1.0
    G, F = tm.cluster_floors_exact(W, V, 3, cl)
    assert G == pytest.approx(tm.cluster_floor(W, cl), rel=1e-9)
    assert abs(F - (1 - 3 / 8) * G) > 1e-3


def test_specialised_error_isotropic_geometric_and_def1_binomial_sum():
    p, r, err0, k = 0.2, 0.55, 3.0, 7
    assert tm.specialised_error(k, p, r, err0, err0) == pytest.approx(
        (1 - p * (1 - r)) ** k * err0
    )
    # Definition 1, explicit sum over the number of updates K ~ Bin(k, p)
    from math import comb

    rho, e2, pe2, cross, gap = 0.6, 2.0, 1.2, 0.3, 0.9
    e_total = (
        e2 + 2 * 0.5 + gap
    )  # ||e0 + delta||^2 with e0.delta = 0.5 (any value; only K = 0 uses it)
    brute = sum(
        comb(k, K)
        * p**K
        * (1 - p) ** (k - K)
        * (e_total if K == 0 else rho**K * (pe2 + 2 * cross) + gap)
        for K in range(k + 1)
    )
    assert tm.specialised_error(k, p, rho, e_total, pe2, cross, gap) == pytest.approx(
        brute, rel=1e-12
    )


def test_closed_form_equals_recursion_and_residual_limit():
    rng = np.random.default_rng(5)
    R, M, N, d, s = 3, 8, 4, 8, 3
    w0 = rng.normal(size=(R, M, d))
    W = rng.normal(size=(R, N, d))
    ec = np.arange(M) % N
    C = rng.integers(0, 4, size=(R, M, N)).astype(float)
    args = (w0, W, None, s, [5, 10, 0], 3000, ec, C, [1.0, 2.0, 3.0])
    a = tm.post_specialisation_curves(*args, method="closed_form")
    b = tm.post_specialisation_curves(*args, method="recursion")
    assert np.nanmax(np.abs(a.G - b.G)) < 1e-10
    assert np.nanmax(np.abs(a.F - b.F)) < 1e-10
    assert np.isnan(a.G[1, :10]).all() and not np.isnan(a.G[1, 10:]).any()
    # t E[G_t] -> c (the pre-specialisation residual): the O(T2 / t) term
    c = tm.pre_specialisation_residual(C, W, np.tile(ec, (R, 1)))
    assert 3000 * a.G[:, -1] == pytest.approx(c, rel=1e-6)
    with pytest.raises(ConfigError):
        tm.post_specialisation_curves(
            w0,
            W,
            np.zeros_like(W),
            s,
            1,
            50,
            ec % 2,
            C,
            0.0,
            cluster_of=np.array([0, 0, 1, 1]),
        )


def test_oracle_single_expert_and_singleton_limits():
    rng = np.random.default_rng(6)
    W = rng.normal(size=(5, 7))
    s, T = 3, 40
    one = tm.oracle_moe_exact(W, None, s, T, 1, cluster_of=np.zeros(5, int))
    ref = single_expert_exact(W, None, s, T)
    assert one.G == pytest.approx(ref.G, rel=1e-10)
    assert one.F[1:] == pytest.approx(ref.F[1:], rel=1e-10)
    # singleton tasks, M = 10: G_pool = (1 - p(1 - r))^t mean ||w_n||^2 with p = 1/10
    moe = tm.oracle_moe_exact(W, None, s, T, 10)
    r = 1 - s / 7
    t = np.arange(1, T + 1)
    assert moe.G_pool == pytest.approx(
        (1 - (1 - r) / 10) ** t * (W**2).sum(1).mean(), rel=1e-10
    )
    assert moe.G_floor == pytest.approx(0.0, abs=1e-12)


def test_convergence_round():
    c = np.array(
        [
            [5.0, 3.0, 0.5, 2.0, 0.4, 0.3],
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
            [1, 1, 1, 1, 1, 2.0],
        ]
    )
    out = tm.convergence_round(c, 1.0)
    assert out[0] == 5 and out[1] == 1 and np.isnan(out[2])


# --------------------------------------------------------------------------------------
# Monte-Carlo (forced routing, real Definition-1 generator): |mean - formula| < 4 s.e. +
# 1e-9
# --------------------------------------------------------------------------------------
Z_TOL = 4.0


def _check(sim_curve, theory_curve, rounds, label):
    m, se = mean_se(sim_curve - theory_curve)
    for tt in rounds:
        i = tt - 1
        assert abs(m[i]) < Z_TOL * se[i] + 1e-9, (label, tt, m[i], se[i])


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("signal", "M", "K"),
    [("none", 6, None), ("random", 6, None), ("none", 3, 2), ("aligned", 3, 2)],
)
def test_oracle_moe_exact_matches_forced_routing(signal, M, K):
    """Ideal MoE (specialised from round 1): exact expectation vs simulation, Theorem 1
    (K=N) and 2 (K<N)."""
    cfg = ExperimentConfig(
        n_tasks=4,
        n_experts=M,
        d=10,
        s=4,
        T=60,
        n_runs=3000,
        signal=signal,
        n_clusters=K,
        shared_pool=True,
        seed=11,
    )
    sim = forced.simulate_specialised(cfg)
    vh = unit_signal_directions(sim.pool)
    th = tm.oracle_moe_exact(
        sim.pool.W[0],
        None if vh is None else vh[0],
        cfg.s,
        cfg.T,
        M,
        cluster_of=sim.pool.cluster_of,
    )
    for key in ("G", "F", "G_pool"):
        _check(
            getattr(sim, key),
            getattr(th, key)[None, :],
            (2, 5, 15, 30, 60),
            (signal, M, K, key),
        )


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("signal", "K"), [("none", None), ("aligned", None), ("none", 2)]
)
def test_post_specialisation_matches_forced_routing(signal, K):
    """Random routing until t0 = 25, then specialised: E[G_t | state at t0] and E[F_t |
    state at t0]."""
    t0 = 25
    cfg = ExperimentConfig(
        n_tasks=4,
        n_experts=6,
        d=10,
        s=4,
        T=90,
        n_runs=3000,
        signal=signal,
        n_clusters=K,
        seed=12,
    )
    sim = forced.simulate_specialised(cfg, t0=t0)
    vh = unit_signal_directions(sim.pool)
    th = tm.post_specialisation_curves(
        sim.w_t0,
        sim.pool.W,
        vh,
        cfg.s,
        t0,
        cfg.T,
        sim.expert_cluster,
        sim.counts_t0,
        sim.self_sum_t0,
        cluster_of=sim.pool.cluster_of,
    )
    for key in ("G", "F"):
        _check(
            getattr(sim, key),
            getattr(th, key),
            (t0 + 1, t0 + 5, 50, 90),
            (signal, K, key),
        )
