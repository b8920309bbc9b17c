"""LinearExperts: the min-change update and the incremental F_t / G_t on hand-computed
values."""

import numpy as np
import pytest

from moecl_lib.linear.experts import LinearExperts


def test_hand_computed_two_rounds():
    W = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # R=1, N=2, d=2
    bank = LinearExperts(W, n_experts=2)
    e1, e2 = np.array([[[1.0], [0.0]]]), np.array([[[0.0], [1.0]]])  # X: (R, d, s=1)
    # round 1: expert 0 learns task 0 from x = e1 -> w = (1, 0), exact fit, error 0
    r1 = bank.learn(np.array([0]), np.array([0]), e1, np.array([[1.0]]))
    assert np.isnan(r1.F[0]) and r1.G[0] == 0.0 and r1.err_new[0] == 0.0
    np.testing.assert_allclose(bank.w[0, 0], [1.0, 0.0])
    # round 2: same expert learns task 1 from x = e2 -> w = (1, 1): the past arrival's
    # error rises 0 -> 1
    r2 = bank.learn(np.array([0]), np.array([1]), e2, np.array([[1.0]]))
    np.testing.assert_allclose(bank.w[0, 0], [1.0, 1.0])
    assert r2.F[0] == pytest.approx(1.0)  # (1 - 0) / (t - 1)
    assert r2.G[0] == pytest.approx(1.0)  # (1 + 1) / 2
    assert r2.err_new[0] == pytest.approx(1.0)
    # expert 1 untouched: its errors are ||w_n||^2
    np.testing.assert_allclose(bank.D[0, 1], [1.0, 1.0])
    assert bank.pool_error(np.array([[0, 1]]))[0] == pytest.approx(1.0)
    assert bank.pool_error(np.array([[1, 1]]))[0] == pytest.approx(1.0)


def test_update_is_min_change_interpolator():
    rng = np.random.default_rng(0)
    R, N, d, s = 3, 2, 6, 2
    W = rng.normal(size=(R, N, d))
    bank = LinearExperts(W, n_experts=1)
    bank.set_experts(np.arange(R), np.zeros(R, dtype=int), rng.normal(size=(R, d)))
    before = bank.w[:, 0].copy()
    X = rng.normal(size=(R, d, s))
    n = np.array([0, 1, 0])
    y = np.einsum("rds,rd->rs", X, W[np.arange(R), n])
    bank.learn(np.zeros(R, dtype=int), n, X, y)
    after = bank.w[:, 0]
    np.testing.assert_allclose(
        np.einsum("rds,rd->rs", X, after), y, atol=1e-12
    )  # interpolates
    # the change lies in span(X): residual of projecting it onto span(X) is zero
    for r in range(R):
        delta = after[r] - before[r]
        coef, *_ = np.linalg.lstsq(X[r], delta, rcond=None)
        np.testing.assert_allclose(X[r] @ coef, delta, atol=1e-12)


def test_set_experts_refreshes_errors():
    W = np.array([[[2.0, 0.0]]])
    bank = LinearExperts(W, n_experts=2)
    bank.set_experts(np.array([0]), np.array([1]), np.array([[1.0, 0.0]]))
    assert bank.D[0, 1, 0] == pytest.approx(1.0) and bank.D[0, 0, 0] == pytest.approx(
        4.0
    )
    with pytest.raises(ValueError, match="shape"):
        LinearExperts(np.zeros((2, 3)), 2)
