"""The stored quick-profile expectations (``notebooks/expected/<chapter>.json``) of the
chapters: parameters equal to each chapter's ``Params()`` defaults, the verdicts stored,
and :func:`moecl_lib.claims.compare` catching a moved quantity or a changed verdict."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from moecl_lib.claims import (
    ClaimCheck,
    Quantity,
    Reading,
    Record,
    calibration,
    compare,
    dnn_expert_sweep,
    dnn_moe_vs_single,
    fig2_dynamics,
    prop1_specialisation,
    prop2_no_termination,
    prop3_termination,
    sweep_experts,
)
from moecl_lib.claims.record import ExpectationError, expected_path

ROOT = Path(__file__).resolve().parents[1]

STORED_VERDICTS: dict[ModuleType, dict[str, str | None]] = {
    calibration: {
        "calibration_note [recalled]": "reproduced",
        "calibration_note [calibrated]": "reproduced",
    },
    prop1_specialisation: {
        "prop1 [calibrated]": "partly",
        "prop1 [recalled]": "not reproduced",
    },
    prop2_no_termination: {"prop2 [calibrated]": None, "prop2 [recalled]": None},
    prop3_termination: {"prop3 [calibrated]": None, "prop3 [recalled]": None},
    fig2_dynamics: {
        **{
            f"fig2_{c} [{s}]": None
            for c in ("i", "ii", "iii", "iv", "v")
            for s in ("calibrated", "recalled")
        },
        "fig2_ii [calibrated]": "partly",
        "fig2_ii [recalled]": "not reproduced",
    },
    sweep_experts: {"more_experts [calibrated]": "partly"},
    dnn_moe_vs_single: {
        "dnn_forgetting [-]": "inconclusive",
        "dnn_termination [-]": "reproduced",
    },
    dnn_expert_sweep: {"dnn_more_experts [-]": "inconclusive"},
}
"""Chapter -> its stored verdicts (``None``: stored, whichever the verdict)."""


def _stored(chapter: ModuleType) -> tuple[Path, dict]:
    path = expected_path(chapter.CHAPTER, ROOT)
    assert path.is_file(), path
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "chapter", list(STORED_VERDICTS), ids=lambda m: m.__name__.split(".")[-1]
)
def test_stored_expectation_matches_the_quick_parameters(chapter: ModuleType) -> None:
    _, stored = _stored(chapter)
    assert stored["params"] == json.loads(
        json.dumps(dataclasses.asdict(chapter.Params()), default=list)
    )
    want = STORED_VERDICTS[chapter]
    assert set(stored["verdicts"]) == set(want)
    assert all(v is None or stored["verdicts"][k] == v for k, v in want.items())


def _check_with_verdict(key: str, verdict: str) -> ClaimCheck:
    """A claim check (``key`` = "claim [setting]") whose readings give ``verdict`` under
    the rule."""
    claim, setting = key.split(" [")
    hold, fail, tie = (
        Reading("h", "h", 1.0, 0.0),
        Reading("f", "f", -1.0, 0.0),
        Reading("i", "i", 0.0, 0.0),
    )
    readings = {
        "reproduced": (hold,),
        "partly": (hold, fail),
        "not reproduced": (fail,),
        "inconclusive": (tie,),
    }[verdict]
    return ClaimCheck(claim, setting.rstrip("]"), readings)


@pytest.mark.parametrize(
    "chapter, moved_name, floored",
    [
        (prop2_no_termination, "ratio_never_gap_calibrated", False),
        (prop3_termination, "uniformity_calibrated", False),
        (dnn_moe_vs_single, "dF_T_single_moe", True),
        (dnn_expert_sweep, "G_T_M8", True),
    ],
    ids=lambda x: x.__name__.split(".")[-1] if isinstance(x, ModuleType) else None,
)
def test_compare_catches_a_moved_quantity_and_a_changed_verdict(
    chapter: ModuleType, moved_name: str, floored: bool
) -> None:
    """The stored record compares within tolerance with itself; one quantity moved
    beyond its tolerance, or one verdict changed, raises; parameters of another profile
    are not compared. ``floored``: every stored quantity has a tolerance floor."""
    path, expected = _stored(chapter)
    params = expected["params"]
    quantities = [Quantity.from_dict(d) for d in expected["quantities"]]
    assert not floored or all(q.floor > 0 for q in quantities)
    checks = [_check_with_verdict(k, v) for k, v in expected["verdicts"].items()]
    assert "within tolerance" in compare(
        Record(chapter.CHAPTER, params, quantities, checks), path
    )
    moved = [
        dataclasses.replace(q, value=q.value + 2 * q.tolerance(q) + 0.1)
        if q.name == moved_name
        else q
        for q in quantities
    ]
    with pytest.raises(ExpectationError, match=moved_name):
        compare(Record(chapter.CHAPTER, params, moved, checks), path)
    key, verdict = next(iter(expected["verdicts"].items()))
    other = "reproduced" if verdict == "not reproduced" else "not reproduced"
    flipped = [_check_with_verdict(key, other), *checks[1:]]
    with pytest.raises(ExpectationError, match=re.escape(f"verdict {key}")):
        compare(Record(chapter.CHAPTER, params, quantities, flipped), path)
    assert "not compared" in compare(
        Record(chapter.CHAPTER, {**params, "profile": "other"}, moved, checks), path
    )
