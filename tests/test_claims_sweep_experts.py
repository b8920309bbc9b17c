"""Chapter sweep_experts as data: trend statistics, the readings of claim more_experts,
the comparison."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims import ClaimCheck, Quantity, Reading, Record, compare
from moecl_lib.claims import sweep_experts as chapter
from moecl_lib.claims.record import ExpectationError, write_expected
from moecl_lib.claims.rule import verdict_of
from moecl_lib.linear.engine import simulate

SMALL = chapter.Params(
    experts=(1, 6, 12, 24), T=800, n_pools_exact=2, n_runs=6, alg1_runs=8, seed=2
)


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_helpers() -> None:
    w = chapter.bootstrap_weights(5, 7, seed=1)
    assert w.shape == (7, 5) and np.allclose(w.sum(1), 1.0)
    assert np.array_equal(w, chapter.bootstrap_weights(5, 7, seed=1))
    assert not np.array_equal(w, chapter.bootstrap_weights(5, 7, seed=2))
    assert chapter.ols_slope([1, 2, 3], [3.0, 5.0, 7.0]) == pytest.approx(2.0)
    assert np.allclose(
        chapter.ols_slope([0, 1], np.array([[0.0, 1.0], [4.0, 0.0]])), [1.0, -4.0]
    )
    # a curve still above the threshold at T is "not reached" = T + 1; a converging one
    # its first good round
    curves = np.array([[5.0, 4.0, 3.0, 2.0], [5.0, 0.5, 2.0, 0.5]])
    assert list(chapter.censored_convergence(curves, 2.5, 4)) == [4.0, 2.0]
    assert list(chapter.censored_convergence(curves, 0.1, 4)) == [5.0, 5.0]
    assert chapter.spearman([6, 12, 24], [1001, 362, 732]) == pytest.approx(-0.5)
    assert chapter.spearman([6, 12, 24], [5, 5, 5]) == 0.0


def test_non_monotone_sweep_gives_a_failing_trend_and_partly() -> None:
    # the paper-profile pattern of Algorithm 1: never (T+1), 996, 368, 545, 745 for M
    # = 6, 9, 12, 18, 24
    M = [6, 9, 12, 18, 24]
    slope = float(chapter.ols_slope(M, [1001, 996, 368, 545, 745]))
    assert slope < 0
    trend = Reading("alg1_trend", "slope", slope, 0.0, se=2.0)
    ideal = Reading("ideal_trend", "slope", 1.77, 0.0, se=0.03)
    assert trend.outcome == "fails" and ideal.outcome == "holds"
    assert ClaimCheck("more_experts", "calibrated", (ideal, trend)).verdict == "partly"
    # a monotone sweep with the same spread holds
    assert chapter.ols_slope(M, sorted([1001, 996, 368, 545, 745])) > 0


def test_run_records_quantities_checks_and_configs(small: chapter.Result) -> None:
    rec = small.record
    assert rec.chapter == "sweep_experts"
    assert rec.params["experts"] == (1, 6, 12, 24) and rec.params["alg1_runs"] == 8
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for key in (
        "ideal_slope",
        "phase_slope",
        "alg_slope",
        "alg_rank_corr",
        "alg_G_T_4N_minus_2N",
        "Delta_exact",
    ):
        assert key in names
    for M in (6, 12, 24):
        assert {f"ideal_t_conv_M{M}", f"phase_t_conv_M{M}", f"alg_t_conv_M{M}"} <= set(
            names
        )
    assert "ideal_Gpool_T_M1" in names
    [check] = rec.checks
    assert (check.claim, check.setting) == ("more_experts", "calibrated")
    assert [r.name for r in check.readings] == [
        "ideal_trend",
        "alg1_trend",
        "alg1_not_better",
    ]
    assert check.verdict == verdict_of(r.outcome for r in check.readings)
    # the readings use the recorded quantities
    q = {x.name: x for x in rec.quantities}
    assert (
        check.readings[1].estimate == q["alg_slope"].value
        and check.readings[1].se == q["alg_slope"].se
    )
    # the ideal MoE converges linearly in M (1/M share of the rounds): about 1.75 rounds
    # per expert
    assert 1.5 < q["ideal_slope"].value < 2.1
    # n_runs, seed and T go straight into the configurations
    cfg = rec.configs["algorithm1/M=24"]
    assert (cfg["n_runs"], cfg["seed"], cfg["T"], cfg["n_experts"], cfg["T1"]) == (
        8,
        2,
        800,
        24,
        720,
    )
    assert rec.configs["phase/M=12"]["t0"] == 360
    assert json.loads(rec.to_json())["chapter"] == "sweep_experts"
    assert small.phase_exact_ok


def test_same_config_and_seed_give_the_same_numbers(small: chapter.Result) -> None:
    res = simulate(setting_config("calibrated", 12, T=800, n_runs=8, seed=2))
    assert small.alg[12].G_T == pytest.approx(float(res.G[:, -1].mean()), rel=1e-12)
    q = {x.name: x for x in small.quantities}
    assert q["alg_G_T_M12"].value == pytest.approx(
        float(res.G[:, -1].mean()), rel=1e-12
    )


def test_compare_catches_a_moved_quantity(small: chapter.Result, tmp_path) -> None:
    rec = small.record
    path = write_expected(rec, tmp_path / "sweep_experts.json")
    assert "within tolerance" in compare(rec, path)
    q = next(x for x in rec.quantities if x.name == "alg_G_T_M24")
    moved = Quantity(
        q.name, q.value + 10 * q.tolerance(q), q.se, q.n, q.kind, q.floor, q.label
    )
    quantities = [moved if x.name == q.name else x for x in rec.quantities]
    bad = Record(rec.chapter, rec.params, quantities, rec.checks)
    with pytest.raises(ExpectationError, match="alg_G_T_M24"):
        compare(bad, path)
    # a changed verdict is caught as well
    flipped = [
        ClaimCheck(c.claim, c.setting, (Reading("x", "x", -1.0, 0.0),))
        for c in rec.checks
    ]
    with pytest.raises(ExpectationError, match="verdict"):
        compare(Record(rec.chapter, rec.params, rec.quantities, flipped), path)
    # other parameters are not compared
    assert "not compared" in compare(
        replace(rec, params={**rec.params, "T": 900}), path
    )
