"""Chapter thm2_moe_few_experts as data: a small run, its readings and the stored
expectation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.claims import ClaimCheck, compare
from moecl_lib.claims import thm2_moe_few_experts as chapter
from moecl_lib.claims.record import ExpectationError, record_from_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / f"{chapter.CHAPTER}.ipynb"
EXPECTED = ROOT / "notebooks" / "expected" / f"{chapter.CHAPTER}.json"


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(
        chapter.Params(
            T=80,
            n_runs=60,
            check_rounds=(2, 10, 80),
            alg1_T=300,
            alg1_runs=16,
            alg1_check_rounds=(100, 300),
        )
    )


def test_small_run_quantities_and_check(small):
    rec = small.record
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    assert small.cluster_of == [0, 0, 0, 1, 1, 1]
    # floors of the shared pool: exact numbers; the MoE floor is below the single
    # expert's
    g_single, g_moe = (
        rec.quantity("G_floor_single_exact"),
        rec.quantity("G_floor_moe_exact"),
    )
    assert g_single.kind == g_moe.kind == "exact" and 0 < g_moe.value < g_single.value
    # with one cluster the SPEC formula is the single expert's model gap (Prop. 4), (1
    # - r) times it for F
    g_spec = rec.quantity("G_floor_single_spec").value
    assert rec.quantity("F_floor_single_spec").value == pytest.approx(0.6 * g_spec)
    for M in (2, 4):
        pur = rec.quantity(f"cluster_purity_alg1_M{M}").value
        assert 0.5 <= pur <= 1.0
    (check,) = rec.checks
    assert (check.claim, check.setting) == ("thm2", "calibrated")
    out = {r.name: r.outcome for r in check.readings}
    assert list(out) == [
        "ideal_floor",
        "floor_is_gap",
        "floor_below_single",
        "alg1_G",
        "alg1_F",
        "alg1_floor",
    ]
    # decisive at this size (margins of 8 s.e. or more)
    for name in ("floor_is_gap", "floor_below_single", "alg1_G", "alg1_F"):
        assert out[name] == "holds", name
    alg1_floor = next(r for r in check.readings if r.name == "alg1_floor")
    assert "M = 4" in alg1_floor.statement  # the largest M
    for name in names:
        if name.startswith("agree_"):
            assert rec.quantity(name).value < 1.0, name
    assert (
        rec.configs["alg1|M=4"]["n_clusters"] == 2
        and rec.configs["alg1|M=4"]["T1"] == 120
    )
    assert set(chapter.prose(small)) == {"thm2_agree_sentence", "thm2_alg1_sentence"}


def test_figures_have_consistent_csv(small):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot, n in ((chapter.plot_ideal, 80), (chapter.plot_alg1, 300)):
        fig, csv = plot(small)
        assert {len(v) for v in csv.values()} == {n}
        plt.close(fig)
    assert all(np.ndim(v) == 0 for row in small.rows_alg1() for v in row.values())


def test_a_failing_reading_changes_the_verdict(small):
    (check,) = small.checks
    holding = tuple(r for r in check.readings if r.outcome == "holds")
    assert ClaimCheck("thm2", "calibrated", holding).verdict == "reproduced"
    broken = dataclasses.replace(
        holding[-1],
        estimate=holding[-1].threshold
        + (10 if holding[-1].sense == "<=" else -10) * max(holding[-1].se, 1e-3),
    )
    assert (
        ClaimCheck("thm2", "calibrated", holding[:-1] + (broken,)).verdict == "partly"
    )


def test_stored_notebook_matches_expectation_and_compare_catches_a_moved_quantity():
    rec = record_from_notebook(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    assert rec is not None and rec.chapter == chapter.CHAPTER
    # the Params defaults are the quick profile
    assert rec.params == json.loads(json.dumps(dataclasses.asdict(chapter.Params())))
    assert "within tolerance" in compare(rec, EXPECTED)
    q = rec.quantity("G_over_floor_alg1_M4")
    moved = dataclasses.replace(q, value=q.value + 10 * q.se)
    rec.quantities = [moved if x.name == q.name else x for x in rec.quantities]
    with pytest.raises(ExpectationError, match="G_over_floor_alg1_M4"):
        compare(rec, EXPECTED)
