"""The specialisation criterion of moecl_lib.theory.specialisation against simulation.

Statistical checks (each can fail): in the calibrated setting (M = 20, c = 5, router
trained throughout), the routing purity right after T1 is

* <= 0.5 at 0.75 gain_star and >= 0.75 at 1.3 gain_star, each by 2 standard errors over
64 runs, at the
  routing-noise range lambda = 0.3 of the setting and at lambda = 0.15 and 0.6;
* the half time of the repeat rate at 2 gain_star lies within 25 % of the predicted
onset round.

The same checks reject a wrong constant (gain_star x 1.5, x 0.6) and the naive
drift-versus-noise boundary.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.analysis.onset import half_time, repeat_indicator, repeat_rate
from moecl_lib.analysis.routing import specialisation
from moecl_lib.linear.engine import simulate
from moecl_lib.theory import specialisation as th

M, N, C, SIGMA0, D, S = 20, 6, 5.0, 0.4, 10, 6
GAIN_STAR = th.critical_gain(M, SIGMA0, D, S)
BELOW, ABOVE = 0.75, 1.3  # multiples of the predicted boundary that are checked
PURITY_LOW, PURITY_HIGH = 0.5, 0.75
ONSET_TOL = 0.25


def _cfg(gain: float, T1: int, T: int, seed: int = 11, lam: float = 0.3):
    return setting_config(
        "calibrated",
        M,
        lam=lam,
        signal_scale=C,
        eta=gain / C**2,
        T1=T1,
        T=T,
        termination="never",
        n_runs=64,
        seed=seed,
        streams="per_run",
    )


@lru_cache(maxsize=32)
def _purity(gain: float, lam: float = 0.3) -> tuple[float, float]:
    sp = specialisation(simulate(_cfg(gain, 300, 500, lam=lam)), window=200)
    x = sp.purity_early
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def boundary_holds(gain_star: float, lam: float = 0.3) -> bool:
    """Purity low below and high above ``gain_star`` (2 s.e. margins)."""
    lo, lo_se = _purity(round(BELOW * gain_star, 6), lam)
    hi, hi_se = _purity(round(ABOVE * gain_star, 6), lam)
    return lo + 2 * lo_se <= PURITY_LOW and hi - 2 * hi_se >= PURITY_HIGH


@lru_cache(maxsize=4)
def _half_time(gain: float) -> float:
    res = simulate(_cfg(gain, 10_000, 300))
    return half_time(repeat_rate(res.experts, res.tasks))


def onset_holds(gain_star: float) -> bool:
    gain = 2 * GAIN_STAR
    pred = th.onset_round(gain, gain_star, M, N)
    return abs(_half_time(gain) - pred) <= ONSET_TOL * pred


def test_constants() -> None:
    assert th.switch_step(0.4, 10, 6) == pytest.approx(1.6)
    assert th.critical_push(20) == pytest.approx(15.494, abs=1e-3)
    assert GAIN_STAR == pytest.approx(9.684, abs=1e-3)
    # the first sweep specialises at every push scale above the critical one (monotone
    # criterion)
    assert all(
        th.first_sweep(g, M)[0]
        for g in np.linspace(th.critical_push(M) * 1.001, 80, 60)
    )
    assert not th.first_sweep(th.critical_push(M) * 0.999, M)[0]
    assert th.boundary_eta(5.0, M, SIGMA0, D, S) == pytest.approx(GAIN_STAR / 25)
    assert math.isinf(th.onset_round(0.9 * GAIN_STAR, GAIN_STAR, M, N))
    assert th.onset_round(GAIN_STAR, GAIN_STAR, M, N) == pytest.approx(M * N, rel=0.05)


def test_repeat_indicator() -> None:
    e = np.array([[0, 1, 0, 0, 2, 2]])
    n = np.array([[0, 1, 0, 1, 0, 0]])
    np.testing.assert_array_equal(
        repeat_indicator(e, n), [[np.nan, np.nan, 1.0, 0.0, 0.0, 1.0]]
    )


def test_boundary_prediction_matches_simulation() -> None:
    assert boundary_holds(GAIN_STAR)


@pytest.mark.parametrize("lam", [0.15, 0.6])
def test_boundary_does_not_move_with_the_routing_noise(lam: float) -> None:
    # the derived boundary has no lambda; the naive drift-versus-noise one scales with
    # it (at lambda = 0.6 it happens to lie near gain_star, so it is rejected only at
    # 0.15 and, in the test below, at 0.3)
    assert boundary_holds(GAIN_STAR, lam)
    if lam < 0.3:
        assert not boundary_holds(th.naive_gain(M, lam, SIGMA0, D, S), lam)


def test_boundary_check_rejects_wrong_constants() -> None:
    assert not boundary_holds(1.5 * GAIN_STAR)
    assert not boundary_holds(0.6 * GAIN_STAR)
    assert not boundary_holds(th.naive_gain(M, 0.3, SIGMA0, D, S))


def test_onset_round_matches_simulation() -> None:
    assert onset_holds(GAIN_STAR)
    assert not onset_holds(1.5 * GAIN_STAR)
    assert not onset_holds(0.6 * GAIN_STAR)
