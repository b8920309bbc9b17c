"""Claims of the calibration chapter (moecl_lib.claims.calibration): readings, cells,
record, expectation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.analysis.calibration import ClaimThresholds, claim_sweep, setting_config
from moecl_lib.claims import Reading, compare
from moecl_lib.claims import calibration as chapter
from moecl_lib.claims.record import ExpectationError, write_expected

ROOT = Path(__file__).resolve().parents[1]
SMALL = chapter.Params(
    n_experts=8,
    T=480,
    n_runs=6,
    n_runs_point=8,
    signal_scales=(5.0,),
    etas=(0.5, 1.0),
    aux_slice_scales=(5.0,),
    lams=(3.0,),
    alphas=(0.0,),
)


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def member(
    R: int = 50,
    *,
    purity: float = 0.95,
    G_T: float = 0.3,
    G_half: float = 0.6,
    frozen: bool = True,
    uniformity: float = 0.5,
    seed: int = 0,
) -> chapter.MemberRuns:
    """A hand-built member: per-run values scattered (sd 0.01) around the given
    means."""
    rng = np.random.default_rng(seed)

    def around(x: float) -> np.ndarray:
        return x + 0.01 * rng.standard_normal(R)

    cfg = setting_config("calibrated", 20)
    return chapter.MemberRuns(
        config=cfg,
        purity_early=around(purity),
        purity_late=around(purity),
        purity_post=around(purity),
        coverage=np.ones(R),
        uniformity=around(uniformity),
        frozen=np.full(R, frozen),
        T2=np.full(R, 601 if frozen else -1),
        G_T=around(G_T),
        G_half=around(G_half),
        F_T=around(G_T),
        G_mean=np.zeros(10),
        wall_time=0.0,
    )


def test_conjunction_of_readings():
    hold = Reading("a", "", 2.0, 1.0, 0.1)
    fail = Reading("b", "", 0.0, 1.0, 0.1)
    undecided = Reading("c", "", 1.1, 1.0, 0.1)
    assert chapter.conjunction([hold, hold]) == "holds"
    assert chapter.conjunction([hold, undecided]) == "inconclusive"
    assert (
        chapter.conjunction([hold, undecided, fail]) == "fails"
    )  # one failing part sinks the claim


def test_readings_of_hand_built_members_classify_correctly():
    gap = member(purity=0.95, G_T=0.3, G_half=0.6)
    never = member(G_T=0.6, seed=1)  # twice the error: P2 holds
    single = member(G_T=3.0, seed=2)
    cell = chapter.Cell(
        {},
        gap,
        never,
        single,
        {
            "P1": chapter.p1_readings(gap),
            "P2": chapter.p2_readings(gap, never),
            "P3a": chapter.p3a_readings(gap, single),
            "P3b": chapter.p3b_readings(gap),
        },
    )
    assert cell.outcomes == {
        "P1": "holds",
        "P2": "holds",
        "P3a": "holds",
        "P3b": "fails",
        "all": "holds",
    }
    assert chapter.calibrated_check(cell).verdict == "reproduced"
    # the same never-frozen error as with freezing: P2 fails, and with it the calibrated
    # check is only partly
    flat = member(G_T=0.3, seed=1)
    p2 = chapter.p2_readings(gap, flat)
    assert [r.outcome for r in p2] == ["fails", "inconclusive"]
    cell2 = dataclasses.replace(cell, never=flat, readings={**cell.readings, "P2": p2})
    assert cell2.outcomes["all"] == "fails"
    assert chapter.calibrated_check(cell2).verdict == "partly"


def test_unfrozen_member_fails_p3a_with_undefined_purity():
    gap = member(frozen=False)
    gap.purity_post[:] = np.nan
    r = chapter.p3a_readings(gap, member(G_T=3.0))
    assert r[0].outcome == "fails" and r[1].outcome == "fails" and r[1].estimate == 0.0
    assert "no run defines it" in r[1].statement


def test_recalled_check_holds_when_the_router_does_not_specialise():
    th = ClaimThresholds()
    cells = [
        chapter.Cell(
            {"aux_grad": a}, member(purity=0.4), member(purity=0.3), member(), {}
        )
        for a in ("decay", "no_decay")
    ]
    assert chapter.recalled_check(cells, th).verdict == "reproduced"
    cells[1] = dataclasses.replace(
        cells[1], gap=member(purity=0.97)
    )  # specialises: that reading fails
    check = chapter.recalled_check(cells, th)
    assert [r.outcome for r in check.readings] == [
        "holds",
        "fails",
        "holds",
    ] and check.verdict == "partly"


def test_run_produces_checks_quantities_and_configs(small: chapter.Result):
    checks = {(c.claim, c.setting) for c in small.checks}
    assert checks == {
        ("calibration_note", "recalled"),
        ("calibration_note", "calibrated"),
    }
    assert len(small.record.check("calibration_note", "recalled").readings) == 3
    assert len(small.record.check("calibration_note", "calibrated").readings) == 8
    names = {q.name for q in small.quantities}
    for n in (
        "recalled_decay_purity_T1",
        "recalled_no_decay_purity_late_never",
        "point_ratio_never_gap",
        "point_G_half_minus_G_T",
        "pd_c5_eta0p5_purity_T1",
        "pd_c5_eta1_ratio_never_gap",
        "aux_c5_decay_ratio_never_gap",
        "lam3_purity_T1",
        "alpha0_ratio_never_gap",
    ):
        assert n in names
    assert all(q.kind == "estimate" for q in small.quantities)
    assert len(small.phase) == 2 and small.point.gap.config.n_runs == SMALL.n_runs_point
    assert any(cfg["n_runs"] == SMALL.n_runs_point for cfg in small.configs.values())
    assert small.record.params["signal_scales"] == (5.0,)
    text = " ".join(
        [
            chapter.phase_sentence(small),
            chapter.p2_high_gain_sentence(small),
            chapter.aux_sentence(small),
            chapter.alpha_sentence(small),
            chapter.p3b_sentence(small),
        ]
    )
    assert "of the 2 cells" in text and "α = 0" in text


def test_cell_statistics_agree_with_check_claims(small: chapter.Result):
    """The chapter's cell means are the numbers
    moecl_lib.analysis.calibration.check_claims computes."""
    base = setting_config(
        "calibrated", SMALL.n_experts, T=SMALL.T, n_runs=SMALL.n_runs, seed=SMALL.seed
    )
    rows, _ = claim_sweep(
        base, [dict(signal_scale=5.0, eta=1.0)], T1_per_expert=30.0, progress=False
    )
    row = next(c for c in small.phase if c.labels["eta"] == 1.0).row()
    for key in (
        "purity_T1",
        "coverage",
        "G_T_gap",
        "G_T_never",
        "ratio_never_gap",
        "frozen",
        "G_T_single",
    ):
        assert row[key] == pytest.approx(rows[0][key], rel=1e-12), key


def test_compare_catches_a_moved_quantity(small: chapter.Result, tmp_path: Path):
    record = small.record
    path = write_expected(record, tmp_path / "calibration.json")
    assert "within tolerance" in compare(record, path)
    q = record.quantity("point_purity_T1")
    moved = dataclasses.replace(q, value=q.value + 2 * q.tolerance(q) + 1e-3)
    record.quantities = [moved if x.name == q.name else x for x in record.quantities]
    with pytest.raises(ExpectationError, match="point_purity_T1"):
        compare(record, path)


def test_cell_counts_are_not_recorded():
    path = ROOT / "notebooks" / "expected" / "calibration.json"
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert not [q for q in stored["quantities"] if q["name"].startswith("n_cells")]


def test_local_cluster_gives_the_same_record(small: chapter.Result):
    """The sweeps' members on a local Dask cluster: the same record, bit for bit."""
    spread = chapter.run(SMALL, scheduler="local")
    a, b = small.record, spread.record
    assert [(q.name, q.value, q.se) for q in a.quantities] == [
        (q.name, q.value, q.se) for q in b.quantities
    ]
    assert a.checks == b.checks and a.configs == b.configs
