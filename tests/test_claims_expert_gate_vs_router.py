"""``moecl_lib.claims.expert_gate_vs_router``: a tiny run, the claim logic, the stored
expectation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from moecl_lib.claims import Quantity, Record, compare
from moecl_lib.claims import expert_gate_vs_router as chapter
from moecl_lib.claims.record import ExpectationError, expected_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny() -> chapter.Result:
    params = chapter.Params(
        linear_settings=["calibrated"],
        n_experts_linear=6,
        T_linear=120,
        runs_linear=4,
        signal_scales=[1.0, 5.0],
        sweep_runs=3,
        image_data="digits",
        T_image=8,
        batch=10,
        max_train=200,
        max_test=20,
        n_experts_image=2,
        image_seeds=[0, 1],
        window_image=4,
        moe={"lr": 0.1, "epochs": 1, "minibatch": 10, "eta": 0.1, "t1_per_expert": 2},
        window_linear=40,
    )
    return chapter.run(params)


def test_run_records_every_quantity_and_claim(tiny: chapter.Result) -> None:
    names = [q.name for q in tiny.quantities]
    assert len(names) == len(set(names))
    for key in chapter.LINEAR_ROUTERS:
        assert f"lin_calibrated_{key}_G_T" in names
    assert "lin_recalled_gap_G_T" not in names  # only the settings asked for
    for c in ("v1", "v5"):
        assert f"sweep_{c}_eg_c0_route_acc" in names
    for key in chapter.IMAGE_LEARNERS:
        assert tiny.quantity(f"img_{key}_ACC").n == 2
    # the oracle routes every linear round right and keeps G_T at 0 (task n -> expert n)
    assert tiny.quantity("lin_calibrated_oracle_route_acc_all").value == pytest.approx(
        1.0
    )
    assert tiny.quantity("lin_calibrated_oracle_G_T").value == pytest.approx(
        0.0, abs=1e-9
    )
    # paired difference = mean of the per-run differences (run r is the same stream for
    # both routers)
    runs = tiny.linear["calibrated"][1]
    d = runs["gap"].result.G[:, -1] - runs["eg_c0"].result.G[:, -1]
    assert tiny.quantity("lin_calibrated_G_T_gap_minus_eg").value == pytest.approx(
        float(np.mean(d))
    )
    claims = {(c.claim, c.setting): len(c.readings) for c in tiny.checks}
    assert claims == {("h2h_linear", "calibrated"): 4, ("h2h_images", "-"): 3}
    rec = tiny.record
    assert rec.chapter == "expert_gate_vs_router" and rec.seeds == [0, 1]
    assert Record.from_json(rec.to_json()).verdicts() == rec.verdicts()
    assert rec.configs["linear"]["calibrated"]["n_runs"] == 4
    assert rec.configs["image"]["deep_moe"]["epochs"] == 1
    texts = chapter.glue_texts(tiny)
    assert "h2h_image_sentence" in texts
    assert all(f"outcome_{r.name}" in texts for c in tiny.checks for r in c.readings)
    for table in (
        chapter.linear_table(tiny),
        chapter.sweep_table(tiny),
        chapter.image_table(tiny),
    ):
        assert "±" in table or "||v_n||" in table


def _linear(
    s: str, ra: float, dG: float, dF: float, se: float = 0.05
) -> list[Quantity]:
    return [
        Quantity(f"lin_{s}_route_acc_eg_minus_gap", ra, se, 16),
        Quantity(f"lin_{s}_G_T_gap_minus_eg", dG, se, 16),
        Quantity(f"lin_{s}_F_T_gap_minus_eg", dF, se, 16),
    ]


def _image(fgt: float, d_eg: float, d_gap: float, se: float = 1.0) -> list[Quantity]:
    return [
        Quantity("img_oracle_forgetting", fgt, 0.3, 3),
        Quantity("img_oracle_minus_eg_ACC", d_eg, se, 3),
        Quantity("img_oracle_minus_gap_ACC", d_gap, se, 3),
    ]


def test_claim_logic_on_built_readings() -> None:
    p = chapter.Params()
    qs = _linear("calibrated", 0.3, 0.4, 0.3) + _linear("recalled", 0.6, 2.4, 1.7)
    qs.append(Quantity("sweep_route_acc_eg_minus_gap", 0.33, 0.01, 8))
    v = {c.setting: c.verdict for c in chapter.linear_checks(p, qs)}
    assert v == {"calibrated": "reproduced", "recalled": "reproduced"}
    # the trained router ends lower in G_T and F_T (recalled): routing holds, errors
    # fail -> partly
    qs2 = _linear("calibrated", 0.3, 0.4, 0.3) + _linear("recalled", 0.6, -0.5, -0.5)
    qs2.append(Quantity("sweep_route_acc_eg_minus_gap", 0.0, 0.01, 8))
    v2 = {c.setting: c.verdict for c in chapter.linear_checks(p, qs2)}
    assert v2 == {"calibrated": "inconclusive", "recalled": "partly"}
    assert chapter.image_check(_image(1.0, 25.0, 18.0)).verdict == "reproduced"
    # the oracle forgets 9 points: "keeps every task" fails while the gaps hold ->
    # partly
    assert chapter.image_check(_image(9.0, 25.0, 18.0)).verdict == "partly"
    # Expert Gate as good as the oracle, the paper's router 3 points below: nothing
    # holds
    assert (
        chapter.image_check(_image(9.0, -1.0, 3.0, se=0.5)).verdict == "not reproduced"
    )


def test_stored_expectation_catches_a_moved_quantity() -> None:
    path = expected_path("expert_gate_vs_router", ROOT)
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert expected["params"] == json.loads(
        json.dumps(dataclasses.asdict(chapter.Params()))
    )
    stored = [Quantity.from_dict(d) for d in expected["quantities"]]
    assert {q.name for q in stored} >= {
        "lin_calibrated_eg_c0_G_T",
        "img_oracle_ACC",
        "sweep_route_acc_eg_minus_gap",
    }
    assert all(q.floor > 0 or q.kind == "exact" for q in stored)
    checks = chapter.claim_checks(chapter.Params(), stored)
    rec = Record("expert_gate_vs_router", expected["params"], stored, checks)
    assert rec.verdicts().splitlines() == [
        f"{k}: {v}" for k, v in expected["verdicts"].items()
    ]
    assert "within tolerance" in compare(rec, path)
    moved = [
        dataclasses.replace(q, value=q.value + 3 * q.tolerance(q) + 1)
        if q.name == "img_eg_ACC"
        else q
        for q in stored
    ]
    with pytest.raises(ExpectationError, match="img_eg_ACC"):
        compare(
            Record("expert_gate_vs_router", expected["params"], moved, checks), path
        )


def test_params_normalise_and_validate() -> None:
    p = chapter.Params(signal_scales=[1, 2], image_seeds=[5, 6])
    assert p.signal_scales == (1.0, 2.0) and p.image_seeds == (5, 6)
    assert chapter.scale_tag(0.25) == "v0p25"
    with pytest.raises(ValueError, match="code sizes|eg_code_sizes"):
        chapter.Params(eg_code_sizes=[1])
    with pytest.raises(ValueError, match="image_data"):
        chapter.Params(image_data="mnist")
