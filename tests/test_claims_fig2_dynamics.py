"""Chapter fig2_dynamics as data: statistics, the readings of fig2_i ... fig2_v, the
comparison."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims import ClaimCheck, Quantity, Reading, Record, compare
from moecl_lib.claims import fig2_dynamics as chapter
from moecl_lib.claims.record import ExpectationError, write_expected
from moecl_lib.claims.rule import verdict_of
from moecl_lib.linear.engine import simulate

SMALL = chapter.Params(
    experts=(1, 5, 10, 20), T=700, n_runs=6, recalled_runs=4, n_theory_pools=2, seed=3
)
CLAIMS = ["fig2_i", "fig2_ii", "fig2_iii", "fig2_iv", "fig2_v"]


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_paired_ratio_and_times() -> None:
    a, b = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])
    r = chapter.paired_ratio("r", a, b)
    assert (
        r.value == pytest.approx(2.0)
        and r.se == pytest.approx(0.0, abs=1e-15)
        and r.n == 3
    )
    r2 = chapter.paired_ratio("r", np.array([2.0, 4.0, 7.0]), b)
    z = (np.array([2.0, 4.0, 7.0]) - r2.value * b) / b.mean()
    assert r2.se == pytest.approx(z.std(ddof=1) / np.sqrt(3))
    # descent: first round after the peak at or below the level (the dip before the peak
    # does not count)
    curves = np.array([[1.0, 3.0, 5.0, 2.0, 1.0], [1.0, 2.0, 2.5, 3.0, 2.9]])
    assert np.allclose(
        chapter.descent_round(curves, 2.0), [4.0, np.nan], equal_nan=True
    )
    # settle: first round from which the curve stays within tol of its final value
    assert list(chapter.settle_round(np.array([[3.0, 1.0, 1.3, 1.05, 1.0]]), 0.1)) == [
        4.0
    ]
    q = Quantity("a", 0.8, 0.03)
    assert chapter.compare_text(
        q,
        Quantity("b", 0.9, 0.03),
        Quantity("d", -0.1, 0.02),
        "lower",
        "higher",
        "same",
    ).startswith("lower (0.800")
    assert chapter.compare_text(
        q,
        Quantity("b", 0.9, 0.03),
        Quantity("d", -0.1, 0.06),
        "lower",
        "higher",
        "same",
    ).startswith("same")


def test_post_T1_transient_reading_fails_when_the_model_settles_at_T1() -> None:
    # a transient after T1 of 0 rounds for every M cannot count as growing with M,
    # whatever T1 = 30 M does
    r = Reading("post_T1_grows", "slope", 0.0, chapter.TRANSIENT_SLOPE, se=0.0)
    conv = Reading(
        "converged_M10", "ratio", 0.1, chapter.CONVERGE_FRAC, se=0.01, sense="<="
    )
    assert r.outcome == "fails" and conv.outcome == "holds"
    assert ClaimCheck("fig2_ii", "calibrated", (conv, r)).verdict == "partly"


def test_run_records_quantities_checks_and_configs(small: chapter.Result) -> None:
    rec = small.record
    assert rec.chapter == "fig2_dynamics"
    assert rec.params == {
        "experts": (1, 5, 10, 20),
        "T": 700,
        "n_runs": 6,
        "recalled_runs": 4,
        "n_theory_pools": 2,
        "seed": 3,
    }
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for tag in ("cal", "rec"):
        for key in (
            "G_T_single",
            "F_T_single",
            "G_T_M20_gap",
            "G_T_M20_never",
            "single_over_max_G",
            "single_plateau",
            "ratio_gap_single_M10",
            "ratio_never_gap_M20",
            "ratio_never_gap_M10",
            "single_minus_M5",
            "pool_floor_M5",
            "G_T_M20_minus_M10",
            "model_gap",
        ):
            assert f"{key}_{tag}" in names
    expected = [(c, s) for c in CLAIMS for s in ("calibrated", "recalled")]
    assert [(c.claim, c.setting) for c in rec.checks] == expected
    for c in rec.checks:
        assert c.verdict == verdict_of(r.outcome for r in c.readings)
    # (iii) is read only above N ln N (M = 20 of 5, 10, 20)
    assert [r.name for r in rec.check("fig2_iii", "calibrated").readings] == [
        "never_worse_M20"
    ]
    # (ii): the transient readings exist exactly where every terminated curve converged
    for s in ("calibrated", "recalled"):
        ii = rec.check("fig2_ii", s).readings
        conv = [r for r in ii if r.name.startswith("converged_")]
        assert len(conv) == 2
        has_transient = any(r.name == "post_T1_grows" for r in ii)
        assert has_transient == all(r.outcome == "holds" for r in conv)
    # n_runs, seed and T go straight into the configurations
    cfg = rec.configs["calibrated/M=20/gap"]
    assert (cfg["n_runs"], cfg["seed"], cfg["T"], cfg["T1"], cfg["termination"]) == (
        6,
        3,
        700,
        600,
        "gap",
    )
    assert rec.configs["recalled/M=10/never"]["n_runs"] == 4
    assert set(small.texts) >= {
        "never_vs_gap_M5_cal",
        "never_vs_gap_M5_rec",
        "horizon",
        "runs_cal",
        "runs_rec",
    }
    assert json.loads(rec.to_json())["chapter"] == "fig2_dynamics"


def test_same_config_and_seed_give_the_same_numbers(small: chapter.Result) -> None:
    res = simulate(
        setting_config("calibrated", 20, T=700, n_runs=6, seed=3, termination="gap")
    )
    q = {x.name: x for x in small.quantities}
    assert q["G_T_M20_gap_cal"].value == pytest.approx(
        float(res.G[:, -1].mean()), rel=1e-12
    )
    assert q["G_T_M20_gap_cal"].se == pytest.approx(
        float(res.G[:, -1].std(ddof=1) / np.sqrt(6)), rel=1e-9
    )


def test_compare_catches_a_moved_quantity(small: chapter.Result, tmp_path) -> None:
    rec = small.record
    path = write_expected(rec, tmp_path / "fig2_dynamics.json")
    assert "within tolerance" in compare(rec, path)
    q = next(x for x in rec.quantities if x.name == "ratio_never_gap_M20_cal")
    moved = Quantity(
        q.name, q.value + 10 * q.tolerance(q), q.se, q.n, q.kind, q.floor, q.label
    )
    quantities = [moved if x.name == q.name else x for x in rec.quantities]
    bad = Record(rec.chapter, rec.params, quantities, rec.checks)
    with pytest.raises(ExpectationError, match="ratio_never_gap_M20_cal"):
        compare(bad, path)
    missing = Record(
        rec.chapter,
        rec.params,
        [x for x in rec.quantities if x.name != q.name],
        rec.checks,
    )
    with pytest.raises(ExpectationError, match="ratio_never_gap_M20_cal"):
        compare(missing, path)
    assert "not compared" in compare(
        replace(rec, params={**rec.params, "seed": 4}), path
    )
