"""Chapter robustness as data: the choices and their overrides, the cells, the
robustness checks under the written rule, the summary, figure and expectation."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.analysis.calibration import ClaimThresholds
from moecl_lib.claims import compare
from moecl_lib.claims import robustness as chapter
from moecl_lib.claims.calibration import Cell, conjunction
from moecl_lib.claims.record import ExpectationError, write_expected
from moecl_lib.claims.rule import Reading, verdict_of

ROOT = Path(__file__).resolve().parents[1]
SMALL = chapter.Params(
    n_experts=8, T=500, n_runs=8,
    choices=("base", "gamma_half", "eta_x2", "lb_switch", "c_low"),
)  # fmt: skip
BINARY = {"aux gradient", "locality form"}  # elements with one alternative only


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_every_element_has_its_alternatives() -> None:
    keys = [c.key for c in chapter.CHOICES]
    assert len(keys) == len(set(keys)) and all(k.isidentifier() for k in keys)
    per = Counter(c.element for c in chapter.CHOICES if c.key != "base")
    for element, n in per.items():
        assert n >= (1 if element in BINARY else 2), element
    assert all(c.tag.startswith("[") for c in chapter.CHOICES[1:])


def test_overrides_relative_to_both_bases() -> None:
    p = chapter.Params()
    cal, rec = (chapter.base_config(p, s) for s in chapter.SETTINGS)
    assert cal.streams == rec.streams == "per_run"
    assert (cal.T1, rec.T1) == (600, math.ceil(20 / (0.5 * 0.4**0.25)))
    ov = chapter.overrides
    assert ov(chapter.choice("base"), cal) == {}
    assert ov(chapter.choice("T1_half"), cal) == {"T1": 300}
    assert ov(chapter.choice("T1_half"), rec) == {"T1": 26}
    assert ov(chapter.choice("aux_flip"), cal) == {"aux_grad": "decay"}
    assert ov(chapter.choice("aux_flip"), rec) == {"aux_grad": "no_decay"}
    assert ov(chapter.choice("c_low"), cal) == {"signal_scale": pytest.approx(3.0)}
    assert ov(chapter.choice("c_low"), rec) == {"signal_scale": pytest.approx(0.6)}
    assert ov(chapter.choice("alpha_x2"), cal) == {"alpha": 0.5}
    assert ov(chapter.choice("alpha_x2"), rec) == {"alpha": 1.0}
    g = ov(chapter.choice("gamma_half"), rec)["gamma"]
    assert g == pytest.approx(0.5 * 0.4**1.25)
    for c in chapter.CHOICES:  # every override is a valid configuration
        for base in (cal, rec):
            base.replace(**ov(c, base))
    table = chapter.choices_table({"calibrated": cal, "recalled": rec})
    assert "T1=300" in table and "T1=26" in table


@pytest.mark.parametrize("seed", range(3))
def test_binding_reading_decides_the_conjunction(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 5))
        readings = tuple(
            Reading(
                f"r{i}", "s", float(rng.normal(0, 3)), 0.0, float(rng.choice([0, 1]))
            )
            for i in range(n)
        )
        assert chapter.binding(readings).outcome == conjunction(readings)


def test_record_and_checks(small: chapter.Result) -> None:
    rec = small.record
    assert rec.chapter == "robustness"
    assert [(c.claim, c.setting) for c in rec.checks] == [
        (chapter.CHECK_IDS[k], s) for k in chapter.CLAIMS for s in chapter.SETTINGS
    ]
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for check in rec.checks:
        claim = next(k for k, v in chapter.CHECK_IDS.items() if v == check.claim)
        assert len(check.readings) == len(SMALL.choices)
        keys = [c.key for c in small.choices()]  # in the order of chapter.CHOICES
        outs = [small.outcome(check.setting, k, claim) for k in keys]
        assert [r.outcome for r in check.readings] == outs
        assert check.verdict == verdict_of(outs)
        for key, r in zip(keys, check.readings):
            q = rec.quantity(f"{chapter.PREFIX[check.setting]}_{r.name}")
            assert (q.value, q.se) == (r.estimate, r.se) and r.name.startswith(key)
    json.dumps(rec.to_dict())
    for cfg in rec.configs.values():
        assert cfg["streams"] == "per_run"


def test_cells_share_what_the_choice_does_not_touch(small: chapter.Result) -> None:
    cells = small.cells["calibrated"]
    base, gamma, eta = cells["base"], cells["gamma_half"], cells["eta_x2"]
    assert gamma.never is base.never and gamma.single is base.single
    assert gamma.gap is not base.gap and gamma.gap.config.gamma != base.gap.config.gamma
    assert eta.single is base.single and eta.never is not base.never
    assert cells["c_low"].single is not base.single
    assert base.gap.config.T1 == 240 and eta.gap.config.T1 == 240  # pinned


def _fake(outcomes: dict[str, dict[str, str]]) -> chapter.Result:
    """A Result whose cells hold one reading per claim with the given outcomes."""
    z = {"holds": 5.0, "fails": -5.0, "inconclusive": 0.5}
    keys = list(outcomes["calibrated"])
    cells = {
        s: {
            k: Cell(
                {},
                None,
                None,
                None,  # type: ignore[arg-type]
                {
                    c: (Reading("r", "s", z[outcomes[s][k]], 0.0, 1.0),)
                    for c in chapter.CLAIMS
                },
            )  # fmt: skip
            for k in keys
        }
        for s in chapter.SETTINGS
    }
    p = dataclasses.replace(SMALL, choices=tuple(keys))
    res = chapter.Result(p, cells, [], [], {}, 0.0, ClaimThresholds())
    res.checks = chapter.robust_checks(res)
    return res


def test_summary_names_what_a_verdict_hinges_on() -> None:
    cal = {"base": "holds", "gamma_half": "holds", "eta_x2": "fails", "c_low": "holds"}
    rec = dict.fromkeys(cal, "fails")
    res = _fake({"calibrated": cal, "recalled": rec})
    assert chapter.robustness_class(res, "calibrated", "P1") == "hinges on one element"
    assert chapter.changed_by(res, "calibrated", "P1") == {"η": ["eta_x2"]}
    assert chapter.robustness_class(res, "recalled", "P2") == "robust"
    lines = chapter.summary_lines(res)
    assert lines[0].startswith("calibrated, P1: holds at the base; hinges on one")
    assert "η ×2 → fails" in lines[0]
    verdicts = {(c.claim, c.setting): c.verdict for c in res.checks}
    assert verdicts[("robust_p1", "calibrated")] == "partly"
    assert verdicts[("robust_p1", "recalled")] == "not reproduced"
    assert chapter.counts(res)["flips"] == len(chapter.CLAIMS)
    # a wrong verdict is caught: the same data with eta_x2 holding is robust instead
    fixed = _fake({"calibrated": dict(cal, eta_x2="holds"), "recalled": rec})
    assert fixed.checks[0].verdict == "reproduced"
    assert chapter.robustness_class(fixed, "calibrated", "P1") == "robust"
    half = _fake({"calibrated": dict(cal, eta_x2="inconclusive"), "recalled": rec})
    assert half.checks[0].verdict == "inconclusive"
    assert chapter.robustness_class(half, "calibrated", "P1") == "robust"
    assert chapter.summary_line(half, "calibrated", "P1").endswith(
        "undecided under η ×2"
    )
    assert chapter.counts(half)["undecided"] == len(chapter.CLAIMS)


def test_compare_catches_a_moved_quantity_and_a_changed_verdict(
    small: chapter.Result, tmp_path: Path
) -> None:
    record = small.record
    path = write_expected(record, tmp_path / "robustness.json")
    assert "within tolerance" in compare(record, path)
    q = record.quantities[0]
    moved = dataclasses.replace(q, value=q.value + 2 * q.tolerance(q) + 1e-3)
    record.quantities = [moved if x.name == q.name else x for x in record.quantities]
    with pytest.raises(ExpectationError, match=q.name):
        compare(record, path)
    stored = json.loads(path.read_text())
    key = next(iter(stored["verdicts"]))
    stored["verdicts"][key] = (
        "reproduced" if "not" in stored["verdicts"][key] else "not reproduced"
    )
    path.write_text(json.dumps(stored))
    with pytest.raises(ExpectationError, match="verdict"):
        compare(small.record, path)


def test_figure_table_and_csv(small: chapter.Result, tmp_path: Path) -> None:
    from moecl_lib import figures

    fig, csv = chapter.matrix_figure(small)
    assert len(fig.axes) == len(chapter.SETTINGS)
    assert len(csv["claim"]) == len(chapter.SETTINGS) * len(SMALL.choices) * 5
    figures.save_csv(tmp_path, "matrix", csv)
    text = chapter.matrix_table(small, "calibrated")
    assert len(text.splitlines()) == 1 + len(SMALL.choices)
    assert len(chapter.summary_lines(small)) == 2 * len(chapter.CLAIMS)


def test_stored_expectation_matches_the_quick_parameters() -> None:
    path = ROOT / "notebooks" / "expected" / "robustness.json"
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["params"] == json.loads(
        json.dumps(dataclasses.asdict(chapter.Params()), default=list)
    )
    assert len(stored["verdicts"]) == 2 * len(chapter.CLAIMS)
