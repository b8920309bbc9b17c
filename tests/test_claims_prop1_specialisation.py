"""Claims of the Proposition 1 chapter (moecl_lib.claims.prop1_specialisation)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.analysis.calibration import ClaimThresholds
from moecl_lib.claims import compare
from moecl_lib.claims import prop1_specialisation as chapter
from moecl_lib.claims.record import ExpectationError, write_expected

SMALL = chapter.Params(n_experts=8, T=400, n_runs=6, window=50, spec_time_experts=(8,))


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_majority_sets_by_hand():
    rm = np.array(
        [
            [
                [6, 4, 0],  # task 0 has the majority: set 0
                [3, 3, 0],  # a tie: no majority, no set
                [0, 0, 0],  # idle: no set
                [1, 0, 9],
            ]
        ]
    )  # set 2
    assert chapter.majority_sets(rm).tolist() == [[0, -1, -1, 2]]


def test_time_to_plateau_by_hand():
    purity = np.array([[0.3, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0]] * 3)
    ends = 100 * np.arange(1, 9)
    t, plateau = chapter.time_to_plateau(purity, ends)
    assert (
        plateau == pytest.approx(1.0) and t == 400
    )  # 0.9 < 0.95 * 1.0: first reached in window 4
    assert (
        chapter.bootstrap_time(purity, ends, seed=0) == 0.0
    )  # identical runs: no spread


def setting(
    R: int = 40,
    *,
    purity: float = 0.95,
    in_sets: float = 0.35,
    coverage: float = 0.97,
    own: float = 0.05,
    other: float = 1.8,
) -> chapter.SettingData:
    rng = np.random.default_rng(0)

    def around(x: float) -> np.ndarray:
        return x + 0.01 * rng.standard_normal(R)

    return chapter.SettingData(
        setting="calibrated",
        T1=600,
        config={},
        purity_T1=around(purity),
        in_sets=around(in_sets),
        coverage=around(coverage),
        coverage_primary=around(coverage),
        experts_active=around(7.0),
        largest_set=around(2.0),
        own_dist=around(own),
        other_dist=around(other),
        routing_example=np.zeros((20, 6)),
        purity_curves={},
        window_ends=np.zeros(0),
    )


def test_readings_one_per_part():
    th = ClaimThresholds()
    check = chapter._check(setting(), th)
    assert [r.name for r in check.readings] == [
        "purity",
        "experts_in_sets",
        "coverage",
        "closeness",
    ]
    assert [r.outcome for r in check.readings] == ["holds", "fails", "holds", "holds"]
    assert (
        check.verdict == "partly"
    )  # idle experts: "every expert belongs to a set" fails
    assert chapter._check(setting(in_sets=0.99), th).verdict == "reproduced"
    random_routing = chapter._check(
        setting(purity=0.43, in_sets=0.08, coverage=0.2, own=2.4, other=1.3), th
    )
    assert random_routing.verdict == "not reproduced"
    undecided = chapter._check(setting(purity=0.902, in_sets=0.99), th)
    assert (
        undecided.readings[0].outcome == "inconclusive"
        and undecided.verdict == "inconclusive"
    )


def test_run_produces_checks_and_quantities(small: chapter.Result):
    assert [(c.claim, c.setting) for c in small.checks] == [
        ("prop1", "calibrated"),
        ("prop1", "recalled"),
    ]
    assert all(len(c.readings) == 4 for c in small.checks)
    names = {q.name for q in small.quantities}
    for s in ("calibrated", "recalled"):
        for k in (
            "purity_T1",
            "experts_in_sets",
            "coverage",
            "coverage_primary",
            "experts_active",
            "dist_ratio",
        ):
            assert f"{s}_{k}" in names
    q = small.record.quantity("spec_M8_t_95pct")
    assert q.floor == SMALL.window and q.value % SMALL.window == 0
    assert set(small.configs) == {
        "calibrated_gap",
        "calibrated_never",
        "recalled_gap",
        "recalled_never",
        "spec_time_M8",
    }
    rows = small.summary_rows()
    assert [r["setting"] for r in rows] == ["calibrated", "recalled"]
    assert rows[1]["T1"] == 21  # recalled: ceil(M / (eta sigma0^0.25)) for M = 8
    assert "M = 8" in small.spec_time_sentence()


def test_compare_catches_a_moved_quantity(small: chapter.Result, tmp_path: Path):
    record = small.record
    path = write_expected(record, tmp_path / "prop1.json")
    assert "within tolerance" in compare(record, path)
    q = record.quantity("calibrated_purity_T1")
    moved = dataclasses.replace(q, value=q.value - 2 * q.tolerance(q) - 1e-3)
    record.quantities = [moved if x.name == q.name else x for x in record.quantities]
    with pytest.raises(ExpectationError, match="calibrated_purity_T1"):
        compare(record, path)
