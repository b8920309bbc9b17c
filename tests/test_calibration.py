"""Named parameter settings and the P1-P3 claim checks (hand-made inputs)."""

import math

import numpy as np
import pytest

from moecl_lib.analysis.calibration import ClaimThresholds, check_claims, setting_config
from moecl_lib.analysis.routing import Specialisation
from moecl_lib.analysis.sweeps import FamilyRun
from moecl_lib.config import ConfigError, ExperimentConfig


def test_setting_configs():
    cal = setting_config("calibrated", 20, T=100, n_runs=3)
    assert (
        cal.T1 == 600
        and cal.signal_scale == 5.0
        and cal.aux_grad == "no_decay"
        and cal.T == 100
    )
    assert (cal.eta, cal.alpha, cal.lam) == (0.5, 0.25, 0.3)
    rec = setting_config("recalled", 10)
    assert rec.T1 is None and rec.T1_value == math.ceil(10 / (0.5 * 0.4**0.25)) == 26
    assert (rec.signal_scale, rec.eta, rec.alpha, rec.lam, rec.aux_grad) == (
        1.0,
        0.5,
        0.5,
        0.3,
        "decay",
    )
    assert setting_config("calibrated", 4, T1=7).T1 == 7  # explicit override wins
    with pytest.raises(ConfigError, match="setting"):
        setting_config("paper", 4)


def _member(term, purity_early, purity_post, coverage, uniformity, G_T, T2, G_curve):
    R = len(G_T)
    cfg = ExperimentConfig(n_experts=4, T=len(G_curve), n_runs=R, termination=term)
    arr = lambda v: np.full(R, v, dtype=float)  # noqa: E731
    spec = Specialisation(
        T1=2,
        window=2,
        purity_early=arr(purity_early),
        purity_late=arr(purity_early),
        purity_post=arr(purity_post),
        coverage=arr(coverage),
        uniformity=arr(uniformity),
        load_entropy_late=arr(1.0),
        T2=np.asarray(T2),
        G_T=np.asarray(G_T, dtype=float),
        F_T=arr(0.0),
        G_early=arr(1.0),
    )
    G = np.asarray(G_curve, dtype=float)
    return FamilyRun(
        labels={"termination": term},
        config=cfg,
        F_mean=G,
        F_se=G * 0,
        G_mean=G,
        G_se=G * 0,
        spec=spec,
        wall_time=0.0,
    )


def test_check_claims_hand_values():
    gap = _member("gap", 0.95, 0.96, 1.0, 0.5, [0.4, 0.6], [3, 5], [2.0, 1.0, 0.8, 0.5])
    never = _member(
        "never", 0.9, np.nan, 1.0, np.nan, [1.0, 1.2], [-1, -1], [2.0, 1.5, 1.2, 1.1]
    )
    out = check_claims(gap, never, single_G_T=3.0)
    assert out["ratio_never_gap"] == pytest.approx(1.1 / 0.5)
    assert out["P1"] and out["P2"] and out["P3a"] and not out["P3b"]
    assert out["G_half_gap"] == pytest.approx(1.0)  # G at round T/2 = 2
    # the single expert is only 2x worse -> G_T(gap) = 0.5 > 0.25 * 1.0: not converged
    # enough
    assert not check_claims(gap, never, single_G_T=0.9)["P3a"]
    # P2 needs the gap to be significant: huge spread between runs -> fails
    never_noisy = _member(
        "never", 0.9, np.nan, 1.0, np.nan, [0.1, 2.1], [-1, -1], [2.0, 1.5, 1.2, 1.1]
    )
    assert not check_claims(gap, never_noisy, single_G_T=3.0)["P2"]
    # coverage below threshold -> P1 fails ; stricter uniformity threshold flips P3b
    gap_lowcov = _member(
        "gap", 0.95, 0.96, 0.85, 0.9, [0.4, 0.6], [3, 5], [2.0, 1.0, 0.8, 0.5]
    )
    assert not check_claims(gap_lowcov, never, 3.0)["P1"]
    assert check_claims(gap_lowcov, never, 3.0)["P3b"]
    assert not check_claims(gap_lowcov, never, 3.0, ClaimThresholds(uniform=0.95))[
        "P3b"
    ]
    # uniform but wrong set (purity after T2 too low) is not P3b
    gap_wrong = _member(
        "gap", 0.95, 0.5, 1.0, 1.0, [0.4, 0.6], [3, 5], [2.0, 1.0, 0.8, 0.5]
    )
    assert not check_claims(gap_wrong, never, 3.0)["P3b"]
