"""Chapter thm1_moe_many_experts as data: least-margin readings, a small run and the
stored expectation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.claims import ClaimCheck, Quantity, compare, estimators
from moecl_lib.claims import thm1_moe_many_experts as chapter
from moecl_lib.claims.record import ExpectationError, record_from_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / f"{chapter.CHAPTER}.ipynb"
EXPECTED = ROOT / "notebooks" / "expected" / f"{chapter.CHAPTER}.json"


def test_least_margin_picks_the_weakest_M_and_names_it():
    cands = {
        6: Quantity("a", 0.5, 0.1),
        12: Quantity("b", 0.9, 0.01),
        24: Quantity("c", 0.2, 0.01),
    }
    r = estimators.least_margin("x", "ratio", cands, 1.0)
    assert r.estimate == 0.5 and r.z == pytest.approx(5.0) and r.outcome == "holds"
    assert (
        "every M in {6, 12, 24}" in r.statement and "least margin: M = 6" in r.statement
    )
    # one M on the wrong side makes the reading fail
    cands[24] = Quantity("c", 1.5, 0.01)
    assert estimators.least_margin("x", "ratio", cands, 1.0).outcome == "fails"
    # absolute value around a centre
    r = estimators.least_margin(
        "x", "|q - 1|", {2: Quantity("a", 0.9, 0.01)}, 0.2, absolute=True, center=1.0
    )
    assert r.estimate == pytest.approx(0.1) and r.outcome == "holds"
    with pytest.raises(ValueError):
        estimators.least_margin("x", "", {}, 1.0)


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(
        chapter.Params(
            experts=(6, 12),
            T=80,
            n_runs=60,
            t0=20,
            M_post=6,
            check_rounds=(2, 10, 80),
            alg1_T=400,
            alg1_runs=16,
            alg1_check_rounds=(100, 400),
        )
    )


def test_small_run_quantities_and_check(small):
    rec = small.record
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for M in (1, 6, 12):
        assert {
            f"G_T_ideal_M{M}",
            f"agree_ideal_M{M}",
            f"G_T_alg1_M{M}",
            f"agree_alg1_M{M}",
        } <= set(names)
    # the pool-floor ratio only for M >= N ln N; rho = (d-s)/(d-1) under Definition 1
    assert (
        "Gpool_over_floor_alg1_M12" in names and "Gpool_over_floor_alg1_M6" not in names
    )
    assert rec.quantity("rate_M6").value == pytest.approx(1 - (1 - 4 / 9) / 6)
    assert (
        rec.quantity("max_G_aligned").kind == "roundoff"
        and rec.quantity("max_G_aligned").value < 1e-12
    )
    assert (
        rec.quantity("frozen_alg1_M6").floor == chapter.FRACTION_FLOOR
    )  # fraction with s.e. 0
    assert (
        rec.quantity("G_T_ideal_M6").floor == chapter.ROUNDOFF_FLOOR
    )  # round-off sized
    (check,) = rec.checks
    assert (check.claim, check.setting) == ("thm1", "calibrated")
    out = {r.name: r.outcome for r in check.readings}
    assert list(out) == [
        "ideal_G",
        "ideal_F",
        "post_G",
        "post_F",
        "alg1_G",
        "alg1_F",
        "alg1_pool",
        "alg1_G_decreases",
        "alg1_F_decreases",
        "alg1_F_to_zero",
    ]
    # decisive at this size over seeds 0-3 (margins of 4 s.e. or more); ideal_F is
    # not: at T = 80 it sits at its threshold (0.08-0.12 over seeds 0-3)
    for name in ("ideal_G", "post_G", "post_F", "alg1_G", "alg1_F"):
        assert out[name] == "holds", name
    # the companion's own checks: simulation agrees with the exact expectations
    for name in names:
        if name.startswith("agree_"):
            assert rec.quantity(name).value < 1.0, name
    assert set(rec.configs) >= {
        "ideal|M=1",
        "ideal|M=6",
        "post_specialisation|M=6",
        "alg1|M=12",
    }
    assert rec.configs["alg1|M=12"]["T1"] == 360
    assert {"thm1_rates", "thm1_rate_sentence", "thm1_alg1_sentence"} <= set(
        chapter.prose(small)
    )


def test_figures_have_consistent_csv(small):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot, n in (
        (chapter.plot_ideal, 80),
        (chapter.plot_post, 80),
        (chapter.plot_alg1, 400),
    ):
        fig, csv = plot(small)
        assert {len(v) for v in csv.values()} == {n}
        plt.close(fig)
    assert all(
        np.ndim(v) == 0 for row in small.rows_post() for v in row.values()
    )  # not per-run rows


def test_a_failing_reading_changes_the_verdict(small):
    (check,) = small.checks
    holding = tuple(r for r in check.readings if r.outcome == "holds")
    assert ClaimCheck("thm1", "calibrated", holding).verdict == "reproduced"
    broken = dataclasses.replace(
        holding[0],
        estimate=holding[0].threshold
        + (10 if holding[0].sense == "<=" else -10) * max(holding[0].se, 1e-3),
    )
    assert ClaimCheck("thm1", "calibrated", (broken,) + holding[1:]).verdict == "partly"


def test_stored_notebook_matches_expectation_and_compare_catches_a_moved_quantity():
    rec = record_from_notebook(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    assert rec is not None and rec.chapter == chapter.CHAPTER
    # the Params defaults are the quick profile
    assert rec.params == json.loads(json.dumps(dataclasses.asdict(chapter.Params())))
    assert "within tolerance" in compare(rec, EXPECTED)
    q = rec.quantity("G_ratio_alg1_M24")
    moved = dataclasses.replace(q, value=q.value + 10 * q.se)
    rec.quantities = [moved if x.name == q.name else x for x in rec.quantities]
    with pytest.raises(ExpectationError, match="G_ratio_alg1_M24"):
        compare(rec, EXPECTED)
