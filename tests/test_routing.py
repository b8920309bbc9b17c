"""The router's rules (moecl_lib.linear.routing): each jitted one-run twin equals its
numpy version, and the gap test fires exactly when it should."""

from __future__ import annotations

import numpy as np
import pytest

from moecl_lib.linear import routing


@pytest.mark.parametrize("seed", range(5))
def test_gap_twin_equals_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        M = int(rng.integers(2, 8))
        h = np.round(rng.normal(size=M), 1)  # ties and near-ties on purpose
        m = int(rng.integers(M))
        lam, gamma = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.5))
        expected = bool(routing.gap_test(h[None], np.array([m]), lam, gamma)[0])
        assert bool(routing.gap_passes_run(h, m, lam, gamma)) == expected


@pytest.mark.parametrize("seed", range(5))
def test_coefficient_twin_equals_numpy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    M, t = 7, 13
    h = rng.normal(size=M)
    m = 3
    counts = rng.integers(0, 5, size=M).astype(float)
    dn, scale = float(rng.uniform(0.1, 2)), 0.3 * M / t
    pi, f, c = np.empty(M), np.empty(M), np.empty(M)
    pi_sum = np.zeros(M)
    routing.router_coefficients_run(h, m, counts, t, dn, scale, pi, f, c, 0, pi_sum)
    pi_np = routing.softmax(h[:, None], axis=0)
    c_np = routing.coefficients_runs_last(
        np.array([dn]), pi_np, np.array([m]), (counts / t)[:, None], scale
    )[:, 0]
    # same order of operations; numpy's exp may differ from libm's in the last bit
    np.testing.assert_allclose(pi, pi_np[:, 0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(c, c_np, rtol=1e-12, atol=1e-15)
    assert abs(c.sum()) < 1e-12  # the coefficients sum to zero over experts


def test_router_coefficients_is_the_engine_rule_transposed() -> None:
    rng = np.random.default_rng(1)
    R, M = 4, 5
    pi = routing.softmax(rng.normal(size=(R, M)))
    f = rng.dirichlet(np.ones(M), size=R)
    chosen, dn = rng.integers(M, size=R), rng.uniform(size=R)
    c = routing.router_coefficients(dn, pi, chosen, f, t=3, alpha=0.5)
    runs_last = routing.coefficients_runs_last(
        dn, pi.T.copy(), chosen, f.T.copy(), routing.aux_scale(0.5, M, 3, "decay")
    )
    np.testing.assert_allclose(c, runs_last.T, rtol=1e-14, atol=1e-16)


def test_route_takes_the_first_maximum() -> None:
    h = np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])  # (M=3, R=2)
    noise = np.zeros_like(h)
    np.testing.assert_array_equal(routing.route(h, noise), [1, 0])
