"""The written rules (moecl_lib.claims.rule) and chapter records
(moecl_lib.claims.record)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.claims import (
    ClaimCheck,
    Quantity,
    Reading,
    Record,
    compare,
    estimate,
    fmt_number,
    verdict_of,
)
from moecl_lib.claims.record import (
    ExpectationError,
    record_from_notebook,
    write_expected,
)
from moecl_lib.claims.rule import (
    MARGIN,
    Z_TOLERANCE,
    reading_line,
    tolerance_quantile,
)


def test_reading_outcomes_by_margin():
    assert Reading("a", "x >= 1", 1.0 + 2.1 * 0.1, 1.0, 0.1).outcome == "holds"
    assert Reading("a", "x >= 1", 1.0 + 1.9 * 0.1, 1.0, 0.1).outcome == "inconclusive"
    assert Reading("a", "x >= 1", 1.0 - 2.1 * 0.1, 1.0, 0.1).outcome == "fails"
    # "<=" flips the sign
    r = Reading("b", "x <= 1", 0.5, 1.0, 0.1, "<=")
    assert r.z == pytest.approx(5.0) and r.outcome == "holds"
    # deterministic readings: plain comparison, a tie is inconclusive
    assert Reading("c", "", 2.0, 1.0).outcome == "holds"
    assert Reading("c", "", 0.0, 1.0).outcome == "fails"
    assert Reading("c", "", 1.0, 1.0).outcome == "inconclusive"
    assert MARGIN == 2.0


def test_verdict_rule_table():
    assert verdict_of(["holds", "holds"]) == "reproduced"
    assert verdict_of(["holds", "fails"]) == "partly"
    assert verdict_of(["holds", "fails", "inconclusive"]) == "partly"
    assert verdict_of(["fails", "fails"]) == "not reproduced"
    assert verdict_of(["fails", "inconclusive"]) == "not reproduced"
    assert verdict_of(["holds", "inconclusive"]) == "inconclusive"
    assert verdict_of(["inconclusive"]) == "inconclusive"
    with pytest.raises(ValueError):
        verdict_of([])
    with pytest.raises(ValueError):
        verdict_of(["maybe"])


def test_estimate_mean_and_standard_error_by_hand():
    q = estimate("G", [1.0, 2.0, 3.0, float("nan")])
    assert q.value == 2.0 and q.n == 3
    assert q.se == pytest.approx(
        1.0 / math.sqrt(3)
    )  # sample sd 1 (ddof=1) over sqrt(3)


def test_tolerance_rule():
    a, b = Quantity("G", 1.0, se=0.03), Quantity("G", 1.1, se=0.04)
    assert a.tolerance(b) == pytest.approx(Z_TOLERANCE * 0.05)  # n unknown: z
    a64, b5 = Quantity("G", 1.0, se=0.03, n=64), Quantity("G", 1.1, se=0.04, n=5)
    assert a64.tolerance(a64) == pytest.approx(4.29 * 0.03 * 2**0.5, rel=1e-2)
    assert a64.tolerance(b5) == pytest.approx(17.45 * 0.05, rel=1e-2)  # t with 4 d.o.f.
    one = Quantity("G", 0.3, se=0.0, n=1)  # a single sample: no s.e., not compared
    assert one.tolerance(Quantity("G", 0.0, se=0.0, n=1)) == math.inf
    assert a64.tolerance(one) == pytest.approx(4.0 * 0.03)  # one side has an s.e.
    assert Quantity("G", 1.0, se=0.0, floor=0.5).tolerance(Quantity("G", 1.0)) == 0.5
    exact = Quantity("E", 1000.0, kind="exact")
    assert exact.tolerance(exact) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="glue key"):
        Quantity("G:T", 1.0)
    with pytest.raises(ValueError, match="kind"):
        Quantity("G", 1.0, kind="fuzzy")


def test_tolerance_quantile_has_the_normal_false_alarm_rate():
    """Student-t quantile at the two-sided level of 4 normal s.e.; tends to 4."""
    from scipy import stats

    for n in (2, 5, 64, 10_000):
        q = tolerance_quantile(n)
        assert 2 * stats.t.sf(q, n - 1) == pytest.approx(2 * stats.norm.sf(4.0))
    assert tolerance_quantile(10_000) == pytest.approx(4.0, abs=2e-3)
    assert tolerance_quantile(2) > 1000 > tolerance_quantile(5) > tolerance_quantile(64)


def test_format_is_the_same_everywhere():
    assert fmt_number(0.74321, 0.0123) == "0.743 ± 0.012"
    assert fmt_number(74.93, 0.81) == "74.9 ± 0.8"
    assert fmt_number(1234.5) == "1234"
    line = reading_line(Reading("r", "ratio >= 1.25", 1.41, 1.25, 0.05))
    assert line == "ratio >= 1.25: 1.41 ± 0.05 ≥ 1.25 (margin +3.2 s.e.) → holds"


def _record(value: float = 1.0) -> Record:
    q = [
        Quantity("G_T", value, se=0.01, n=50),
        Quantity("tiny", 4e-16, kind="roundoff"),
        Quantity("pool", 3.0, kind="exact"),
    ]
    c = [ClaimCheck("x", "calibrated", (Reading("r", "G_T >= 0.5", value, 0.5, 0.01),))]
    return Record(
        "demo",
        {"n_runs": 50, "seed": 0},
        q,
        c,
        configs={"a": {"T": np.int64(3)}},
        seeds=[0],
    )


def test_record_roundtrip_and_compare(tmp_path: Path):
    rec = _record()
    back = Record.from_json(rec.to_json())
    assert (
        back.quantities == rec.quantities
        and back.checks == rec.checks
        and back.configs == {"a": {"T": 3}}
    )
    path = write_expected(rec, tmp_path / "demo.json")
    stored = json.loads(path.read_text())
    assert [q["name"] for q in stored["quantities"]] == ["G_T", "pool"], (
        "round-off is never stored"
    )
    assert compare(rec, path).startswith("2 recorded quantities within tolerance")
    # a number within 4 combined s.e. passes; a round-off change is ignored
    near = _record(1.0 + 0.05)
    near.quantities[1] = Quantity("tiny", 2e-16, kind="roundoff")
    assert "within tolerance" in compare(near, path)


def test_compare_catches_a_moved_value(tmp_path: Path):
    path = write_expected(_record(), tmp_path / "demo.json")
    moved = _record(1.0 + 0.07)  # 0.07 > t_49 * hypot(0.01, 0.01) = 0.0619
    with pytest.raises(
        ExpectationError, match=r"demo: G_T: stored 1, new 1.07, .* > tolerance 0.0619"
    ):
        compare(moved, path)
    exact_moved = _record()
    exact_moved.quantities[2] = Quantity("pool", 3.001, kind="exact")
    with pytest.raises(ExpectationError, match="pool"):
        compare(exact_moved, path)


def test_compare_catches_a_changed_verdict_and_missing_quantity(tmp_path: Path):
    path = write_expected(_record(), tmp_path / "demo.json")
    flipped = _record()
    flipped.checks[0] = ClaimCheck(
        "x", "calibrated", (Reading("r", "G_T >= 0.5", 0.4, 0.5, 0.01),)
    )
    with pytest.raises(
        ExpectationError,
        match="verdict x \\[calibrated\\]: stored 'reproduced', new 'not reproduced'",
    ):
        compare(flipped, path)
    missing = _record()
    missing.quantities.pop(0)
    with pytest.raises(ExpectationError, match="G_T: stored 1, new nan"):
        compare(missing, path)


def test_compare_skips_other_parameters(tmp_path: Path):
    path = write_expected(_record(), tmp_path / "demo.json")
    other = dataclasses.replace(_record(5.0), params={"n_runs": 4000, "seed": 0})
    assert "not compared" in compare(other, path)
    assert "not compared" in compare(_record(), tmp_path / "absent.json")


def test_record_is_read_back_from_a_glued_notebook_output():
    rec = _record()
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "data": {
                            "application/papermill.record/text/plain": repr(
                                rec.to_json()
                            )
                        },
                        "metadata": {
                            "scrapbook": {
                                "name": "moecl_record",
                                "mime_prefix": "application/papermill.record/",
                            }
                        },
                    }
                ],
            }
        ]
    }
    back = record_from_notebook(nb)
    assert back is not None and back.quantities == rec.quantities
    assert record_from_notebook({"cells": []}) is None
