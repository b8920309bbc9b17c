"""The batched Algorithm-1 engine: router gradient, incremental metrics, termination
rules."""

import numpy as np
import pytest
import torch

from moecl_lib.analysis import metrics
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import simulate
from moecl_lib.linear.routing import gap_test, router_coefficients, softmax


def _autograd_router_grad(
    theta, xbar, chosen, delta_norm, f, past_pi_sum, t, alpha, aux_grad
):
    """grad of L_loc + L_aux (SPEC §4.2-4.3) w.r.t. theta (M, d), by torch autograd."""
    th = torch.tensor(theta, requires_grad=True, dtype=torch.float64)
    x = torch.tensor(xbar, dtype=torch.float64)
    pi = torch.softmax(th @ x, dim=0)
    M = theta.shape[0]
    loc = pi[chosen] * delta_norm
    f_t = torch.tensor(f, dtype=torch.float64)
    if aux_grad == "decay":
        P = (
            torch.tensor(past_pi_sum, dtype=torch.float64) + pi
        ) / t  # only round t depends on theta
    else:
        P = pi
    aux = alpha * M * (f_t * P).sum()
    (loc + aux).backward()
    return th.grad.numpy()


@pytest.mark.parametrize("aux_grad", ["decay", "no_decay"])
def test_router_gradient_matches_autograd(aux_grad):
    rng = np.random.default_rng(3)
    M, d, t, alpha = 5, 7, 9, 0.7
    theta = rng.normal(size=(M, d))
    xbar = rng.normal(size=d)
    chosen = 2
    delta_norm = 1.3
    counts = rng.integers(0, 4, size=M).astype(float)
    counts[chosen] += 1
    f = counts / t
    past = rng.random(M) * (t - 1) / M
    pi = softmax(theta @ xbar)
    c = router_coefficients(
        np.array([delta_norm]),
        pi[None],
        np.array([chosen]),
        f[None],
        t,
        alpha,
        aux_grad,
    )
    grad = c[0][:, None] * xbar[None, :]
    expected = _autograd_router_grad(
        theta, xbar, chosen, delta_norm, f, past, t, alpha, aux_grad
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)
    assert abs(c.sum()) < 1e-12  # zero-sum: the router lemma of SPEC §6.1


def test_router_stays_zero_sum_in_simulation():
    res = simulate(
        ExperimentConfig(
            n_experts=6, T=300, n_runs=4, termination="never", signal_scale=3.0
        )
    )
    assert np.abs(res.final_theta.sum(axis=1)).max() < 1e-10
    assert np.abs(res.final_theta).max() > 1e-3  # the router did move


@pytest.mark.parametrize("M", [1, 3])
def test_incremental_metrics_equal_naive_error_matrix(M):
    cfg = ExperimentConfig(
        n_tasks=3, n_experts=M, d=8, s=3, T=40, n_runs=3, signal_scale=2.0, seed=5
    )
    res = simulate(cfg, record_weights=True)
    for r in range(cfg.n_runs):
        E = metrics.error_matrix(
            res.weights[r], res.experts[r], res.tasks[r], res.pool.W[r]
        )
        F, G = metrics.curves_from_error_matrix(E)
        np.testing.assert_allclose(res.G[r], G, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.F[r, 1:], F[1:], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(res.err_new[r], np.diag(E), rtol=1e-10, atol=1e-12)
    assert np.all(np.isnan(res.F[:, 0]))


def test_expert_update_interpolates_and_moves_minimally():
    """After its update the selected expert fits the round exactly; the change lies in
    span(X_t)."""
    cfg = ExperimentConfig(n_tasks=2, n_experts=1, d=6, s=2, T=2, n_runs=1, seed=11)
    res = simulate(cfg, record_weights=True)
    w1, w2 = res.weights[0, 0, 0], res.weights[0, 1, 0]
    # w_1 = P_1 w_{n_1} is a projection: ||w_1||^2 = <w_1, w_{n_1}>
    wn1 = res.pool.W[0, res.tasks[0, 0]]
    assert w1 @ w1 == pytest.approx(w1 @ wn1)
    # min-change update: w_2 - w_1 is orthogonal to w_2 - w_{n_2} (Pythagoras of a
    # projection)
    wn2 = res.pool.W[0, res.tasks[0, 1]]
    assert (w2 - w1) @ (w2 - wn2) == pytest.approx(0.0, abs=1e-12)


def test_gap_test_hand_cases():
    h = np.array(
        [[1.0, 0.95, 0.2, -2.15], [0.5, 0.4, 0.3, -1.2], [1.0, 0.8, 0.75, -2.55]]
    )
    chosen = np.array([0, 0, 0])
    # run 0: outside set {2, 3}, min margin 0.8 > gamma 0.5 -> pass
    # run 1: everyone within lam = 0.3 except expert 3 (margin 1.7) -> pass
    # run 2: experts 1,2 outside lam=0.1, margin min 0.2 < gamma 0.5 -> fail
    lam = np.array([0.1, 0.3, 0.1])
    out = [
        bool(gap_test(h[i : i + 1], chosen[i : i + 1], lam[i], 0.5)[0])
        for i in range(3)
    ]
    assert out == [True, True, False]
    # everyone tied -> never passes
    assert not gap_test(np.zeros((1, 4)), np.array([1]), 0.1, 0.0)[0]


def test_termination_rules():
    base = ExperimentConfig(
        n_experts=4, n_tasks=2, T=60, n_runs=3, T1=10, signal_scale=3.0
    )
    frz = simulate(base.replace(termination="freeze_at_T1"))
    assert np.all(frz.T2 == 11)
    never = simulate(base.replace(termination="never"))
    assert np.all(never.T2 == -1)
    single = simulate(base.replace(n_experts=1))
    assert np.all(single.T2 == -1)
    gap = simulate(base.replace(termination="gap"))
    assert np.all((gap.T2 == -1) | (gap.T2 > 10))


def test_frozen_router_does_not_move():
    cfg = ExperimentConfig(
        n_experts=4,
        n_tasks=2,
        T=30,
        n_runs=2,
        T1=5,
        termination="freeze_at_T1",
        snapshot_every=1,
        signal_scale=3.0,
    )
    res = simulate(cfg)
    snaps = res.gate_snapshots  # after rounds 1..30; router frozen from round 6 on
    np.testing.assert_array_equal(snaps[:, 5], snaps[:, -1])
    assert not np.allclose(snaps[:, 0], snaps[:, 4])


def test_seeded_runs_are_reproducible_and_seed_matters():
    cfg = ExperimentConfig(n_experts=3, T=50, n_runs=2)
    a, b = simulate(cfg), simulate(cfg)
    np.testing.assert_array_equal(a.G, b.G)
    c = simulate(cfg.replace(seed=1))
    assert not np.allclose(a.G, c.G)


def test_shared_pool_and_clusters():
    res = simulate(
        ExperimentConfig(
            n_tasks=6, n_clusters=2, n_experts=1, T=5, n_runs=3, shared_pool=True
        )
    )
    W = res.pool.W
    np.testing.assert_array_equal(W[0], W[2])
    assert list(res.pool.cluster_of) == [0, 0, 0, 1, 1, 1]
    within = np.linalg.norm(W[0, 0] - W[0, 1])
    across = np.linalg.norm(W[0, 0] - W[0, 4])
    assert within < across
