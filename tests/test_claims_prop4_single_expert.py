"""Chapter prop4_single_expert as data: estimators, readings, a small run and the stored
expectation."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.claims import ClaimCheck, Quantity, compare
from moecl_lib.claims import prop4_single_expert as chapter
from moecl_lib.claims.record import ExpectationError, record_from_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / f"{chapter.CHAPTER}.ipynb"
EXPECTED = ROOT / "notebooks" / "expected" / f"{chapter.CHAPTER}.json"


def test_paired_ratio_by_hand():
    q = chapter.paired_ratio("r", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert q.value == pytest.approx(2.0)
    assert q.se == pytest.approx(
        1.0 / math.sqrt(3)
    )  # constant denominator: s.e. of the numerator's mean
    # perfectly proportional pairs: the ratio is known without error
    q = chapter.paired_ratio("r", [2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert q.value == pytest.approx(2.0) and q.se == pytest.approx(0.0, abs=1e-12)
    # NaN pairs are dropped
    assert chapter.paired_ratio("r", [1.0, np.nan, 3.0], [1.0, 1.0, 1.0]).n == 2


def test_independent_ratio_delta_method():
    a, b = [1.0, 3.0], [2.0, 2.0, 2.0]  # means 2 and 2, s.e. 1 and 0
    q = chapter.independent_ratio("r", a, b)
    assert q.value == pytest.approx(1.0) and q.se == pytest.approx(0.5)


def test_agreement_statistic():
    rng = np.random.default_rng(0)
    ref = np.tile(np.linspace(1.0, 2.0, 10), (400, 1))
    sim = ref + rng.normal(0.0, 1.0, ref.shape)
    assert chapter.agreement(sim, ref, [1, 5, 10], 4.0) < 1.0
    # a bias of 10 standard errors at one checked round is caught
    sim[:, 4] += 10.0 / math.sqrt(400)
    assert chapter.agreement(sim, ref, [1, 5, 10], 4.0) > 2.0


def test_within_reading_is_two_sided():
    assert chapter.within("w", "", Quantity("q", 1.05, 0.01)).outcome == "holds"
    assert chapter.within("w", "", Quantity("q", 0.95, 0.01)).outcome == "holds"
    assert chapter.within("w", "", Quantity("q", 1.30, 0.01)).outcome == "fails"
    assert chapter.within("w", "", Quantity("q", 0.70, 0.01)).outcome == "fails"
    assert chapter.within("w", "", Quantity("q", 1.10, 0.05)).outcome == "inconclusive"


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(
        chapter.Params(n_runs=200, T=60, check_rounds=(2, 10, 60), n_exact_pools=100)
    )


def test_small_run_quantities_and_check(small):
    rec = small.record
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for name in (
        "G_T_iso",
        "F_T_iso",
        "G_T_iso_over_formula",
        "G_T_def1_over_gap",
        "G_floor_def1_over_gap",
        "agree_iso",
        "agree_def1_exact",
    ):
        assert name in names
    assert (
        rec.quantity("r").value == pytest.approx(1 - 6 / 20)
        and rec.quantity("r").kind == "exact"
    )
    (check,) = rec.checks
    assert (check.claim, check.setting) == ("prop4", "-")
    out = {r.name: r.outcome for r in check.readings}
    assert list(out) == [
        "iso_G_form",
        "iso_F_form",
        "iso_plateau",
        "def1_floor",
        "def1_plateau",
        "def1_F_form",
    ]
    # decisive at this size: the closed form holds for isotropic columns, the
    # Definition-1 floor is ~1.6 Delta
    assert out["iso_G_form"] == out["iso_plateau"] == out["def1_floor"] == "holds"
    assert out["def1_plateau"] == out["def1_F_form"] == "fails"
    assert check.verdict == "partly"
    # the companion's own checks: simulation agrees with the closed form / exact
    # recursion
    assert (
        rec.quantity("agree_iso").value < 1.0
        and rec.quantity("agree_def1_exact").value < 1.0
    )
    assert set(rec.configs) == {"isotropic", "definition1"}
    assert rec.configs["definition1"]["signal"] == "aligned"
    assert "prop4_def1_sentence" in chapter.prose(small)


def test_figures_have_consistent_csv(small):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot in (chapter.plot_isotropic, chapter.plot_definition1):
        fig, csv = plot(small)
        assert {len(v) for v in csv.values()} == {60}
        plt.close(fig)


def test_a_failing_reading_changes_the_verdict(small):
    (check,) = small.checks
    holding = tuple(r for r in check.readings if r.outcome == "holds")
    assert ClaimCheck("prop4", "-", holding).verdict == "reproduced"
    broken = dataclasses.replace(
        holding[0],
        estimate=holding[0].threshold
        + (10 if holding[0].sense == "<=" else -10) * max(holding[0].se, 1e-3),
    )
    assert ClaimCheck("prop4", "-", (broken,) + holding[1:]).verdict == "partly"


def test_stored_notebook_matches_expectation_and_compare_catches_a_moved_quantity():
    import json

    rec = record_from_notebook(json.loads(NOTEBOOK.read_text(encoding="utf-8")))
    assert rec is not None and rec.chapter == chapter.CHAPTER
    # the Params defaults are the quick profile
    assert rec.params == json.loads(json.dumps(dataclasses.asdict(chapter.Params())))
    assert "within tolerance" in compare(rec, EXPECTED)
    q = rec.quantity("G_T_def1_over_gap")
    moved = dataclasses.replace(q, value=q.value + 10 * q.se)
    rec.quantities = [moved if x.name == q.name else x for x in rec.quantities]
    with pytest.raises(ExpectationError, match="G_T_def1_over_gap"):
        compare(rec, EXPECTED)
