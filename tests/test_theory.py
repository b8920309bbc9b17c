"""Isotropic single-expert closed forms (SPEC §6.5, our derivation [D]) vs direct sums
and simulation."""

import numpy as np
import pytest

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.config import ExperimentConfig
from moecl_lib.linear.engine import simulate
from moecl_lib.theory import isotropic as theory


def test_pool_moments_hand_values():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    wbar2, delta = theory.pool_moments(W)
    assert wbar2 == pytest.approx(2 / 3)
    # ordered pairs: |w0-w1|^2=2 (x2), |w0-w2|^2=1 (x2), |w1-w2|^2=1 (x2) -> 8 / 9
    assert delta == pytest.approx(8 / 9)
    wb, dl = theory.pool_moments(np.stack([W, 2 * W]))
    assert dl == pytest.approx([8 / 9, 32 / 9])


def test_F_closed_form_equals_direct_sum():
    r, wb, dl = 0.65, 2.0, 3.0
    t = np.arange(1, 40)
    F = theory.single_expert_F(t, r, wb, dl)
    assert np.isnan(F[0])
    for tt in (2, 3, 17, 39):
        direct = np.mean(
            [
                (r**tt - r**k) * wb
                + (1 - r - r**tt + r**k - (1 - r) * r ** (tt - k)) * dl
                for k in range(1, tt)
            ]
        )
        assert F[tt - 1] == pytest.approx(direct, rel=1e-12)


def test_limits_are_the_model_gap_floor():
    r, wb, dl = 0.7, 3.0, 4.0
    big = np.array([5000.0])
    assert theory.single_expert_G(big, r, wb, dl)[0] == pytest.approx(dl, rel=1e-3)
    assert theory.single_expert_F(big, r, wb, dl)[0] == pytest.approx(
        (1 - r) * dl, rel=1e-3
    )
    assert theory.single_expert_limits(r, dl) == pytest.approx((dl, (1 - r) * dl))
    with pytest.raises(ValueError):
        theory.single_expert_G(np.array([0]), r, wb, dl)


@pytest.mark.statistical
@pytest.mark.parametrize(("d", "s", "N"), [(20, 6, 4), (8, 7, 3)])
def test_isotropic_closed_form_matches_monte_carlo(d, s, N):
    """Exact for isotropic columns: |mean - formula| < 4 s.e. + 1e-3 at every checked
    round."""
    cfg = ExperimentConfig(
        n_tasks=N,
        n_experts=1,
        d=d,
        s=s,
        T=30,
        n_runs=6000,
        signal="none",
        shared_pool=True,
        seed=2024,
    )
    res = simulate(cfg)
    wbar2, delta = theory.pool_moments(res.pool.W[0])
    t = res.rounds
    pred = {
        "G": theory.single_expert_G(t, cfg.r, wbar2, delta),
        "G_pool": theory.single_expert_G_pool(t, cfg.r, wbar2, delta),
        "F": theory.single_expert_F(t, cfg.r, wbar2, delta),
    }
    for name, formula in pred.items():
        mean, se = mean_se(getattr(res, name))
        for tt in (2, 5, 10, 30):
            i = tt - 1
            assert abs(mean[i] - formula[i]) < 4 * se[i] + 1e-3, (
                name,
                tt,
                mean[i],
                formula[i],
                se[i],
            )


@pytest.mark.statistical
def test_expected_pool_moments_match_sampling():
    cfg = ExperimentConfig(
        n_tasks=5, n_experts=1, d=12, s=3, T=1, n_runs=20000, sigma0=0.3, seed=9
    )
    res = simulate(cfg)
    wb, dl = theory.pool_moments(res.pool.W)
    e_wb, e_dl = theory.expected_pool_moments(12, 5, 0.3)
    assert abs(wb.mean() - e_wb) < 4 * wb.std() / np.sqrt(len(wb))
    assert abs(dl.mean() - e_dl) < 4 * dl.std() / np.sqrt(len(dl))
