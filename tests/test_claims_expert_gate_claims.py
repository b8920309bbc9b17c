"""``moecl_lib.claims.expert_gate_claims``: a tiny run, the claim logic, the stored
expectation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from moecl_lib.claims import Quantity, Record, compare
from moecl_lib.claims import expert_gate_claims as chapter
from moecl_lib.claims.record import ExpectationError, expected_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny() -> chapter.Result:
    params = chapter.Params(
        split_pairs=[[0, 1], [2, 3], [4, 5]],
        domain_fmnist_pairs=[[0, 1]],
        domain_digit_pairs=[[0, 1], [2, 3]],
        max_train=30,
        max_test=30,
        seeds=[0, 1],
        ae_epochs=1,
        expert_epochs=1,
        n_target_train=10,
    )
    return chapter.run(params)


def test_run_records_every_quantity_and_claim(tiny: chapter.Result) -> None:
    names = [q.name for q in tiny.quantities]
    assert len(names) == len(set(names))
    for fam in chapter.FAMILIES:
        for key in chapter.METHODS:
            q = tiny.quantity(f"{fam}_{key}")
            assert q.n == 2 and 0.0 <= q.value <= 100.0
            assert q.floor == chapter.FLOORS[key] > 0
        assert -1.0 <= tiny.quantity(f"{fam}_rho_rel_ft").value <= 1.0
    assert "mixed_rel_within_minus_across" in names and "split_rel_within" not in names
    claims = {(c.claim, c.setting): len(c.readings) for c in tiny.checks}
    assert claims == {
        ("eg_gate", "-"): 2,
        ("eg_accuracy", "-"): 8,
        ("eg_relatedness", "-"): 5,
    }
    # a paired difference is the mean of the per-seed differences
    fr = tiny.families["split"]
    d = fr.per_seed("expert_gate") - fr.per_seed("oracle")
    assert tiny.quantity("split_eg_minus_oracle").value == pytest.approx(
        float(d.mean())
    )
    rec = tiny.record
    assert rec.chapter == "expert_gate_claims" and rec.seeds == [0, 1]
    assert Record.from_json(rec.to_json()).verdicts() == rec.verdicts()
    assert rec.configs["expert_gate"]["ae_epochs"] == 1
    texts = chapter.glue_texts(tiny)
    assert {
        "eg_threshold_sentence",
        "eg_single_models_sentence",
        "eg_domain_sentence",
    } <= set(texts)
    assert all(f"outcome_{r.name}" in texts for c in tiny.checks for r in c.readings)


def _quantities(**values: tuple[float, float]) -> list[Quantity]:
    """Quantities for :func:`chapter.claim_checks`: every name it reads, defaults far on
    the claimed side."""
    base: dict[str, tuple[float, float]] = {}
    for fam in chapter.FAMILIES:
        base.update(
            {
                f"{fam}_gate_ae_minus_disc": (1.0, 0.5),
                f"{fam}_eg_minus_oracle": (-1.0, 0.5),
                f"{fam}_eg_minus_joint": (-1.0, 0.5),
                f"{fam}_eg_minus_finetune": (3.0, 0.5),
                f"{fam}_eg_minus_lwf": (2.0, 0.5),
                f"{fam}_rho_rel_ft": (0.8, 0.1),
                f"{fam}_rho_rel_gain": (0.8, 0.1),
            }
        )
    base["mixed_rel_within_minus_across"] = (1.2, 0.1)
    base.update(values)
    return [Quantity(k, v, se, 3) for k, (v, se) in base.items()]


def _verdicts(qs: list[Quantity]) -> dict[str, str]:
    return {c.claim: c.verdict for c in chapter.claim_checks(qs)}


def test_claim_logic_on_built_readings() -> None:
    assert _verdicts(_quantities()) == {
        "eg_gate": "reproduced",
        "eg_accuracy": "reproduced",
        "eg_relatedness": "reproduced",
    }
    # Expert Gate 22 points below its oracle on split: "about the accuracy of" fails
    # there -> partly
    v = _verdicts(
        _quantities(split_eg_minus_oracle=(-22.0, 0.5), split_rho_rel_ft=(-0.1, 0.05))
    )
    assert v["eg_accuracy"] == "partly" and v["eg_relatedness"] == "partly"
    # within 5 points but only by 1 s.e.: undecided, and nothing fails -> inconclusive
    assert (
        _verdicts(_quantities(split_gate_ae_minus_disc=(-4.0, 1.0)))["eg_gate"]
        == "inconclusive"
    )
    # gate 10 points worse on both families: not reproduced
    v = _verdicts(
        _quantities(
            split_gate_ae_minus_disc=(-10.0, 1.0), mixed_gate_ae_minus_disc=(-10.0, 1.0)
        )
    )
    assert v["eg_gate"] == "not reproduced"


def test_stored_expectation_catches_a_moved_quantity() -> None:
    path = expected_path("expert_gate_claims", ROOT)
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert expected["params"] == json.loads(
        json.dumps(dataclasses.asdict(chapter.Params()), default=list)
    )
    stored = [Quantity.from_dict(d) for d in expected["quantities"]]
    assert {q.name for q in stored} >= {
        "mixed_gate_ae",
        "split_expert_gate",
        "mixed_rel_within_minus_across",
    }
    assert all(q.floor > 0 for q in stored)
    checks = chapter.claim_checks(stored)
    rec = Record("expert_gate_claims", expected["params"], stored, checks)
    assert rec.verdicts().splitlines() == [
        f"{k}: {v}" for k, v in expected["verdicts"].items()
    ]
    assert "within tolerance" in compare(rec, path)
    moved = [
        dataclasses.replace(q, value=q.value + 3 * q.tolerance(q) + 1)
        if q.name == "split_expert_gate"
        else q
        for q in stored
    ]
    with pytest.raises(ExpectationError, match="split_expert_gate"):
        compare(Record("expert_gate_claims", expected["params"], moved, checks), path)


def test_params_normalise_and_validate() -> None:
    p = chapter.Params(seeds=[3, 4], split_pairs=[[0, 1]])
    assert p.seeds == (3, 4) and p.split_pairs == ((0, 1),)
    assert p.gate_config(4).seed == 4 and p.gate_config(4).code_size == p.code_size
    with pytest.raises(ValueError, match="two seeds"):
        chapter.Params(seeds=[0])
